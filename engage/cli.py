"""The ``engage`` command line. Each command is thin: it reads settings and calls the module that does the work."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from rich.console import Console

from config.settings import get_settings
from engage import db_cli, experiments_cli, gamification_cli, kafka_cli, notify_cli
from engage.bench.bandit import bench_bandit
from engage.bench.dashboards import bench_dashboards
from engage.bench.experiments import bench_experiments
from engage.bench.game_core import bench_game_core
from engage.bench.leaderboard_command import bench_leaderboard
from engage.bench.notify_command import bench_notify
from engage.bench.oulad_profile import bench_oulad_profile
from engage.bench.profile import bench_profile
from engage.bench.replay_core import bench_replay_core
from engage.bench.sdk import bench_sdk

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Student engagement and retention engine.")
infra_app = typer.Typer(no_args_is_help=True, help="Local Kafka and ClickHouse (start, stop, status).")
schemas_app = typer.Typer(no_args_is_help=True, help="Event contracts.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics from the catalogue.")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks with same-run baselines.")
replay_app = typer.Typer(no_args_is_help=True, help="Replay public datasets through the live pipeline.")
model_app = typer.Typer(no_args_is_help=True, help="Train, list, promote and roll back risk models.")
app.add_typer(infra_app, name="infra")
app.add_typer(schemas_app, name="schemas")
app.add_typer(topics_app, name="topics")
app.add_typer(db_cli.app, name="db")  # engage db migrate | status | ddl | retention | copy | new-nodes
app.add_typer(bench_app, name="bench")
app.add_typer(replay_app, name="replay")
app.add_typer(model_app, name="model")
privacy_app = typer.Typer(no_args_is_help=True, help="Erase a student everywhere (the right to erasure).")
app.add_typer(privacy_app, name="privacy")
app.add_typer(notify_cli.app)  # engage notify, engage contacts import
app.add_typer(gamification_cli.app, name="gamification")  # engage gamification backfill
app.add_typer(experiments_cli.app, name="experiments")  # engage experiments report NAME, engage experiments check FILE
app.add_typer(kafka_cli.app, name="kafka")  # engage kafka users, set-password USER, delete-user USER, keystore PATH

# Tables (benchmarks, the demo's summary) need more than the 80 columns assumed when output is not a terminal.
console = Console(width=max(Console().width, 120))


@infra_app.command("up")
def infra_up() -> None:
    """Start ClickHouse and Kafka (idempotent) and say how long each took to be ready."""
    from deploy.infra import Infra

    settings = get_settings()
    for started in Infra.from_settings(settings).up():
        state = "already running" if started.already_running else "started"
        console.print(f"{started.name:<11} {state} (pid {started.pid}), ready in {started.seconds_to_ready:.2f} s")
    from kafka_io.admin import Replication, ensure_topics
    from schemas.topics import catalogue

    created = ensure_topics(
        settings.kafka,
        catalogue(settings.topic_prefix, settings.event_partitions).all(),
        replication=Replication(*settings.kafka_replication),
    )
    if created:
        console.print(f"topics      created: {', '.join(created)}")


@infra_app.command("down")
def infra_down() -> None:
    """Stop what this project started, by the recorded PIDs: the services `make demo` left running, then the
    servers."""
    from deploy.infra import Infra
    from engage.background import stop_all

    settings = get_settings()
    for name, stopped in stop_all(settings).items():
        console.print(f"{name:<11} {'stopped' if stopped else 'was not running'}")
    for name, stopped in Infra.from_settings(settings).down().items():
        console.print(f"{name:<11} {'stopped' if stopped else 'was not running'}")


@infra_app.command("status")
def infra_status() -> None:
    from deploy.infra import Infra

    for name, state in Infra.from_settings(get_settings()).status().items():
        console.print(f"{name:<11} {state}")


@schemas_app.command("export")
def schemas_export(
    out: Annotated[Path, typer.Option(help="Directory for the .schema.json files")] = Path("build/schemas"),
) -> None:
    """Write JSON Schema for every contract, for client SDK authors."""
    from schemas.export import export

    for path in export(out):
        console.print(f"wrote {path}")


@topics_app.command("create")
def topics_create() -> None:
    """Create every catalogue topic that does not exist yet."""
    from kafka_io.admin import Replication, ensure_topics
    from schemas.topics import catalogue

    s = get_settings()
    created = ensure_topics(
        s.kafka,
        catalogue(s.topic_prefix, s.event_partitions).all(),
        replication=Replication(*s.kafka_replication),
    )
    console.print(f"created: {', '.join(created) or 'nothing (all exist)'}")


@topics_app.command("move")
def topics_move(
    from_prefix: Annotated[str, typer.Option(help="The catalogue the state comes from (its ENGAGE_TOPIC_PREFIX)")],
) -> None:
    """Carry the state of an old catalogue (another prefix, fewer partitions) into the settings' catalogue: the
    compacted topics, the bandit's outcomes and the workers' table, each message to the partition its student
    hashes to now. Refused while a consumer group of the old catalogue runs or has not caught up
    (deploy/SCALING.md, "Growing past the partition count")."""
    from kafka_io.admin import Replication, connect_admin
    from kafka_io.catalogue_move import NotDrained, move_catalogue
    from schemas.topics import catalogue
    from streams.worker.state_move import carried_table

    s = get_settings()
    if from_prefix == s.topic_prefix:
        raise typer.BadParameter("the old catalogue must differ from the settings' (ENGAGE_TOPIC_PREFIX)")
    _, cluster = connect_admin(s.kafka)
    old_events = catalogue(from_prefix).events.name
    if old_events not in cluster.topics:
        console.print(f"[red]error:[/] no topic {old_events} on Kafka at {s.kafka}: is {from_prefix!r} the old prefix?")
        raise typer.Exit(2)
    old_partitions = len(cluster.topics[old_events].partitions)
    old, new = catalogue(from_prefix, old_partitions), catalogue(s.topic_prefix, s.event_partitions)
    try:
        report = move_catalogue(s.kafka, old, new, Replication(*s.kafka_replication),
                                (carried_table(from_prefix, old_partitions, s),))  # fmt: skip
    except NotDrained as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"{from_prefix} ({old_partitions} partitions) -> {s.topic_prefix} ({s.event_partitions} partitions)")
    for topic, copied in report.copied.items():
        console.print(f"  {topic:<55} {copied:>9,} messages")
    left = sum(report.left_behind.values())
    console.print(f"  not carried: {left:,} (deleted keys, and the workers' positions in the old events topic)")


@app.command("query")
def query(
    name: Annotated[str | None, typer.Argument(help="A named query; leave out to list them")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v (repeatable)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    show_sql: Annotated[bool, typer.Option("--sql", help="Print the SQL instead of running it")] = False,
) -> None:
    """Run a named analyst query (cohort retention, growth, at-risk list, effectiveness, accuracy, ...)."""
    from rich.table import Table as RichTable

    from analytics.catalog import QueryError, get, load_all
    from analytics.runner import as_csv, as_json, as_text_rows, run
    from sinks.clickhouse.client import connect

    if name is None:
        for q in load_all().values():
            console.print(f"[bold]{q.name}[/bold]  {q.answers}")
            for p in q.params:
                console.print(f"    --param {p.name}=<{p.type}>  {p.description} (default {p.default})")
        return
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter(f"--format must be table, csv or json, not {fmt!r}")
    values: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"--param wants k=v, got {item!r}")
        values[key] = value
    try:
        if show_sql:
            typer.echo(get(name).render(values))
            return
        s = get_settings()
        result = run(connect(s, s.clickhouse_database), name, values)
    except QueryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if fmt == "csv":
        typer.echo(as_csv(result), nl=False)
    elif fmt == "json":
        typer.echo(as_json(result))
    else:
        table = RichTable(title=name)
        for column in result.columns:
            table.add_column(column)
        for cells in as_text_rows(result):
            table.add_row(*cells)
        console.print(table)


@app.command("collector")
def collector(
    host: Annotated[str | None, typer.Option(help="Bind address (default settings.bind_host)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings)")] = None,
) -> None:
    """Serve the HTTP collector."""
    import uvicorn

    from streams.collector.app import create_app

    s = get_settings()
    uvicorn.run(
        create_app(s),
        host=host or s.bind_host,
        port=port or s.collector_port,
        log_level="warning",
        access_log=False,
    )


@app.command("worker")
def worker(
    web_port: Annotated[int | None, typer.Option(help="Port of this worker's API (default from settings)")] = None,
    loglevel: Annotated[str, typer.Option(help="crit, error, warn, info or debug")] = "warn",
) -> None:
    """Run a stream-processing worker (signals, streaks, scoring, interventions, engagement API)."""
    from streams.worker.app import run_worker

    s = get_settings()
    if web_port is not None:
        s = s.model_copy(update={"worker_web_port": web_port})
    run_worker(s, loglevel=loglevel)


@app.command("sink")
def sink(
    names: Annotated[
        list[str],
        typer.Argument(
            help="events, risk-updates, interventions, outcomes, milestones, dead-letters, xp-awards, level-ups, "
            "achievements, celebrations, leaderboard-snapshots, league-results, exposures, profiles, bandit-outcomes, "
            "erasures (the warehouse half of erasing a student), all"
        ),
    ],
    idle_exit: Annotated[float | None, typer.Option(help="Return after this many idle seconds")] = None,
) -> None:
    """Persist topics into ClickHouse (one thread per sink; offsets committed only after each insert)."""
    from sinks.positions import SERVICE_NAMES
    from sinks.service import run_sinks, serve_metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    chosen = list(SERVICE_NAMES) if names == ["all"] else names
    s = get_settings()
    serve_metrics(s)
    for name, stats in run_sinks(s, chosen, idle_exit).items():
        console.print(
            f"{name}: {stats.rows_written:,} rows in {stats.writes} inserts; dead letters {stats.dead_letters}"
        )


@app.command("demo")
def demo() -> None:
    """Bring everything up, stream a simulated cohort through the collector, show what arrived."""
    from engage.demo import run_demo

    run_demo(get_settings(), console)


@app.command("chaos")
def chaos(
    seconds: Annotated[float, typer.Option(help="How long the events stream while faults run")] = 180.0,
    students: Annotated[int, typer.Option(help="Simulated students")] = 1_000,
    days: Annotated[int, typer.Option(help="Days of their behaviour")] = 21,
    kills: Annotated[int, typer.Option(help="SIGTERM/SIGKILLs of workers and sinks at random moments")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of the events and the fault schedule (a run can be repeated)")] = 2026,
    broken_sink: Annotated[
        bool, typer.Option(help="Run a sink that commits before inserting: the verifier must then fail")
    ] = False,
    double_emitting_worker: Annotated[
        bool, typer.Option(help="Run workers that emit each output twice under two ids: the verifier must then fail")
    ] = False,
    clusters: Annotated[
        bool,
        typer.Option(help="3 Kafka brokers (RF 3, min ISR 2, SCRAM over TLS) and a 2 x 2 ClickHouse cluster"),
    ] = False,
) -> None:
    """Stream known events while workers and sinks are killed and Kafka and ClickHouse restart (with --clusters: a
    broker and a replica SIGKILLed); verify every student; print ALL-RECORDS-DELIVERED (exit 0) only when nothing
    is missing and nothing is counted twice."""
    from engage.chaos.harness import ChaosConfig, run_chaos

    config = ChaosConfig(students=students, days=days, seconds=seconds, kills=kills, seed=seed, broken_sink=broken_sink,
                         double_emitting_worker=double_emitting_worker, clusters=clusters)  # fmt: skip
    report = run_chaos(config, console)
    raise typer.Exit(0 if report.delivered else 1)


@app.command("trickle")
def trickle(
    students: Annotated[int, typer.Option(help="Students in the synthetic population (the demo's: 400)")] = 400,
    days: Annotated[int, typer.Option(help="Days already sent (the demo's: 28); the trickle plays the next ones")] = 28,
    seed: Annotated[int, typer.Option(help="Seed of the population (the demo's: 2026)")] = 2026,
    speed: Annotated[float, typer.Option(help="Simulated time per real time (60: a day every 24 minutes)")] = 60.0,
) -> None:
    """Keep simulated students active: their next days, compressed, through the collector, stamped now."""
    from engage.traffic import TrafficPlan
    from engage.trickle import trickle as run

    run(get_settings(), TrafficPlan(students=students, days=days, seed=seed, via="collector"), speed)


@app.command("simulate")
def simulate(
    students: Annotated[int, typer.Option(help="Students in the synthetic population")] = 500,
    days: Annotated[int, typer.Option(help="Days of behaviour")] = 28,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same students and events")] = 42,
    via: Annotated[str, typer.Option(help="collector (HTTP, as apps do) or producer (library)")] = "producer",
    rate: Annotated[float, typer.Option(help="Cap in events/s (0 = no cap)")] = 0.0,
    day_seconds: Annotated[float, typer.Option(help="Real seconds per simulated day (0 = as fast as possible)")] = 0.0,
    truth: Annotated[Path, typer.Option(help="Where to write who churns and when (JSON lines)")] = Path(
        ".run/simulation/ground_truth.jsonl"
    ),
) -> None:
    """Send a deterministic synthetic cohort's behaviour through the pipeline (event times preserved)."""
    from engage.traffic import TrafficPlan, Via, run_traffic

    if via not in ("collector", "producer"):
        raise typer.BadParameter("--via is 'collector' or 'producer'")
    plan = TrafficPlan(
        students=students,
        days=days,
        seed=seed,
        via=cast(Via, via),
        rate=rate,
        day_seconds=day_seconds,
        truth_path=truth,
    )
    result = run_traffic(plan, get_settings(), console)
    console.print(
        f"sent {result.events_sent:,} events over {result.days} simulated days in {result.seconds:.1f} s "
        f"({result.events_sent / max(result.seconds, 1e-9):,.0f} events/s): {result.accepted:,} accepted, "
        f"{result.rejected:,} rejected, {result.failed_requests} failed; ground truth in {truth}"
    )


