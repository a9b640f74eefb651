"""`engage bench processors`: signals + streaks + scoring per worker process, beside the naive Faust design.

- Throughput: a topic pre-filled with simulator events as apps send them (one student's batch per message) is
  drained by one real worker process (RocksDB store, debounced scoring); events/s from its first to its last
  message. The baseline, in the same run on the same events: one event per message through a straightforward
  one-event-at-a-time Faust agent with default settings doing the same domain work (``naive_worker``).
- Latency: events offered at a steady rate (default 5,000/s) for a while; event-to-risk-update latency is the
  risk update's Kafka timestamp minus the event's ``received_at``, p50/p95/p99, for both designs.
- Changelog writes per event, and CPU seconds per million events of the worker process.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from deploy.process import free_port
from engage.bench.ingest import simulated_events
from engage.bench.loadgen import LoadResult, build_request, run_load
from engage.bench.report import Figure, Report, percentile
from engage.children import child, wait_http
from engage.settings import Settings, settings_env
from engage.traffic import _client_batches
from schemas.topics import TopicSpec, catalogue
from streams.admin import delete_topics, ensure_topics
from streams.producer import EventProducer


@dataclass(frozen=True)
class ProcessorsBenchConfig:
    events: int = 300_000
    client_batch: int = 50  # events per app flush (per student), as the collector would receive them
    latency_rate: int = 5_000  # events/s offered for the latency figures
    latency_seconds: float = 20.0
    api_rate: float = 200.0  # engagement API requests/s during the latency run


def _end_offsets(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or not meta.partitions:
            return 0
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions)
    finally:
        consumer.close()


def _read_all(bootstrap: str, topic: str, expect_at_least: int, timeout: float) -> list[tuple[float, dict[str, Any]]]:
    """(Kafka timestamp in seconds, decoded value) of every message of a topic."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    out: list[tuple[float, dict[str, Any]]] = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(5_000, timeout=0.5)
            for msg in batch:
                if msg.error() is None:
                    out.append((msg.timestamp()[1] / 1000, orjson.loads(msg.value() or b"{}")))
            if batch:
                idle_since = time.monotonic()
            elif len(out) >= expect_at_least and time.monotonic() - idle_since > 2:
                break
    finally:
        consumer.close()
    return out


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fill(settings: Settings, topic: str, events: list[dict[str, Any]], batch: int) -> int:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    with EventProducer(settings.kafka_bootstrap, topics, source="bench") as producer:
        messages = 0
        for i in range(0, len(events), 20_000):
            for group in _client_batches(events[i : i + 20_000], batch):
                for key, value, _ in producer.encode_batches(group):
                    producer.send_encoded(key, value, topic=topic)
                    messages += 1
        assert producer.flush(120) == 0
    return messages


