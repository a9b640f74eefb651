"""`engage bench ingest`: collector, producer library and events sink, each beside a same-run baseline.

- Producer library vs a plain confluent-kafka produce loop (same message bytes, same broker).
- Collector (batches of 100 events, validated) vs the thinnest HTTP-to-Kafka endpoint on the same stack.
- Events sink (Kafka → ClickHouse ``behavior_events``) vs a straightforward sink that builds every column
  in Python, row by row, as a first implementation would.
Events come from the simulator, so sizes and shapes are realistic.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer
from rich.console import Console

from config.settings import Settings, settings_env
from engage.bench.loadgen import build_request, run_load
from engage.bench.report import Figure, Report
from engage.children import child, wait_http
from engage.simulator import Population, iter_event_days
from kafka_io.admin import delete_topics, ensure_topics
from kafka_io.client import kafka_conf
from kafka_io.producer import EventProducer
from schemas.topics import TopicCatalogue, TopicSpec, catalogue
from sinks.behavior_events import BehaviorEventsSink
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import create_all
from sinks.clickhouse.tables import BEHAVIOR_EVENTS
from sinks.runner import SinkRunner


@dataclass(frozen=True)
class IngestBenchConfig:
    producer_messages: int = 300_000
    sink_events: int = 1_000_000
    collector_seconds: float = 10.0
    collector_connections: int = 16
    paced_events_per_second: int = 10_000  # steady offered load for the latency figures
    batch_size: int = 100


def simulated_events(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Exactly ``n`` simulator events in contract JSON form, ending today (so the collector accepts them).

    When one population's 28 days give fewer than ``n``, another population (next seed) follows. The simulator
    names events ``user-day-seq``, so a later population's event ids get a ``pN-`` prefix: otherwise they would
    repeat the first one's ids with other contents, far beyond any dedupe window, and no count would add up."""
    students = max(200, n // 400)
    days = 28
    start = date.today() - timedelta(days=days + 1)
    out: list[dict[str, Any]] = []
    generation = 0
    while len(out) < n:
        population = Population.generate(students, seed=seed + generation, start=start)
        for _, events in iter_event_days(population, days):
            if generation:
                events = [{**e, "event_id": f"p{generation}-{e['event_id']}"} for e in events]
            out.extend(events)
            if len(out) >= n:
                break
        generation += 1
    return out[:n]


# --- producer ---------------------------------------------------------------------------------------------


def bench_producer(settings: Settings, topics: TopicCatalogue, events: list[dict[str, Any]], n: int) -> list[Figure]:
    one_event_messages = [
        (
            e["user_id"].encode(),
            orjson.dumps({"schema_version": 1, "user_id": e["user_id"], "source": "bench", "events": [e]}),
        )
        for e in events[: min(len(events), 50_000)]
    ]
    conf = kafka_conf(
        settings.kafka,
        {
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "compression.type": "lz4",
            "enable.idempotence": True,
            "acks": "all",
            "queue.buffering.max.messages": 500_000,
        },
    )

    plain = Producer(conf)
    start = time.perf_counter()
    for i in range(n):
        key, value = one_event_messages[i % len(one_event_messages)]
        while True:
            try:
                plain.produce(topics.events.name, value=value, key=key)
                break
            except BufferError:
                plain.poll(0.01)
        if i % 1000 == 0:
            plain.poll(0)
    plain.flush(60)
    baseline = n / (time.perf_counter() - start)

    lib = EventProducer(settings.kafka, topics, source="bench")
    start = time.perf_counter()
    for i in range(n):
        key, value = one_event_messages[i % len(one_event_messages)]
        lib.send_encoded(key, value)
    lib.flush(60)
    encoded_rate = n / (time.perf_counter() - start)
    assert lib.stats.failed == 0, lib.stats.last_error

    # From event dicts: encoding, per-user grouping and packing per partition included (simulator days).
    sample = events[: min(len(events), n)]
    start = time.perf_counter()
    messages = 0
    for i in range(0, len(sample), 5_000):
        messages += lib.send(sample[i : i + 5_000])
    lib.flush(60)
    seconds = time.perf_counter() - start
    lib.close()

    # Its baseline in the same unit, for the same events: the plain loop encoding each dict as it comes (one
    # event per message, as a hand-written producer would), encoding included. Not the pre-encoded loop above:
    # that one's messages/s is another unit (the library packs many events per message).
    by_hand = Producer(conf)
    start = time.perf_counter()
    for i, e in enumerate(sample):
        value = orjson.dumps({"schema_version": 1, "user_id": e["user_id"], "source": "bench", "events": [e]})
        while True:
            try:
                by_hand.produce(topics.events.name, value=value, key=e["user_id"].encode())
                break
            except BufferError:
                by_hand.poll(0.01)
        if i % 1000 == 0:
            by_hand.poll(0)
    by_hand.flush(60)
    by_hand_rate = len(sample) / (time.perf_counter() - start)
    return [
        Figure(
            "producer library, pre-encoded messages",
            encoded_rate,
            "msg/s",
            "plain confluent-kafka loop",
            baseline,
            aim=">= 150,000 msg/s",
        ),
        Figure(
            "producer library, events from dicts",
            len(sample) / seconds,
            "events/s",
            "plain confluent-kafka loop, the same dicts",
            by_hand_rate,
            notes=f"{len(sample):,} events packed into {messages:,} per-partition messages, encoding included; "
            f"the baseline encodes and sends the same {len(sample):,} events one per message",
        ),
    ]


# --- collector --------------------------------------------------------------------------------------------


def _collector_requests(events: list[dict[str, Any]], port: int, batch: int, key: str) -> list[bytes]:
    bodies = [orjson.dumps({"events": events[i : i + batch]}) for i in range(0, len(events) - batch + 1, batch)]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [build_request("127.0.0.1", port, "/v1/events", body, headers) for body in bodies[:400]]


def _load(
    port: int, requests: list[bytes], cfg: IngestBenchConfig, rate: float = 0.0
) -> tuple[float, float, float, dict[int, int]]:
    result = asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            requests,
            connections=cfg.collector_connections,
            seconds=cfg.collector_seconds,
            rate=rate,
        )
    )
    ok = result.statuses.get(200, 0)
    return (
        ok * cfg.batch_size / result.seconds,
        result.percentile(0.5),
        result.percentile(0.99),
        result.statuses,
    )