@replay_app.command("oulad")
def replay_oulad(
    data: Annotated[Path, typer.Option(help="A directory in the official OULAD CSV layout")],
    presentation: Annotated[
        list[str] | None, typer.Option(help="Only this presentation, e.g. BBB-2013J (repeatable)")
    ] = None,
    day_seconds: Annotated[float, typer.Option(help="Wall seconds per replayed day (0 = as fast as possible)")] = 0.0,
) -> None:
    """Stream OULAD students (registrations, daily clicks, submissions) into the events topic in time order.

    Run the workers with ENGAGE_WORKER_CLOCK=event so 'now' is the replayed day, and the sinks to store it all.
    """
    from engage.oulad.dataset import OuladDataset
    from engage.oulad.replay import replay

    _ensure_infra()
    s = get_settings()
    from kafka_io.admin import Replication, ensure_topics
    from schemas.topics import catalogue

    ensure_topics(
        s.kafka,
        catalogue(s.topic_prefix, s.event_partitions).all(),
        replication=Replication(*s.kafka_replication),
    )
    dataset = OuladDataset.load(data, presentation)
    console.print(
        f"{len(dataset.presentations)} presentations, {len(dataset.enrolments):,} enrolments, "
        f"{len(dataset.submissions):,} submissions"
    )
    result = replay(dataset, s, console, day_seconds)
    counts = ", ".join(f"{t} {n:,}" for t, n in sorted(result.report.by_type.items()))
    console.print(f"{result.events_sent:,} events over {result.days} days in {result.seconds:.1f} s ({counts})")
    if result.report.submissions_without_score:
        console.print(f"{result.report.submissions_without_score} submissions without a score were not sent")
    if result.failed:
        console.print(f"[red]{result.failed} events were not acknowledged by Kafka[/red]")
        raise typer.Exit(1)


