"""`engage bench dashboards`: first render of the admin pages with 100,000 students in the warehouse.

A fresh ClickHouse database gets the students' risk updates (a few days each) and a week of events (through the
landing table, so the daily activity view fills as in production), all as columnar inserts. The dashboards then
run in-process on uvicorn with the live numbers re-read on every render (no cache: the worst case), and each page
is fetched ``requests`` times over HTTP: server time to the full HTML, as p50 and p95. The baseline, measured in
the same run on the same data: the page's bare named queries run one after another through the same driver.
"""

from __future__ import annotations

import json
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table as RichTable

from config.settings import Settings, get_settings

TIERS = ((80, "critical"), (60, "high"), (40, "medium"), (20, "low"), (0, "minimal"))
ZONES = ("UTC", "Europe/Berlin", "America/Sao_Paulo", "Asia/Kolkata", "America/New_York")
FACTORS = ("No login for a while", "Fewer lessons than usual", "Quiz scores falling", "Streak lost")


def _tier(risk: float) -> str:
    return next(name for floor, name in TIERS if risk >= floor)


def _risk_columns(settings: Settings, students: int, days: int, now: datetime, rng: random.Random) -> int:
    """``days`` risk updates per student (one a day, the last an hour ago), inserted column by column."""
    from sinks.clickhouse.client import connect, insert_columns
    from sinks.clickhouse.tables import RISK_UPDATES

    rows = students * days
    data: dict[str, list[Any]] = {}
    for c in RISK_UPDATES.columns:
        data[c.name] = [0.0] * rows if c.ch_type == "Float64" else [c.default] * rows
    user, as_of, risk7, risk30, tier, factors, tz, seen, uid = ([] for _ in range(9))
    for i in range(students):
        base, zone = rng.uniform(0, 100), ZONES[i % len(ZONES)]
        for d in range(days):
            when = int((now - timedelta(days=days - 1 - d, hours=1)).timestamp())
            r = min(100.0, max(0.0, base + rng.uniform(-15, 15)))
            user.append(f"s{i:06d}")
            as_of.append(when)
            risk7.append(round(r, 1))
            risk30.append(round(min(100.0, r + 5), 1))
            tier.append(_tier(r))
            picked = rng.sample(FACTORS, 2)
            factors.append(orjson.dumps([{"description": f, "contribution": 10.0} for f in picked]).decode())
            tz.append(zone)
            seen.append(when - rng.randint(0, 5 * 86_400))
            uid.append(f"s{i:06d}:{d}")
    data.update(
        user_id=user,
        as_of=as_of,
        scored_at=as_of,
        risk_7d=risk7,
        risk_30d=risk30,
        tier=tier,
        factors=factors,
        signals_timezone=tz,
        signals_last_event_time=seen,
        update_id=uid,
        trigger=["events"] * rows,
        model_version=["heuristic-1"] * rows,
        signals_user_id=user,
        signals_as_of=as_of,
    )
    client = connect(settings, settings.clickhouse_database)
    for start in range(0, rows, 100_000):
        insert_columns(client, "risk_updates", list(data), [col[start : start + 100_000] for col in data.values()])
    return rows