def _paced(settings: Settings, topic: str, events: list[dict[str, Any]], rate: int, seconds: float, batch: int) -> int:
    """Offer ``rate`` events/s for ``seconds`` (received_at stamped as each batch is sent)."""
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    sent = 0
    start = time.monotonic()
    budget = int(rate * seconds)
    with EventProducer(settings.kafka_bootstrap, topics, source="bench", linger_ms=2) as producer:
        i = 0
        while sent < budget and i < len(events):
            chunk = events[i : i + max(1, rate // 50)]
            i += len(chunk)
            for group in _client_batches(chunk, batch):
                for key, value, n in producer.encode_batches(group):
                    producer.send_encoded(key, value, topic=topic)
                    sent += n
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush(60)
    return sent


def _metric(url: str, name: str) -> float:
    try:
        text = httpx.get(f"{url}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _drain_timing(progress: Any, total: float, timeout: float) -> tuple[float, float]:
    """Poll ``progress()`` until it reaches ``total``; (seconds from first progress to done, done value)."""
    first = None
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        value = progress()
        now = time.monotonic()
        if value > 0 and first is None:
            first = now
        if value >= total:
            return now - (first or now), value
        time.sleep(0.05)
    raise RuntimeError(f"not drained in {timeout:.0f} s ({value:,.0f} of {total:,.0f})")


def _api_load(settings: Settings, users: list[str], cfg: ProcessorsBenchConfig) -> LoadResult:
    """GET /v1/users/{id}/engagement at ``api_rate`` requests/s while the worker is busy."""
    import asyncio

    port = settings.worker_web_port
    key = settings.server_keys[0].partition(":")[2]
    time.sleep(2)  # let the first events arrive so the students exist
    requests = [
        build_request("127.0.0.1", port, f"/v1/users/{u}/engagement", b"", {"Authorization": f"Bearer {key}"}, "GET")
        for u in users
    ]
    return asyncio.run(
        run_load("127.0.0.1", port, requests, connections=8, seconds=cfg.latency_seconds - 4, rate=cfg.api_rate)
    )


def _latencies(records: list[tuple[float, dict[str, Any]]]) -> list[float]:
    out = []
    for ts, value in records:
        received = value.get("received_at")
        if received and value.get("trigger", "events") == "events":
            out.append(ts - datetime.fromisoformat(received).timestamp())
    return sorted(out)


def run(settings: Settings, console: Console, out: Path, cfg: ProcessorsBenchConfig | None = None) -> Report:
    cfg = cfg or ProcessorsBenchConfig()
    run_id = uuid.uuid4().hex[:6]
    work = settings.run_dir / f"bench-processors-{run_id}"
    work.mkdir(parents=True, exist_ok=True)
    report = Report(
        "engage bench processors", context={"config": cfg.__dict__, "partitions": settings.event_partitions}
    )
    console.print(f"generating {cfg.events:,} simulator events ...")
    events = simulated_events(cfg.events)
    created: list[str] = []

    def fresh(name: str) -> Settings:
        s = settings.model_copy(update={"topic_prefix": f"bp-{run_id}-{name}", "run_dir": work,
                                        "worker_web_port": free_port()})  # fmt: skip
        specs = catalogue(s.topic_prefix, s.event_partitions).all()
        ensure_topics(s.kafka_bootstrap, specs)
        created.extend(t.name for t in specs)
        return s

    try:
        # --- throughput, our worker ------------------------------------------------------------------------
        ours = fresh("ours")
        messages = _fill(ours, catalogue(ours.topic_prefix).events.name, events, cfg.client_batch)
        url = f"http://127.0.0.1:{ours.worker_web_port}"
        console.print(f"our worker: {len(events):,} events in {messages:,} messages ...")
        with child([sys.executable, "-m", "engage.cli", "worker"], work / "ours.log", settings_env(ours)) as proc:
            wait_http(f"{url}/healthz", proc, log=work / "ours.log")
            cpu0 = _cpu_seconds(proc.pid)
            seconds, _ = _drain_timing(
                lambda: _metric(url, "engage_worker_messages_processed_total"), messages, timeout=900
            )
            cpu = _cpu_seconds(proc.pid) - cpu0
            time.sleep(1.5)  # the last debounced re-scores
        changelog = _end_offsets(ours.kafka_bootstrap, f"{ours.topic_prefix}-worker-user-state-changelog")
        risk_updates = _end_offsets(ours.kafka_bootstrap, catalogue(ours.topic_prefix).risk_updates.name)
        ours_rate = len(events) / seconds

        # --- throughput, the naive design -------------------------------------------------------------------
        naive = fresh("naive")
        naive_in = catalogue(naive.topic_prefix).events.name
        naive_out = naive_in + ".out"
        ensure_topics(naive.kafka_bootstrap, [TopicSpec(naive_out, naive.event_partitions)])
        created.append(naive_out)
        _fill(naive, naive_in, events, 1)
        console.print(f"naive one-event-at-a-time agent: {len(events):,} events in {len(events):,} messages ...")
        args = [sys.executable, "-m", "engage.bench.naive_worker", naive_in, naive_out, naive.kafka_bootstrap,
                str(naive.worker_web_port), str(work / "naive")]  # fmt: skip
        with child(args, work / "naive.log") as proc:
            wait_http(f"http://127.0.0.1:{naive.worker_web_port}/", proc, log=work / "naive.log")
            cpu0 = _cpu_seconds(proc.pid)
            naive_seconds, _ = _drain_timing(
                lambda: _end_offsets(naive.kafka_bootstrap, naive_out), len(events), timeout=1800
            )
            naive_cpu = _cpu_seconds(proc.pid) - cpu0
        naive_rate = len(events) / naive_seconds
        naive_changelog = _end_offsets(naive.kafka_bootstrap, f"naive-{naive_in}-naive-state-changelog")

        # --- latency at a steady offered load ----------------------------------------------------------------
        lat_ours = fresh("lat-ours")
        url = f"http://127.0.0.1:{lat_ours.worker_web_port}"
        console.print(f"latency at {cfg.latency_rate:,} events/s for {cfg.latency_seconds:.0f} s ...")
        with child([sys.executable, "-m", "engage.cli", "worker"], work / "lat.log", settings_env(lat_ours)) as p:
            wait_http(f"{url}/healthz", p, log=work / "lat.log")
            time.sleep(3)  # partitions assigned
            with ThreadPoolExecutor(1) as pool:
                # The engagement API under load: queried while the worker processes the offered events.
                api = pool.submit(_api_load, lat_ours, sorted({e["user_id"] for e in events[:20_000]}), cfg)
                offered = _paced(lat_ours, catalogue(lat_ours.topic_prefix).events.name, events, cfg.latency_rate,
                                 cfg.latency_seconds, cfg.client_batch)  # fmt: skip
                api_result = api.result()
            time.sleep(3)
        ours_lat = _latencies(_read_all(lat_ours.kafka_bootstrap, catalogue(lat_ours.topic_prefix).risk_updates.name,
                                        1, timeout=60))  # fmt: skip

        lat_naive = fresh("lat-naive")
        lat_in = catalogue(lat_naive.topic_prefix).events.name
        lat_out = lat_in + ".out"
        ensure_topics(lat_naive.kafka_bootstrap, [TopicSpec(lat_out, lat_naive.event_partitions)])
        created.append(lat_out)
        args = [sys.executable, "-m", "engage.bench.naive_worker", lat_in, lat_out, lat_naive.kafka_bootstrap,
                str(lat_naive.worker_web_port), str(work / "lat-naive")]  # fmt: skip
        with child(args, work / "lat-naive.log") as p:
            wait_http(f"http://127.0.0.1:{lat_naive.worker_web_port}/", p, log=work / "lat-naive.log")
            time.sleep(3)
            _paced(lat_naive, lat_in, events, cfg.latency_rate, cfg.latency_seconds, 1)
            _drain_timing(lambda: _end_offsets(lat_naive.kafka_bootstrap, lat_out), offered * 0.99, timeout=600)
        naive_lat = _latencies(_read_all(lat_naive.kafka_bootstrap, lat_out, 1, timeout=60))
    finally:
        delete_topics(settings.kafka_bootstrap, created)

    notes = f"{len(events):,} events in {messages:,} messages; {risk_updates:,} risk updates"
    report.add(Figure("worker throughput (signals+streaks+scoring)", ours_rate, "events/s",
                      "one-event-at-a-time Faust agent", naive_rate, aim=">= 20,000 events/s per process",
                      notes=notes))  # fmt: skip
    report.add(Figure("changelog writes per event", changelog / len(events), "writes", "naive design",
                      naive_changelog / len(events), aim="< 1"))  # fmt: skip
    report.add(Figure("worker CPU per million events", cpu / len(events) * 1e6, "CPU s", "naive design",
                      naive_cpu / len(events) * 1e6))  # fmt: skip
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        report.add(
            Figure(
                f"event-to-risk latency {label} at {cfg.latency_rate:,} events/s",
                percentile(ours_lat, q) * 1000,
                "ms",
                "naive design",
                percentile(naive_lat, q) * 1000,
                aim="< 1,000 ms" if label == "p99" else "",
            )
        )
    ok = api_result.statuses.get(200, 0)
    report.add(Figure(f"engagement API p50 at {cfg.api_rate:.0f} req/s under load", api_result.percentile(0.5) * 1000,
                      "ms", notes=f"{api_result.requests} requests, statuses {dict(api_result.statuses)}"))  # fmt: skip
    report.add(Figure(f"engagement API p99 at {cfg.api_rate:.0f} req/s under load", api_result.percentile(0.99) * 1000,
                      "ms", aim="< 100 ms", notes=f"{ok} answered 200"))  # fmt: skip
    report.context["latency_samples"] = {"ours": len(ours_lat), "naive": len(naive_lat), "offered_events": offered}
    report.print(console)
    console.print(f"saved {report.save(out)}")
    return report