@model_app.command("train")
def model_train(
    train_prefix: Annotated[list[str] | None, typer.Option(help="User-id prefix of training students")] = None,
    test_prefix: Annotated[list[str] | None, typer.Option(help="User-id prefix of test students")] = None,
    user_prefix: Annotated[str, typer.Option(help="Only students whose id starts with this")] = "",
    audit: Annotated[bool, typer.Option("--audit", help="Prove no feature reads past its day first")] = False,
    promote: Annotated[bool, typer.Option("--promote", help="Promote the new model right away")] = False,
    in_course_only: Annotated[
        bool, typer.Option("--in-course-only", help="Only days on which a scheduled course runs (work still due)")
    ] = False,
    note: Annotated[str, typer.Option(help="Free text kept with the model")] = "",
    tune: Annotated[
        bool, typer.Option(help="Choose the settings by cross-validation grouped by training prefix (else by student)")
    ] = True,
) -> None:
    """LightGBM per horizon (7, 30 days) on the point-in-time snapshots in ClickHouse, beside the heuristic.

    Split by time (default; the last quarter of the days is the test period), or by groups of students with
    --train-prefix / --test-prefix (e.g. OULAD presentations: oulad-BBB-2013B- / oulad-BBB-2013J-).
    """
    from models.registry import ModelRegistry
    from models.training import TrainConfig, train
    from models.training_data import audit_point_in_time, build, load_warehouse
    from sinks.clickhouse.client import connect

    s = get_settings()
    warehouse = load_warehouse(connect(s, s.clickhouse_database), user_prefix=user_prefix)
    console.print(f"{len(warehouse.rows):,} student-day snapshots, {len(warehouse.outcomes):,} students")
    if audit:
        days = sorted({r["day"] for r in warehouse.rows})
        from models.training_data import day_number

        cutoffs = [day_number(days[int(len(days) * q)]) for q in (0.25, 0.5, 0.75)] if days else []
        leaking = audit_point_in_time(warehouse, cutoffs)
        if leaking:
            console.print(f"[red]features reading past their day: {', '.join(leaking)}[/red]")
            raise typer.Exit(1)
        console.print(f"point-in-time audit at {len(cutoffs)} cut-offs: no feature reads past its day")
    config = TrainConfig(
        train_prefixes=tuple(train_prefix or ()),
        test_prefixes=tuple(test_prefix or ()),
        in_course_only=in_course_only,
        tune=tune,
    )
    registry = ModelRegistry(s.model_registry)
    try:
        result = train(build(warehouse), config, registry, note=note)
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _print_model_metrics(result.version, result.metrics)
    if promote:
        registry.promote(result.version)
        console.print(f"promoted {result.version}")