def _event_columns(settings: Settings, students: int, days: int, now: datetime, rng: random.Random) -> int:
    """Events for about two thirds of the students each day (the landing table; the views fill the rest)."""
    from sinks.clickhouse.client import connect, insert_columns
    from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING

    client = connect(settings, settings.clickhouse_database)
    total, offset = 0, 0
    for d in range(days):
        times, offsets, payloads = [], [], []
        for i in range(students):
            if rng.random() > 0.66:
                continue
            when = now - timedelta(days=d, seconds=rng.randint(0, 86_399 if d else 3_600))
            offset += 1
            times.append(int(when.timestamp()))
            offsets.append(offset)
            payloads.append(
                orjson.dumps(
                    {
                        "event_id": f"e{offset}",
                        "user_id": f"s{i:06d}",
                        "event_type": "lesson_completed",
                        "event_time": when.isoformat(),
                        "platform": "web",
                        "timezone": "UTC",
                        "course_id": f"c{i % 20}",
                    }
                ).decode()
            )
        n = len(times)
        insert_columns(
            client,
            "behavior_events_landing",
            BEHAVIOR_EVENTS_LANDING.column_names,
            [times, [0] * n, [0] * n, offsets, payloads],
        )
        total += n
    return total


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def run_dashboards_bench(
    settings: Settings, console: Console, out: Path, students: int, requests: int
) -> dict[str, Any]:
    from dashboards.data import Warehouse
    from dashboards.server import running
    from deploy.process import free_port
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrations import migrate

    database = f"bench_dash_{uuid.uuid4().hex[:8]}"
    s = settings.model_copy(
        update={"clickhouse_database": database, "dashboards_port": free_port(), "dashboards_poll_seconds": 0.001}
    )
    migrate(connect(s), database)
    rng, now = random.Random(2026), datetime.now(UTC).replace(microsecond=0)
    try:
        started = time.perf_counter()
        updates = _risk_columns(s, students, 3, now, rng)
        events = _event_columns(s, students, 7, now, rng)
        console.print(
            f"loaded {students:,} students: {updates:,} risk updates, {events:,} events "
            f"in {time.perf_counter() - started:.1f} s into {database}"
        )
        warehouse, stamp, today = Warehouse(s), now.strftime("%Y-%m-%d %H:%M:%S"), now.date()
        month = {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
        baselines = {
            "/admin": lambda: (
                warehouse.records("live_activity", {"now": stamp}),
                warehouse.records("tiers_over_time", {"from": today.isoformat(), "to": today.isoformat()}),
                warehouse.records("tiers_over_time", month),
            ),
            "/admin/at-risk": lambda: (
                warehouse.records("at_risk_page", {"now": stamp}),
                warehouse.records("at_risk_count"),
            ),
        }
        results: dict[str, Any] = {"students": students, "risk_updates": updates, "events": events, "pages": {}}
        with running(s) as url:
            client = httpx.Client(base_url=url, timeout=60)
            login = client.post("/login", data={"key": s.admin_keys[0].partition(":")[2]})
            if login.status_code != 303:
                raise RuntimeError(f"cannot log in to the dashboards: {login.status_code} {login.text[:200]}")
            for path, baseline in baselines.items():
                _timed(baseline, 3)  # warm: connections, marks in the page cache

                def fetch(path: str = path) -> None:
                    answer = client.get(path)
                    errors = re.findall(r'class="panel-error" role="alert">(.*?)</div>', answer.text, re.S)
                    errors = [e for e in errors if "Outreach items" not in e]  # no desk runs here: refused at once
                    if answer.status_code != 200 or errors:
                        raise RuntimeError(f"{path} answered {answer.status_code}: {errors}")

                fetch()
                results["pages"][path] = {
                    "page": _percentiles(_timed(fetch, requests)),
                    "baseline_bare_queries": _percentiles(_timed(baseline, requests)),
                }
    finally:
        connect(s).execute(f"DROP DATABASE IF EXISTS {database}")
    table = RichTable(title=f"first render, {students:,} students, {requests} requests each (ms)")
    for column in ("page", "p50", "p95", "max", "bare queries p50", "bare queries p95", "aim p95"):
        table.add_column(column)
    for path, r in results["pages"].items():
        page, base = r["page"], r["baseline_bare_queries"]
        table.add_row(
            path,
            f"{page['p50_ms']}",
            f"{page['p95_ms']}",
            f"{page['max_ms']}",
            f"{base['p50_ms']}",
            f"{base['p95_ms']}",
            "< 1000",
        )
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return results


def bench_dashboards(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/dashboards.json"),
    students: Annotated[int, typer.Option(help="Students in the warehouse")] = 100_000,
    requests: Annotated[int, typer.Option(help="Requests per page")] = 50,
) -> None:
    """First render of /admin and /admin/at-risk (p50/p95) against the bare named queries, in a fresh database."""
    from deploy import server
    from deploy.infra import Infra

    settings = get_settings()
    started = server.start(Infra.from_settings(settings).clickhouse)  # only ClickHouse: the pages need no Kafka
    if not started.already_running:
        typer.echo(f"clickhouse started, ready in {started.seconds_to_ready:.2f} s")
    run_dashboards_bench(settings, Console(width=120), out, students, requests)
