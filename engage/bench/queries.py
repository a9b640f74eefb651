"""`engage bench queries`: latency of every named analyst query over a warehouse of >= 10M simulator events.

The warehouse is what the live system would have stored: simulator events through the events sink's own
landing rows (so the materialized views build the daily aggregates), and the processors' real output for
them (signals, heuristic scores, policy decisions) computed in-process by ``processors.pipeline``: each
student is re-scored at the end of every day they were active and weekly while silent (the worker re-scores
silent students daily; weekly halves the generation time).

Simulating and scoring costs about 130 µs of CPU per event, and the ClickHouse server as much again to land
it, so 10M events took 11 minutes on two cores: most of `make bench`. The simulator therefore generates
``1/copies`` of the students, and the server copies their rows ``copies - 1`` times under new ids
(``c1-``, ``c2-``, ... before every student, event, update and intervention id) with INSERT ... SELECT,
table by table, so the daily views receive the copies as well. Each copy is a cohort that behaves like the
simulated one: query answers (rates, curves) are those of the simulated students, while every query reads
``copies`` times the rows and students, which is what its latency depends on.
Generation runs in two processes; the dataset is kept in its own database and reused while its recipe matches.

Baseline, same run: active student-days counted straight from the raw events (FINAL) against the same count
from the daily activity view; both must agree.
"""

from __future__ import annotations

import gc
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from analytics.catalog import load_all
from analytics.runner import run
from config.settings import Settings
from engage.bench.report import Figure, Report, timed
from engage.simulator import Population, iter_event_days
from kafka_io.producer import group_by_user
from models.heuristic import HeuristicModel
from processors.pipeline import ScoreRequest, UserRecord, ingest, rescore
from processors.policy import policy_from_file
from processors.streaks import ACTIVE_EVENT_TYPES
from sinks.behavior_events import landing_rows
from sinks.clickhouse.client import connect, insert_columns
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.tables import (
    BEHAVIOR_EVENTS,
    BEHAVIOR_EVENTS_LANDING,
    INTERVENTION_REQUESTS,
    RISK_UPDATES,
    USER_DAILY_ACTIVITY,
    Table,
)
from sinks.contract_sinks import contract_row

EVENTS_PER_STUDENT_DAY = 5.0  # the simulator produces about 5.3 per student-day over 8 weeks: aim a bit over
FLUSH_ROWS = 200_000


@dataclass(frozen=True)
class QueryBenchConfig:
    events: int = 10_000_000
    days: int = 56
    processes: int = 2
    runs: int = 3
    seed: int = 11
    silent_rescore_days: int = 7
    copies: int = 4


@dataclass(frozen=True)
class Recipe:
    """What the stored dataset was generated from; a different recipe regenerates it."""

    events: int
    days: int
    processes: int
    seed: int
    silent_rescore_days: int
    end_day: str
    copies: int = 1

    def key(self) -> str:
        return orjson.dumps(asdict(self), option=orjson.OPT_SORT_KEYS).decode()


def _buffer(table: Table) -> list[list[Any]]:
    return [[] for _ in table.column_names]


def _flush(client: Any, database: str, table: Table, columns: list[list[Any]]) -> int:
    n = insert_columns(client, f"{database}.{table.name}", table.column_names, columns)
    for column in columns:
        column.clear()
    return n