def _print_model_metrics(version: str, metrics: dict[str, Any]) -> None:
    from rich.table import Table as RichTable

    table = RichTable(title=f"model {version} on its test rows (beside the heuristic, same rows)")
    for col in ("horizon", "ROC AUC", "PR AUC", "Brier", "calibration error"):
        table.add_column(col, justify="right")
    for h, both in metrics.items():
        for who in ("model", "heuristic"):
            m = both[who]
            table.add_row(f"{h} d {who}", f"{m['roc_auc']:.3f}", f"{m['pr_auc']:.3f}", f"{m['brier']:.4f}",
                          f"{m['ece']:.3f}")  # fmt: skip
    console.print(table)


@model_app.command("list")
def model_list() -> None:
    """Trained models, newest last; * marks the promoted one."""
    from models.registry import ModelRegistry

    registry = ModelRegistry(get_settings().model_registry)
    current = registry.pointer_stamp()
    entries = registry.list()
    if not entries:
        console.print(f"no models in {registry.root} (the heuristic scores everyone)")
    for e in entries:
        m = e.metadata["metrics"]
        aucs = ", ".join(
            f"{h} d AUC {m[h]['model']['roc_auc']:.3f} (heuristic {m[h]['heuristic']['roc_auc']:.3f})" for h in m
        )
        console.print(f"{'*' if e.version == current else ' '} {e.version}  {aucs}  {e.metadata.get('note', '')}")


