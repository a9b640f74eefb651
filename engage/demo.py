"""`make demo`: bring everything up, stream a simulated cohort through the real pipeline, show what arrived.

Everything stays up afterwards so the data can be explored and keeps moving: Kafka and ClickHouse, and the
services (``engage.background``: collector, sinks, worker, notify, desk, leaderboards) with a trickle of simulated
traffic. `make down` stops them all by PID; the next `make demo` stops the previous demo's services first.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from config.settings import Settings
from dashboards.student import student_link
from deploy.infra import Infra
from deploy.process import port_open
from deploy.providers.process import serve_args, standin_ports
from engage import background
from engage.children import wait_for_sinks, wait_for_worker
from engage.demo_analytics import show_analytics
from engage.demo_experiments import collect_experiments, show_experiments
from engage.demo_game import collect_gamification, show_gamification
from engage.demo_notify import (
    delivery_settings,
    engage_with_messages,
    publish_demo_contacts,
    show_notifications,
    wait_for_notify,
    work_the_desk,
)
from engage.demo_risk import show_risk
from engage.traffic import TrafficPlan, run_traffic
from kafka_io.admin import Replication, ensure_topics
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import create_all

DEMO_STUDENTS = 400
DEMO_DAYS = 28
DEMO_SEED = 2026


def _bad_events(collector: str, key: str) -> list[dict[str, Any]]:
    """A few broken events, as buggy clients send them, to show per-event reasons and dead letters."""
    now = datetime.now(UTC).isoformat()
    batch = [
        {
            "event_id": "demo-bad-1",
            "user_id": "demo-user",
            "event_type": "quiz_submitted",
            "event_time": now,
            "platform": "web",
            "course_id": "c1",
            "payload": {"quiz_id": "q1", "score": 12.0, "max_score": 10.0},
        },
        {
            "event_id": "demo-bad-2",
            "user_id": "demo-user",
            "event_type": "lesson_finished",
            "event_time": now,
            "platform": "ios",
        },
        {
            "event_id": "demo-bad-3",
            "user_id": "demo-user",
            "event_type": "login",
            "event_time": "yesterday",
            "platform": "smart-tv",
        },
    ]
    resp = httpx.post(f"{collector}/v1/events", json={"events": batch}, headers={"Authorization": f"Bearer {key}"})
    resp.raise_for_status()
    return list(resp.json()["rejected"])


def _count(settings: Settings, since: datetime) -> int:
    rows = connect(settings).execute(
        f"SELECT count() FROM {settings.clickhouse_database}.behavior_events FINAL WHERE received_at >= %(t)s",
        {"t": since.replace(tzinfo=None, microsecond=0)},
    )
    return int(rows[0][0])


def run_demo(settings: Settings, console: Console) -> None:
    console.rule("[bold]engage demo")
    infra = Infra.from_settings(settings)
    for started in infra.up():
        state = "already running" if started.already_running else f"ready in {started.seconds_to_ready:.2f} s"
        console.print(f"  {started.name:<11} {state} (pid {started.pid})")
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    ensure_topics(settings.kafka, topics.all(), replication=Replication(*settings.kafka_replication))
    create_all(connect(settings), settings.clickhouse_database)
    log_dir = settings.run_dir / "demo"
    collector = f"http://{settings.collector_host}:{settings.collector_port}"
    key = settings.write_keys[0].partition(":")[2]
    since = datetime.now(UTC).replace(microsecond=0)
    # Four weeks of behaviour replayed in seconds: the worker judges each moment by the event clock, or every
    # early event would look weeks old and every student would look gone.
    settings = settings.model_copy(update={"worker_clock": "event", "silence_tick_seconds": 2.0})
    settings = delivery_settings(settings)
    record_dir = log_dir / "providers"
    contacts = publish_demo_contacts(settings, DEMO_STUDENTS, DEMO_SEED)
    worker_url = f"http://{settings.worker_host}:{settings.worker_web_port}"
    _start_services(settings, record_dir, worker_url, console)
    console.print(f"  collector   listening on {collector} (OpenAPI at {collector}/openapi.json)")
    console.print(f"  worker      signals, streaks, scoring; engagement API on {worker_url}")
    console.print(
        f"  notify      delivering interventions to local SMTP/FCM/Twilio stand-ins and the in-app inbox "
        f"({contacts} student contacts published)"
    )
    console.print(f"  desk        outreach queue and offers on http://127.0.0.1:{settings.desk_port}")
    console.print(f"  boards      XP leaderboards (global and per course) on {settings.leaderboards_base}")
    console.print(
        f"\nStreaming {DEMO_STUDENTS} simulated students x {DEMO_DAYS} days through the HTTP collector "
        "(time compressed, event times preserved) ..."
    )
    plan = TrafficPlan(
        students=DEMO_STUDENTS,
        days=DEMO_DAYS,
        seed=DEMO_SEED,
        via="collector",
        truth_path=log_dir / "ground_truth.jsonl",
    )
    result = run_traffic(plan, settings, console)
    rejected = _bad_events(collector, key)
    console.print(
        f"  {result.accepted:,} events accepted in {result.seconds:.1f} s; "
        f"{len(rejected)} deliberately broken events refused and dead-lettered"
    )
    console.print("Waiting for the sink to store everything in ClickHouse ...")
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline:
        stored = _count(settings, since)
        if stored >= result.accepted:
            break
        time.sleep(0.5)
    lag = time.monotonic() - (deadline - 120)
    if stored < result.accepted:
        raise RuntimeError(
            f"only {stored:,} of {result.accepted:,} events reached ClickHouse in 120 s; "
            f"see {background.log_of('sink', settings)}"
        )
    console.print(f"  {stored:,} rows in behavior_events ({lag:.1f} s after the last event was sent)")
    processed = wait_for_worker(worker_url, result.accepted, timeout=180)
    time.sleep(2.5 * settings.silence_tick_seconds)  # one silence pass: students who went quiet re-scored
    console.print(f"  {processed:,} events folded into student state and scored by the worker")
    wait_for_notify(settings)
    wait_for_sinks(settings)  # risk updates, interventions, milestones and outcomes stored too
    console.print("Students open, click and read their messages; the success team works the queue ...")
    engagement = engage_with_messages(settings, record_dir, worker_url)
    work_the_desk(settings, record_dir, engagement)
    game = collect_gamification(settings, worker_url)
    tried = collect_experiments(settings, worker_url)
    time.sleep(2.0)
    wait_for_sinks(settings)
    _summary(settings, console, since, rejected, log_dir / "ground_truth.jsonl")
    show_risk(settings, console, since, log_dir / "ground_truth.jsonl")
    console.rule("[bold]Interventions delivered")
    show_notifications(settings, console, record_dir, engagement)
    show_gamification(settings, console, game)
    show_experiments(settings, console, tried)
    show_analytics(settings, console)
    background.start("trickle", ["trickle", "--students", str(DEMO_STUDENTS), "--days", str(DEMO_DAYS),
                                 "--seed", str(DEMO_SEED)], settings)  # fmt: skip
    _still_running(settings, console, worker_url)


# The services the demo starts and leaves running: (name, engage arguments, URL that answers once it is up).
def _start_services(settings: Settings, record_dir: Path, worker_url: str, console: Console) -> None:
    """Stop what a previous `make demo` left running, then start every service detached (`make down` stops them)."""
    stopped = [name for name, was in background.stop_all(settings).items() if was]
    if stopped:
        console.print(f"  stopped what the last demo left running: {', '.join(stopped)}")
    services = [
        ("providers", serve_args(settings, record_dir), None),
        ("collector", ["collector"], f"http://{settings.collector_host}:{settings.collector_port}/readyz"),
        ("sink", ["sink", "all"], None),
        ("worker", ["worker"], f"{worker_url}/healthz"),
        ("notify", ["notify", "--instance", "notify-1"], None),
        ("desk", ["desk", "serve"], f"http://127.0.0.1:{settings.desk_port}/healthz"),
        ("leaderboards", ["leaderboards", "serve"], f"{settings.leaderboards_base}/readyz"),
        ("dashboards", ["dashboards", "serve"], f"{settings.dashboards_url}/healthz"),
    ]
    pids = {name: background.start(name, args, settings) for name, args, _ in services}
    smtp = standin_ports(settings)[0]
    background.wait_until("providers", lambda: port_open("127.0.0.1", smtp), pids["providers"], settings)
    for name, _, url in services:
        if url is not None:
            background.wait_http(name, url, pids[name], settings)


def _still_running(settings: Settings, console: Console, worker_url: str) -> None:
    server_key = settings.server_keys[0].partition(":")[2]
    admin_key = settings.admin_keys[0].partition(":")[2]
    running = background.running(settings)
    student = _busiest_student(settings)
    console.rule("[bold]Open in a browser")
    console.print(f"Admin dashboard (log in with the key {admin_key}):")
    console.print(f"  {settings.dashboards_url}/admin", soft_wrap=True)
    console.print(f"{student}'s own page (valid {settings.student_link_hours:g} h; "
                  "another student's: engage dashboards student-link USER_ID):")  # fmt: skip
    console.print(f"  {student_link(settings, student)}", soft_wrap=True)
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"Running in the background: {', '.join(running)} (PIDs in {background.services_dir(settings)})",
                    "with a trickle of simulated students (their next days, compressed) through the collector.",
                    f"Engagement API: curl -H 'Authorization: Bearer {server_key}' "
                    f"{worker_url}/v1/users/sim-000001/engagement",
                    "Stop everything (services, Kafka, ClickHouse) by PID:  make down",
                ]
            ),
            title="Still running",
            border_style="cyan",
        )
    )


def _summary(
    settings: Settings, console: Console, since: datetime, rejected: list[dict[str, Any]], truth: Path
) -> None:
    db = settings.clickhouse_database
    client = connect(settings)
    params = {"t": since.replace(tzinfo=None)}
    by_type = client.execute(
        f"SELECT event_type, platform, count() FROM {db}.behavior_events FINAL WHERE received_at >= %(t)s "
        "GROUP BY event_type, platform ORDER BY event_type, platform",
        params,
    )
    platforms = sorted({p for _, p, _ in by_type})
    counts: dict[str, dict[str, int]] = {}
    for event_type, platform, n in by_type:
        counts.setdefault(event_type, {})[platform] = n
    table = Table(title="Events in ClickHouse by type and platform", title_justify="left")
    table.add_column("event type")
    for p in platforms:
        table.add_column(p, justify="right")
    table.add_column("total", justify="right", style="bold")
    for event_type, row in sorted(counts.items(), key=lambda kv: -sum(kv[1].values())):
        table.add_row(event_type, *(f"{row.get(p, 0):,}" for p in platforms), f"{sum(row.values()):,}")
    console.print(table)

    daily = client.execute(
        f"SELECT toDate(event_time) AS day, uniqExact(user_id) FROM {db}.behavior_events FINAL "
        "WHERE received_at >= %(t)s GROUP BY day ORDER BY day",
        params,
    )
    top = max((n for _, n in daily), default=1)
    chart = Table(title="Active students per day (UTC)", title_justify="left", show_header=False, box=None)
    chart.add_column(justify="right")
    chart.add_column()
    chart.add_column(justify="right")
    for day, n in daily:
        chart.add_row(day.strftime("%a %d %b"), "█" * max(1, round(40 * n / top)), str(n))
    console.print(chart)

    if rejected:
        console.print("[bold]Refused events (answered to the client, kept in the dead-letter topic):[/bold]")
        for r in rejected:
            console.print(f"  #{r['index']} {r['event_id']}: {r['reason']}")

    topic = catalogue(settings.topic_prefix, settings.event_partitions)
    console.print(
        Panel.fit(
            "\n".join(
                [
                    f"ClickHouse:  clickhouse-client --port {settings.clickhouse_port} -d {db}",
                    "             SELECT event_type, count() FROM behavior_events FINAL GROUP BY event_type",
                    f"Kafka:       {settings.kafka}  topics {topic.events.name}, {topic.dead_letters.name}",
                    f"Who churns:  {truth} (the simulator's ground truth)",
                    "Analysts:     .venv/bin/engage query   (lists the named queries; --format csv|json)",
                    "More traffic: .venv/bin/engage simulate --students 2000 --days 60 --via collector",
                    f"E-mails:      {settings.run_dir / 'demo' / 'providers' / 'mail'} (as received by SMTP)",
                    "Delivery:     .venv/bin/engage notify   .venv/bin/engage desk serve | list --state overdue",
                    "Experiments:  .venv/bin/engage experiments report send-time-high-tier   (deploy/policy/"
                    "experiments.json)",
                    "Benchmarks:   make bench        Stop servers: make down",
                    f"Engagement:   curl -H 'Authorization: Bearer {settings.server_keys[0].partition(':')[2]}' "
                    f"http://{settings.worker_host}:{settings.worker_web_port}/v1/users/sim-000001/engagement",
                    "              (the worker API is up only while a worker runs: .venv/bin/engage worker)",
                ]
            ),
            title="Where to look next",
            border_style="green",
        )
    )


def _busiest_student(settings: Settings) -> str:
    """The student with the most events: their page has the most to show."""
    rows = connect(settings).execute(
        f"SELECT user_id, count() AS n FROM {settings.clickhouse_database}.behavior_events "
        "GROUP BY user_id ORDER BY n DESC, user_id LIMIT 1"
    )
    return str(rows[0][0]) if rows else "sim-000001"