def generate_slice(settings_json: str, database: str, slice_no: int, students: int, recipe_json: str) -> dict[str, int]:
    """One process's share: a population of its own, its events, and the pipeline's output for them.

    The cyclic garbage collector is off in this short-lived process: nothing here forms cycles, and with
    every student's record alive its full collections were about a fifth of the time.
    """
    gc.disable()
    settings = Settings.model_validate_json(settings_json)
    recipe = Recipe(**orjson.loads(recipe_json))
    client = connect(settings)
    start = date.fromisoformat(recipe.end_day) - timedelta(days=recipe.days - 1)
    population = Population.generate(students, seed=recipe.seed + slice_no, start=start)
    model, policy = HeuristicModel(), policy_from_file()
    records: dict[str, UserRecord] = {}
    landing, risks, requests = _buffer(BEHAVIOR_EVENTS_LANDING), _buffer(RISK_UPDATES), _buffer(INTERVENTION_REQUESTS)
    counts = {"events": 0, "risk_updates": 0, "intervention_requests": 0}
    offset = 0
    for day, events in iter_event_days(population, recipe.days):
        for event in events:
            event["user_id"] = f"p{slice_no}-{event['user_id']}"
            event["event_id"] = f"p{slice_no}-{event['event_id']}"
        active_today = set()
        for user, user_events in group_by_user(events).items():
            record = records.get(user) or UserRecord.load(None, user)
            ingest(record, user, user_events)
            records[user] = record
            active_today.add(user)
            offset += 1
            value = orjson.dumps({"schema_version": 1, "user_id": user, "source": "bench", "events": user_events})
            for row in landing_rows(value, slice_no, offset):
                for column, v in zip(landing, row, strict=True):
                    column.append(v)
        day_end = datetime.combine(start + timedelta(days=day), datetime.max.time(), UTC).replace(microsecond=0)
        due = [u for u in records if u in active_today or day % recipe.silent_rescore_days == 0]
        batch = [records[u] for u in due]
        asks = [ScoreRequest(u, day_end, "events" if u in active_today else "silence") for u in due]
        for outcome in rescore(batch, asks, model, policy, now=day_end, policy_now=day_end):
            offset += 1
            for column, v in zip(
                risks, contract_row(RISK_UPDATES, outcome.update.model_dump(mode="json"), slice_no, offset), strict=True
            ):
                column.append(v)
            if outcome.intervention is not None:
                row = contract_row(
                    INTERVENTION_REQUESTS, outcome.intervention.model_dump(mode="json"), slice_no, offset
                )
                for column, v in zip(requests, row, strict=True):
                    column.append(v)
        if len(landing[0]) >= FLUSH_ROWS:
            counts["events"] += _flush(client, database, BEHAVIOR_EVENTS_LANDING, landing)
        if len(risks[0]) >= FLUSH_ROWS // 4:
            counts["risk_updates"] += _flush(client, database, RISK_UPDATES, risks)
            counts["intervention_requests"] += _flush(client, database, INTERVENTION_REQUESTS, requests)
    counts["events"] += _flush(client, database, BEHAVIOR_EVENTS_LANDING, landing)
    counts["risk_updates"] += _flush(client, database, RISK_UPDATES, risks)
    counts["intervention_requests"] += _flush(client, database, INTERVENTION_REQUESTS, requests)
    return counts


# Where a student's copy must differ: the ids that name a student or one of their events, updates and
# interventions (intervention ids also appear on the events that answer an intervention, so both change alike).
_RENAMED = ("user_id", "signals_user_id", "event_id", "update_id", "intervention_id")
# The tables the simulator fills, and the daily activity view's target (its view reads the landing table, which
# a copy bypasses). Risk updates are copied through their table, so the daily signals view fills itself.
_COPIED = (BEHAVIOR_EVENTS, USER_DAILY_ACTIVITY, RISK_UPDATES, INTERVENTION_REQUESTS)


def copy_select(table: Table, copy_no: int) -> str:
    """INSERT ... SELECT of the simulated rows of ``table`` as copy ``copy_no``; runs on 18.16 and current."""
    columns = ", ".join(table.column_names)
    values = ", ".join(
        f"if({c} = '', {c}, concat('c{copy_no}-', {c}))" if c in _RENAMED else c for c in table.column_names
    )
    return (
        f"INSERT INTO {{database}}.{table.name} ({columns}) SELECT {values} "
        f"FROM {{database}}.{table.name} WHERE user_id NOT LIKE 'c%'"
    )


def copy_students(client: Any, database: str, copies: int) -> int:
    """Copy every simulated student ``copies - 1`` times under new ids, server-side; the rows added."""
    before = sum(client.execute(f"SELECT count() FROM {database}.{t.name}")[0][0] for t in _COPIED)
    for copy_no in range(1, copies):
        for table in _COPIED:
            client.execute(copy_select(table, copy_no).format(database=database))
    after = sum(client.execute(f"SELECT count() FROM {database}.{t.name}")[0][0] for t in _COPIED)
    return int(after - before)


def _stored_recipe(client: Any, database: str) -> str | None:
    exists = client.execute(
        f"SELECT count() FROM system.tables WHERE database = '{database}' AND name = 'bench_recipe'"
    )
    if not exists[0][0]:
        return None
    rows = client.execute(f"SELECT recipe FROM {database}.bench_recipe")
    return str(rows[0][0]) if rows else None