@model_app.command("monitor")
def model_monitor(
    serve: Annotated[bool, typer.Option("--serve", help="Keep measuring and serve /metrics for Prometheus")] = False,
    port: Annotated[int, typer.Option(help="Metrics port on settings.bind_host (with --serve)")] = 16070,
    interval: Annotated[float, typer.Option(help="Seconds between measurements (with --serve)")] = 300.0,
) -> None:
    """Accuracy of matured predictions (ROC AUC, calibration) and feature drift (PSI) against training."""
    from rich.table import Table as RichTable

    from engage.model_monitor import measure, publish, summary_rows
    from engage.model_monitor import serve as serve_forever

    s = get_settings()
    if serve:
        console.print(f"measuring every {interval:.0f} s; metrics on http://127.0.0.1:{port}/metrics")
        serve_forever(s, port, interval)
        return
    report = measure(s)
    publish(report)
    table = RichTable(title=f"Matured predictions up to {report.data_end} (last 30 days)")
    for col in ("horizon", "model", "predictions", "ROC AUC", "calibration error"):
        table.add_column(col, justify="right")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    if report.psi:
        worst = sorted(report.psi.items(), key=lambda kv: -kv[1])[:5]
        console.print(f"drift of {report.model_version}'s inputs (PSI, last 7 days vs training): "
                      + ", ".join(f"{f} {v:.3f}" for f, v in worst))  # fmt: skip


@model_app.command("promote")
def model_promote(version: str) -> None:
    """Make VERSION the model every worker scores with (they reload it without a restart)."""
    from models.registry import ModelRegistry

    ModelRegistry(get_settings().model_registry).promote(version)
    console.print(f"promoted {version}")


@model_app.command("rollback")
def model_rollback() -> None:
    """Back to the previously promoted model (or to the heuristic if there was none)."""
    from models.registry import ModelRegistry

    entry = ModelRegistry(get_settings().model_registry).rollback()
    console.print(f"now serving {entry.version if entry else 'the heuristic'}")


@bench_app.command("ingest")
def bench_ingest(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/ingest.json"),
    sink_events: Annotated[int, typer.Option(help="Events through the sink")] = 1_000_000,
    producer_messages: Annotated[int, typer.Option(help="Messages through the producer")] = 300_000,
    collector_seconds: Annotated[float, typer.Option(help="Seconds of collector load per endpoint")] = 10.0,
) -> None:
    """Collector, producer library and events sink, each beside a baseline measured in the same run."""
    from engage.bench.ingest import IngestBenchConfig, run

    _ensure_infra()
    run(
        get_settings(),
        console,
        out,
        IngestBenchConfig(
            producer_messages=producer_messages, sink_events=sink_events, collector_seconds=collector_seconds
        ),
    )


@bench_app.command("load")
def bench_load(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/load.json"),
    seconds: Annotated[float, typer.Option(help="Seconds of each sustained phase")] = 20.0,
    events_per_second: Annotated[int, typer.Option(help="Events/s offered to the collector")] = 5_000,
    api_requests_per_second: Annotated[float, typer.Option(help="Engagement API reads/s offered")] = 500.0,
) -> None:
    """Collector and engagement API under sustained load (p50/p95/p99, errors) and overload (429/503, recovery)."""
    from engage.bench.load import LoadBenchConfig, run_load_bench

    _ensure_infra()
    config = LoadBenchConfig(seconds=seconds, collector_events_per_second=events_per_second,
                             api_requests_per_second=api_requests_per_second)  # fmt: skip
    run_load_bench(get_settings(), console, out, config)


@bench_app.command("processors")
def bench_processors(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/processors.json"),
    events: Annotated[int, typer.Option(help="Events through each design")] = 300_000,
    latency_rate: Annotated[
        list[int] | None, typer.Option(help="Offered events/s for the latency figures (repeatable)")
    ] = None,
    latency_seconds: Annotated[float, typer.Option(help="Seconds of offered load per rate")] = 15.0,
) -> None:
    """Our workers beside the same job in Quix Streams: throughput, latency at fixed loads, scale-out, end to end."""
    from engage.bench.processors import ProcessorsBenchConfig, run

    _ensure_infra()
    rates = tuple(latency_rate or ProcessorsBenchConfig.latency_rates)
    config = ProcessorsBenchConfig(events=events, latency_rates=rates, latency_seconds=latency_seconds)
    report = run(get_settings(), console, out, config)
    raise typer.Exit(1 if report.problems else 0)


@bench_app.command("gamification")
def bench_gamification(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/gamification.json"),
    events: Annotated[int, typer.Option(help="Simulator events per drain")] = 300_000,
    rounds: Annotated[int, typer.Option(help="Drains with gamification on and off, alternating")] = 2,
) -> None:
    """What gamification costs the worker: the same events drained with it on and off (part of `processors`)."""
    from engage.bench.processors import ProcessorsBenchConfig, run_gamification

    _ensure_infra()
    report = run_gamification(get_settings(), console, out, ProcessorsBenchConfig(events=events, game_rounds=rounds))
    raise typer.Exit(1 if report.problems else 0)