def bench_collector(
    settings: Settings, topics: TopicCatalogue, events: list[dict[str, Any]], cfg: IngestBenchConfig
) -> list[Figure]:
    from deploy.process import free_port

    key = settings.write_keys[0].partition(":")[2]
    logs = settings.run_dir / "bench"
    # Real collector in its own process (the load generator must not share its GIL).
    port = free_port()
    env = {**settings_env(settings), "ENGAGE_COLLECTOR_PORT": str(port)}
    with child([sys.executable, "-m", "engage.cli", "collector"], logs / "collector.log", env) as proc:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log=logs / "collector.log")
        requests = _collector_requests(events, port, cfg.batch_size, key)
        ours = _load(port, requests, cfg)
        paced = _load(port, requests, cfg, rate=cfg.paced_events_per_second / cfg.batch_size)
    bare_port = free_port()
    args = [sys.executable, "-m", "engage.bench.bare_collector", str(bare_port), topics.events.name + ".bare",
            str(settings.kafka)]  # fmt: skip
    with child(args, logs / "bare_collector.log") as bare:
        wait_http(f"http://127.0.0.1:{bare_port}/", bare, log=logs / "bare_collector.log")
        bare_requests = _collector_requests(events, bare_port, cfg.batch_size, key)
        base = _load(bare_port, bare_requests, cfg)
        base_paced = _load(bare_port, bare_requests, cfg, rate=cfg.paced_events_per_second / cfg.batch_size)
    rate_label = f"{cfg.paced_events_per_second:,} events/s"
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(ours[3].items()))
    return [
        Figure(
            f"collector, batches of {cfg.batch_size} events",
            ours[0],
            "events/s",
            "bare HTTP→Kafka endpoint",
            base[0],
            aim=">= 20,000 events/s",
            notes=f"{cfg.collector_connections} connections for {cfg.collector_seconds:.0f} s; statuses {statuses}",
        ),
        Figure(f"collector latency p50 at {rate_label}", paced[1] * 1000, "ms", "bare endpoint", base_paced[1] * 1000),
        Figure(f"collector latency p99 at {rate_label}", paced[2] * 1000, "ms", "bare endpoint", base_paced[2] * 1000),
        Figure("collector latency p50 saturated", ours[1] * 1000, "ms", "bare endpoint saturated", base[1] * 1000),
        Figure("collector latency p99 saturated", ours[2] * 1000, "ms", "bare endpoint saturated", base[2] * 1000),
    ]


# --- sink -------------------------------------------------------------------------------------------------


def _fill_topic(settings: Settings, topics: TopicCatalogue, events: list[dict[str, Any]]) -> int:
    with EventProducer(settings.kafka, topics, source="bench") as producer:
        messages = 0
        for i in range(0, len(events), 5_000):
            messages += producer.send(events[i : i + 5_000])
        producer.flush(120)
    return messages