def build_warehouse(settings: Settings, config: QueryBenchConfig, console: Console, regenerate: bool) -> Recipe:
    database = f"{settings.clickhouse_database}_qbench"
    client = connect(settings)
    end_day = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    recipe = Recipe(
        config.events, config.days, config.processes, config.seed, config.silent_rescore_days, end_day, config.copies
    )
    stored = _stored_recipe(client, database)
    if stored is not None and not regenerate:
        old = Recipe(**orjson.loads(stored))
        if asdict(old) | {"end_day": ""} == asdict(recipe) | {"end_day": ""}:
            console.print(f"reusing the warehouse {database} (generated for {old.end_day}; --regenerate to rebuild)")
            return old
    client.execute(f"DROP DATABASE IF EXISTS {database}")
    migrate(client, database)
    students = int(config.events / (EVENTS_PER_STUDENT_DAY * config.days) / config.processes / config.copies) + 1
    console.print(
        f"simulating {config.processes} x {students:,} students x {config.days} days, then {config.copies - 1} "
        f"copies under new ids (aim: {config.events:,} events) into {database} ..."
    )
    started = time.monotonic()
    totals = {"events": 0, "risk_updates": 0, "intervention_requests": 0}
    with ProcessPoolExecutor(config.processes, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(
                generate_slice, settings.model_dump_json(), database, k, students, orjson.dumps(asdict(recipe)).decode()
            )
            for k in range(config.processes)
        ]
        for f in futures:
            for k, v in f.result().items():
                totals[k] += v
    simulated = time.monotonic() - started
    copied = copy_students(client, database, config.copies)
    seconds = time.monotonic() - started
    console.print(
        f"simulated {totals['events']:,} events, {totals['risk_updates']:,} risk updates, "
        f"{totals['intervention_requests']:,} intervention requests in {simulated:.0f} s; "
        f"{copied:,} rows copied in {seconds - simulated:.0f} s"
    )
    client.execute(f"CREATE TABLE {database}.bench_recipe (recipe String) ENGINE = TinyLog")
    insert_columns(client, f"{database}.bench_recipe", ["recipe"], [[recipe.key()]])
    client.execute(f"OPTIMIZE TABLE {database}.behavior_events FINAL")  # merged, as a long-running table would be
    return recipe


def _time(fn: Any, runs: int) -> tuple[list[float], Any]:
    """Milliseconds per run after a warm-up, and the answer."""
    seconds, result = timed(fn, runs)
    return [t * 1000 for t in seconds], result


def run_query_bench(settings: Settings, config: QueryBenchConfig, out: Path | None, regenerate: bool = False) -> Report:
    console = Console()
    recipe = build_warehouse(settings, config, console, regenerate)
    database = f"{settings.clickhouse_database}_qbench"
    client = connect(settings, database)
    end = date.fromisoformat(recipe.end_day)
    first = end - timedelta(days=recipe.days - 1)
    sizes = {
        t: client.execute(f"SELECT count() FROM {t}")[0][0]
        for t in (
            "behavior_events",
            "user_daily_activity",
            "risk_updates",
            "user_daily_signals",
            "intervention_requests",
        )
    }
    report = Report(
        "Named analyst queries over the simulator warehouse", context={"rows": sizes, "recipe": asdict(recipe)}
    )
    params: dict[str, dict[str, str]] = {
        "weekly_cohort_retention": {"from": first.isoformat(), "to": end.isoformat(), "as_of": end.isoformat()},
        "engagement_growth": {"from": (end - timedelta(days=27)).isoformat(), "to": end.isoformat()},
        "at_risk_now": {},
        "tier_transitions": {"week": (end - timedelta(days=7)).isoformat()},
        "intervention_effectiveness": {"from": first.isoformat(), "as_of": end.isoformat()},
        "prediction_accuracy": {"from": first.isoformat(), "as_of": end.isoformat()},
        "prediction_calibration": {"from": first.isoformat(), "as_of": end.isoformat()},
        "streak_distribution": {"as_of": end.isoformat()},
    }
    for name in load_all():
        times, result = _time(lambda name=name: run(client, name, params.get(name, {})), config.runs)
        report.add(
            Figure(
                f"{name}",
                statistics.median(times),
                "ms",
                notes=f"median of {config.runs} after a warm-up; min {min(times):.0f} ms; {len(result.rows)} rows",
            )
        )
    types = ", ".join(f"'{t}'" for t in sorted(ACTIVE_EVENT_TYPES))
    raw_sql = f"SELECT uniqExact(user_id, toDate(event_time)) FROM behavior_events FINAL WHERE event_type IN ({types})"
    view_sql = (
        "SELECT count() FROM (SELECT user_id, day FROM user_daily_activity GROUP BY user_id, day "
        "HAVING maxMerge(active) = 1)"
    )
    raw_times, raw_answer = _time(lambda: client.execute(raw_sql)[0][0], config.runs)
    view_times, view_answer = _time(lambda: client.execute(view_sql)[0][0], config.runs)
    if raw_answer != view_answer:
        raise RuntimeError(f"daily view disagrees with raw events: {view_answer} vs {raw_answer} active student-days")
    report.add(
        Figure(
            "active student-days from the daily view",
            statistics.median(view_times),
            "ms",
            "from raw events (FINAL)",
            statistics.median(raw_times),
            notes=f"both count {view_answer:,} active student-days; ratio < 1 means the view is faster",
        )
    )
    report.print(console)
    console.print("rows: " + ", ".join(f"{t} {n:,}" for t, n in sizes.items()))
    if out is not None:
        console.print(f"wrote {report.save(out)}")
    return report