@bench_app.command("queries")
def bench_queries(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/queries.json"),
    events: Annotated[int, typer.Option(help="Simulator events in the warehouse")] = 10_000_000,
    days: Annotated[int, typer.Option(help="Days of history")] = 56,
    runs: Annotated[int, typer.Option(help="Timed runs per query (after one warm-up)")] = 3,
    copies: Annotated[int, typer.Option(help="Simulate 1/COPIES of the students, copy them server-side")] = 4,
    regenerate: Annotated[bool, typer.Option("--regenerate", help="Rebuild the warehouse even if it matches")] = False,
) -> None:
    """Latency of every named analyst query over >= 10M simulator events (warehouse kept between runs)."""
    from engage.bench.queries import QueryBenchConfig, run_query_bench

    _ensure_infra()
    run_query_bench(
        get_settings(), QueryBenchConfig(events=events, days=days, runs=runs, copies=copies), out, regenerate
    )


@bench_app.command("scoring")
def bench_scoring(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/scoring.json"),
) -> None:
    """A trained model's scoring cost per student, alone (p99) and in micro-batches, beside Booster.predict."""
    from engage.bench.scoring import run_scoring_bench

    run_scoring_bench(console, out)


@bench_app.command("sendtime")
def bench_sendtime(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/sendtime.json"),
    students: Annotated[int, typer.Option(help="Simulated students")] = 3_000,
    seed: Annotated[int, typer.Option(help="Seed of the population, the moments and the bootstrap")] = 2026,
    learn_days: Annotated[int, typer.Option(help="Days of events the histograms learn from")] = 28,
    eval_days: Annotated[int, typer.Option(help="Days the intervention moments are drawn from")] = 14,
    moments: Annotated[int, typer.Option(help="Intervention moments per student")] = 8,
    deadline_hours: Annotated[
        list[float] | None, typer.Option(help="Deadline after the moment, hours (repeatable; default 24 and 4)")
    ] = None,
    half_life_days: Annotated[float, typer.Option(help="Half-life of the activity histogram")] = 28.0,
    min_observations: Annotated[float, typer.Option(help="The cohort counts as this many observations")] = 8.0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the 95% intervals")] = 2_000,
) -> None:
    """Send-time optimisation vs sending immediately and at a random time, on simulated students (no servers)."""
    from engage.bench.sendtime import SendTimeBenchConfig, run_sendtime_bench
    from processors.notify.sendtime import SendTimeConfig

    config = SendTimeBenchConfig(
        students=students,
        seed=seed,
        learn_days=learn_days,
        eval_days=eval_days,
        moments=moments,
        deadline_hours=tuple(deadline_hours or (24.0, 4.0)),
        bootstrap=bootstrap,
        send_time=SendTimeConfig(half_life_days=half_life_days, min_observations=min_observations),
    )
    run_sendtime_bench(console, out, config, _policy())


bench_app.command("notify")(bench_notify)
bench_app.command("leaderboard")(bench_leaderboard)
bench_app.command("experiments")(bench_experiments)
bench_app.command("bandit")(bench_bandit)
bench_app.command("profile")(bench_profile)
bench_app.command("oulad-profile")(bench_oulad_profile)
bench_app.command("replay-core")(bench_replay_core)
bench_app.command("game-core")(bench_game_core)
bench_app.command("dashboards")(bench_dashboards)
bench_app.command("sdk")(bench_sdk)


@bench_app.command("oulad")
def bench_oulad(
    train: Annotated[Path, typer.Option(help="OULAD directory holding the training presentations")],
    test: Annotated[Path, typer.Option(help="OULAD directory holding the test presentations")],
    out: Annotated[Path | None, typer.Option(help="Write the per cut-off results as JSON")] = None,
    train_presentation: Annotated[list[str] | None, typer.Option(help="Default: BBB, DDD, FFF 2013B")] = None,
    test_presentation: Annotated[list[str] | None, typer.Option(help="Default: the six 2013J ones")] = None,
    day_seconds: Annotated[float, typer.Option(help="Wall seconds per replayed day")] = 1.0,
    reuse_database: Annotated[
        str | None, typer.Option(help="Train and evaluate again on a finished replay's database (oulad_<tag>)")
    ] = None,
    all_days: Annotated[
        bool, typer.Option("--all-days", help="Train on every day, not only the days a course runs")
    ] = False,
    tune: Annotated[
        bool, typer.Option(help="Choose the model's settings by cross-validation grouped by presentation")
    ] = True,
    monotone: Annotated[bool, typer.Option(help="Monotone constraints where the direction is known")] = True,
) -> None:
    """Real students through the live pipeline: train on some presentations, judge per cut-off day on others."""
    from engage.bench.oulad import TEST, TRAIN, OuladBenchConfig, run_oulad_bench

    _ensure_infra()
    config = OuladBenchConfig(
        train,
        test,
        tuple(train_presentation or TRAIN),
        tuple(test_presentation or TEST),
        day_seconds,
        reuse_database=reuse_database,
        in_course_only=not all_days,
        tune=tune,
        monotone=monotone,
    )
    run_oulad_bench(get_settings(), config, console, out)