def _naive_row(event: dict[str, Any], partition: int, offset: int) -> tuple[Any, ...]:
    """Every column computed in Python, one tuple per row: the straightforward first implementation."""
    values: list[Any] = []
    for col in BEHAVIOR_EVENTS.columns:
        if col.kind == "lineage":
            values.append(partition if col.name == "kafka_partition" else offset)
            continue
        value: Any = event
        for part in col.path:
            value = value.get(part) if isinstance(value, dict) else None
        if col.kind == "tz_offset":
            delta = datetime.fromisoformat(event["event_time"]).utcoffset()
            values.append(int(delta.total_seconds()) // 60 if delta else 0)
        elif col.kind == "datetime":
            values.append(
                datetime.fromisoformat(value).astimezone(UTC).replace(tzinfo=None) if value else datetime(1970, 1, 1)
            )
        elif col.kind == "json":
            values.append(orjson.dumps(value or {}).decode())
        elif value is None:
            values.append(col.default)
        else:
            values.append(int(value) if col.kind == "bool" else value)
    return tuple(values)


def _naive_sink(settings: Settings, topic: str, expect: int, database: str) -> float:
    client = connect(settings)
    consumer = Consumer(
        kafka_conf(
            settings.kafka,
            {
                "group.id": f"naive-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    names = ", ".join(BEHAVIOR_EVENTS.column_names)
    rows: list[tuple[Any, ...]] = []
    done = 0
    start = None
    while done < expect:
        for msg in consumer.consume(2_000, timeout=0.5):
            if msg.error():
                continue
            start = start or time.perf_counter()
            message = orjson.loads(msg.value() or b"{}")
            for e in (e for batch in message.get("batches", [message]) for e in batch["events"]):
                rows.append(_naive_row(e, msg.partition() or 0, msg.offset() or 0))
        if len(rows) >= 50_000 or (rows and done + len(rows) >= expect):
            client.execute(f"INSERT INTO {database}.behavior_events ({names}) VALUES", rows)
            consumer.commit(asynchronous=False)
            done += len(rows)
            rows = []
    consumer.close()
    return expect / (time.perf_counter() - (start or time.perf_counter()))


def bench_sink(settings: Settings, topics: TopicCatalogue, events: list[dict[str, Any]]) -> list[Figure]:
    messages = _fill_topic(settings, topics, events)
    runner = SinkRunner(
        BehaviorEventsSink(settings),
        bootstrap=settings.kafka,
        topic=topics.events.name,
        dead_letters=None,
        group_id=f"bench-sink-{uuid.uuid4().hex[:6]}",
        batch_rows=200_000,
        batch_seconds=1.0,
    )
    import threading

    thread = threading.Thread(target=runner.run, kwargs={"idle_exit_seconds": 2.0}, daemon=True)
    thread.start()
    runner.wait_assigned(60)
    start = time.perf_counter()
    while runner.stats.rows_written < len(events) and thread.is_alive():
        time.sleep(0.02)
    ours = runner.stats.rows_written / (time.perf_counter() - start)
    runner.stop()
    thread.join(60)

    naive_db = f"{settings.clickhouse_database}_naive"
    create_all(connect(settings), naive_db)
    naive = _naive_sink(settings, topics.events.name, len(events), naive_db)
    connect(settings).execute(f"DROP DATABASE IF EXISTS {naive_db}")
    return [
        Figure(
            "events sink into ClickHouse",
            ours,
            "rows/s",
            "row-by-row Python sink",
            naive,
            aim=">= 200,000 rows/s",
            notes=f"{len(events):,} simulator events in {messages:,} packed messages, {runner.stats.writes} inserts",
        ),
    ]


# --- the run ----------------------------------------------------------------------------------------------


def run(settings: Settings, console: Console, out: Path, cfg: IngestBenchConfig | None = None) -> Report:
    cfg = cfg or IngestBenchConfig()
    run_id = uuid.uuid4().hex[:6]
    bench_settings = settings.model_copy(
        update={
            "topic_prefix": f"bench-{run_id}",
            "clickhouse_database": f"bench_{run_id}",
            "collector_max_event_age_days": 3650,
        }
    )
    topics = catalogue(bench_settings.topic_prefix, bench_settings.event_partitions)
    bare_topic = TopicSpec(topics.events.name + ".bare", bench_settings.event_partitions)
    ensure_topics(bench_settings.kafka, [*topics.all(), bare_topic])
    report = Report(
        "engage bench ingest", context={"config": cfg.__dict__, "partitions": bench_settings.event_partitions}
    )
    console.print(f"generating {cfg.sink_events:,} simulator events ...")
    events = simulated_events(max(cfg.sink_events, 50_000))
    try:
        console.print("producer library ...")
        for f in bench_producer(bench_settings, topics, events, cfg.producer_messages):
            report.add(f)
        console.print("collector ...")
        for f in bench_collector(bench_settings, topics, events, cfg):
            report.add(f)
        # The sink reads a fresh topic holding exactly the benchmark's events.
        sink_topics = catalogue(f"{bench_settings.topic_prefix}-sink", bench_settings.event_partitions)
        ensure_topics(bench_settings.kafka, sink_topics.all())
        console.print(f"events sink ({cfg.sink_events:,} events) ...")
        for f in bench_sink(bench_settings, sink_topics, events[: cfg.sink_events]):
            report.add(f)
    finally:
        delete_topics(
            bench_settings.kafka,
            [t.name for t in topics.all()]
            + [bare_topic.name]
            + [f"{bench_settings.topic_prefix}-sink.{s}" for s in ("events.v1", "dead-letters.v1")],
        )
        connect(bench_settings).execute(f"DROP DATABASE IF EXISTS {bench_settings.clickhouse_database}")
    report.print(console)
    console.print(f"saved {report.save(out)}")
    return report