@privacy_app.command("delete")
def privacy_delete(
    user_id: Annotated[str, typer.Argument(help="The student's user id")],
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the report (the sinks service gives each step 120 s)")
    ] = 400.0,
) -> None:
    """Remove a student's state, changelog entry and warehouse rows; verify nothing of them is left.

    The worker owning the student erases its state; the sinks service (engage sink all) deletes the warehouse
    rows, counts again and reports; this command sends the request and prints that report."""
    import time

    from streams.erasure import erase_everywhere

    started = time.monotonic()
    try:
        report = erase_everywhere(get_settings(), user_id, "cli", timeout)
    except TimeoutError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if report.error is not None:
        console.print(f"[red]{report.erasure_id}: {report.status}[/red]")
        raise typer.Exit(1)
    state = "erased" if report.worker_had_state else "no state held (unknown student)"
    console.print(f"{report.erasure_id}: worker state {state}; warehouse rows deleted:")
    for table, rows in report.rows_deleted.items():
        console.print(f"  {table:<24} {rows:>8,} deleted, {report.rows_left.get(table, 0):,} left")
    if not report.complete:
        console.print("[red]rows are left; run again or look at system.mutations[/red]")
        raise typer.Exit(1)
    seconds = time.monotonic() - started
    console.print(f"complete in {seconds:.1f} s: nothing of the student is left in state or warehouse")


def _ensure_infra() -> None:
    """Start the local servers if they are not running (idempotent), quietly."""
    from deploy.infra import Infra

    for started in Infra.from_settings(get_settings()).up():
        if not started.already_running:
            console.print(f"{started.name} started, ready in {started.seconds_to_ready:.2f} s")


# --- API keys (access.keys): hashed keys the collector and workers re-read while running ----------------------
keys_app = typer.Typer(no_args_is_help=True, help="API keys: create, list, rotate, revoke (only hashes are kept).")
app.add_typer(keys_app, name="keys")


def _keys_call(action: Any) -> Any:
    """Run a registry action; a refusal (unknown id, revoked key...) is one line on stderr and exit code 1."""
    try:
        return action()
    except (KeyError, ValueError) as exc:
        typer.echo(f"error: {exc.args[0] if exc.args else exc}", err=True)
        raise typer.Exit(1) from None


def _when(moment: Any) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC" if moment is not None else "never"


def _print_secret(secret: str) -> None:
    typer.echo(f"secret  {secret}")
    typer.echo("        shown once: store it now; only its SHA-256 is kept")


@keys_app.command("create")
def keys_create(
    app_id: Annotated[str, typer.Option("--app", help="The app the key belongs to")],
    role: Annotated[str, typer.Option(help="write (track only), server (track, read, act) or admin (all)")],
    expires_days: Annotated[float | None, typer.Option(help="The key stops working after this many days")] = None,
) -> None:
    """Make a key for an app and print its secret once."""
    from datetime import UTC, datetime, timedelta

    from access.auth import Role
    from access.keys import KeyRegistry

    if role not in {r.value for r in Role}:
        raise typer.BadParameter("write, server or admin", param_hint="--role")
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days is not None else None
    registry = KeyRegistry.from_settings(get_settings())
    issued = _keys_call(lambda: registry.create(app_id, Role(role), expires_at=expires))
    record = issued.record
    typer.echo(
        f"created {record.key_id}: app {record.app_id}, role {record.role.value}, expires {_when(record.expires_at)}"
    )
    _print_secret(issued.secret)


@keys_app.command("list")
def keys_list() -> None:
    """Every key (settings' and registry's) by public id, with its state; never a secret or a digest."""
    from datetime import UTC, datetime

    from rich.table import Table as RichTable

    from access.keys import KeyRegistry

    now = datetime.now(UTC)
    table = RichTable(title=str(get_settings().key_registry))
    for column in ("key id", "app", "role", "source", "created", "expires", "state"):
        table.add_column(column)
    for record in _keys_call(KeyRegistry.from_settings(get_settings()).all):
        state = record.state(now)
        if state == "rotating":
            state = f"rotating to {record.replaced_by}"
        created = _when(record.created_at) if record.created_at else "-"
        table.add_row(
            record.key_id, record.app_id, record.role.value, record.source, created, _when(record.expires_at), state
        )
    console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    key_id: Annotated[str, typer.Argument(help="The key's id (engage keys list)")],
    grace_seconds: Annotated[float, typer.Option(help="How long the old key keeps working")] = 86_400.0,
) -> None:
    """A new key for the same app and role; the old one works for the grace period, then stops."""
    from access.keys import KeyRegistry

    registry = KeyRegistry.from_settings(get_settings())
    issued, old = _keys_call(lambda: registry.rotate(key_id, grace_seconds))
    typer.echo(f"rotated {old.key_id} to {issued.record.key_id} (app {old.app_id}, role {old.role.value})")
    typer.echo(f"        {old.key_id} keeps working until {_when(old.expires_at)}, then stops")
    _print_secret(issued.secret)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (engage keys list)")]) -> None:
    """Refuse a key from now on (the collector and workers notice within seconds, no restart)."""
    from access.keys import KeyRegistry

    registry = KeyRegistry.from_settings(get_settings())
    record = _keys_call(lambda: registry.revoke(key_id))
    typer.echo(f"revoked {record.key_id} (app {record.app_id}, role {record.role.value}) at {_when(record.revoked_at)}")


# --- message templates (processors.notify.templates): lint and preview ---------------------------------------------
templates_app = typer.Typer(no_args_is_help=True, help="Notification templates: lint and preview.")
app.add_typer(templates_app, name="templates")


def _policy() -> Any:
    from processors.policy import policy_from_file

    path = get_settings().policy_path
    return policy_from_file(path) if path else policy_from_file()


@templates_app.command("lint")
def templates_lint(
    directory: Annotated[
        Path | None, typer.Argument(help="Templates directory (default deploy/templates)", show_default=False)
    ] = None,
) -> None:
    """Parse every template and render it against the sample students; exit 1 listing every problem.

    Also checks that each (type, channel) the policy can produce has an English template."""
    from engage.template_tools import lint
    from processors.notify.templates import DEFAULT_TEMPLATES_DIR

    root = directory or DEFAULT_TEMPLATES_DIR
    catalog, problems = lint(root, _policy())
    for problem in problems:
        typer.echo(str(problem))
    keys = catalog.templates()
    locales = sorted({k.locale for k in keys})
    typer.echo(f"{root}: {len(keys)} good templates ({', '.join(locales) or 'no locale'}), {len(problems)} problem(s)")
    raise typer.Exit(1 if problems else 0)


@templates_app.command("preview")
def templates_preview(
    intervention_type: Annotated[str, typer.Argument(metavar="TYPE", help="An intervention type, e.g. streak_warning")],
    channel: Annotated[
        str | None, typer.Option(help="email, push, sms or in_app (default: the policy's first for the type)")
    ] = None,
    locale: Annotated[str | None, typer.Option(help="e.g. de, pt-BR (default: the student's, else en)")] = None,
    user: Annotated[
        str | None, typer.Option(help="A simulated student's id (sim-000001); unknown ids use the sample student")
    ] = None,
    sample: Annotated[str, typer.Option(help="Sample student without --user: engaged, new or lapsed")] = "engaged",
    seed: Annotated[int, typer.Option(help="Simulated population's seed (as engage simulate)")] = 42,
    students: Annotated[int, typer.Option(help="Simulated population's size (as engage simulate)")] = 500,
    days: Annotated[int, typer.Option(help="Simulated days folded before the preview")] = 28,
    directory: Annotated[Path | None, typer.Option("--templates", help="Templates directory")] = None,
) -> None:
    """Render one message as a student would get it (see engage/template_tools.py for where the context comes from)."""
    from engage.template_tools import preview_context
    from processors.notify.context import tier_of
    from processors.notify.templates import DEFAULT_TEMPLATES_DIR, TemplateCatalog, TemplateCatalogError
    from schemas.events import Channel
    from schemas.interventions import InterventionType

    try:
        kind = InterventionType(intervention_type)
    except ValueError:
        raise typer.BadParameter(f"one of {[t.value for t in InterventionType]}", param_hint="TYPE") from None
    policy = _policy()
    if channel is None:
        channels = policy.tiers[tier_of(kind, policy)].channels
        if not channels:
            raise typer.BadParameter("the policy gives this type no channel: name one", param_hint="--channel")
        chosen = channels[0]
    else:
        try:
            chosen = Channel(channel)
        except ValueError:
            raise typer.BadParameter(f"one of {[c.value for c in Channel]}", param_hint="--channel") from None
    try:
        catalog = TemplateCatalog.load(directory or DEFAULT_TEMPLATES_DIR)
        found = preview_context(kind, user_id=user, sample=sample, locale=locale, seed=seed, students=students,
                                days=days, policy=policy)  # fmt: skip
        message = catalog.render(kind, chosen, found.locale, found.context)
    except (TemplateCatalogError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"# {message.template} (asked {found.locale}, got {message.locale}); context: {found.source}")
    for part, text in message.parts.items():
        typer.echo(f"--- {part} ---")
        typer.echo(text)


from dashboards.cli import app as dashboards_app  # noqa: E402 (the web dashboards, dashboards/)
from engage.desk_cli import desk_app  # noqa: E402 (the desk's commands live in their own module)
from engage.leaderboards_cli import leaderboards_app  # noqa: E402 (the leaderboard service, leaderboards/)
from engage.providers_cli import providers_app  # noqa: E402 (the local provider stand-ins, deploy/providers)

app.add_typer(desk_app, name="desk")
app.add_typer(providers_app, name="providers")
app.add_typer(leaderboards_app, name="leaderboards")
app.add_typer(dashboards_app, name="dashboards")


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    from kafka_io.admin import KafkaUnavailable
    from sinks.clickhouse.client import ClickHouseUnavailable

    # SIGTERM unwinds like Ctrl-C, so the demo and the benches stop the children they started (their ``with``
    # blocks); without it Python exits at once and leaves them running. Servers (Faust, uvicorn, the sinks) set
    # their own handlers when they start.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except (KafkaUnavailable, ClickHouseUnavailable) as exc:  # a server refused or is away: say which, no traceback
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
