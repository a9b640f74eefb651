"""What the stream benchmarks share: filling and pacing topics, reading them back, watching processes.

Every measurement reads Kafka or /proc directly, so the engine and its peer are measured the same way.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from config.settings import Settings
from engage.traffic import _client_batches
from kafka_io.client import Kafka, kafka_conf
from kafka_io.producer import EventProducer, pack_partition_batches
from schemas.topics import catalogue


def end_offsets(bootstrap: Kafka, topic: str) -> int:
    """Messages ever written to ``topic`` (sum of the partitions' end offsets); 0 while a new topic's partitions
    have no leader yet."""
    consumer = Consumer(kafka_conf(bootstrap, {"group.id": f"bench-{uuid.uuid4().hex[:6]}"}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or not meta.partitions:
            return 0
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions)
    except KafkaException:
        return 0
    finally:
        consumer.close()


def read_all(bootstrap: Kafka, topic: str, expect_at_least: int, timeout: float) -> list[tuple[float, bytes, bytes]]:
    """(Kafka timestamp in seconds, key, value) of every message of a topic, in each partition's order."""
    consumer = Consumer(
        kafka_conf(bootstrap, {"group.id": f"bench-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    out: list[tuple[float, bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(5_000, timeout=0.5)
            for msg in batch:
                if msg.error() is None:
                    out.append((msg.timestamp()[1] / 1000, msg.key() or b"", msg.value() or b""))
            if batch:
                idle_since = time.monotonic()
            elif len(out) >= expect_at_least and time.monotonic() - idle_since > 2:
                break
    finally:
        consumer.close()
    return out


@dataclass
class LiveReader:
    """Reads a topic in a thread while it is being written, noting the wall time each message arrived: the
    same latency measure for any producer of the topic, whatever timestamps it sets."""

    bootstrap: Kafka
    topic: str
    arrivals: list[tuple[float, bytes]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> LiveReader:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def _run(self, ready: threading.Event) -> None:
        consumer = Consumer(kafka_conf(self.bootstrap, {"group.id": f"bench-live-{uuid.uuid4().hex[:6]}",
                             "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5}))  # fmt: skip
        consumer.subscribe([self.topic], on_assign=lambda c, parts: ready.set())
        try:
            while not self._stop.is_set():
                for msg in consumer.consume(1_000, timeout=0.05):
                    if msg.error() is None:
                        self.arrivals.append((time.time(), msg.value() or b""))
        finally:
            consumer.close()

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def wait_for_group(bootstrap: Kafka, group: str, members: int = 1, timeout: float = 90.0) -> None:
    """Until ``members`` members of a consumer group hold partitions (a settled group), plus a second."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(kafka_conf(bootstrap))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            described = admin.describe_consumer_groups([group])[group].result(timeout=5)
            holding = [m for m in described.members if m.assignment and m.assignment.topic_partitions]
        except KafkaException:  # not created yet
            holding = []
        if len(holding) >= members:
            time.sleep(1)
            return
        time.sleep(0.5)
    raise RuntimeError(f"consumer group {group} did not reach {members} members with partitions in {timeout:.0f} s")


# Events per producer flush when filling a topic ahead of a run: what a server-side producer hands ``send`` at a
# time (about 50 ms of traffic at 20,000 events/s); ``paced`` flushes what is due every 20 ms instead.
FLUSH_EVENTS = 1_000
Message = tuple[int, bytes, bytes]  # partition, key, value


def encode(settings: Settings, events: list[dict[str, Any]], batch: int) -> list[Message]:
    """Messages as the producer library writes them: apps' batches (up to ``batch`` events per student) in
    producer flushes of ``FLUSH_EVENTS`` events, each flush packed per partition (``PartitionBatch``)."""
    out: list[Message] = []

    def pack(flush: list[dict[str, Any]]) -> None:
        packed = pack_partition_batches(flush, settings.event_partitions, "bench")
        out.extend((partition, key, value) for partition, key, value, _ in packed)

    for i in range(0, len(events), 20_000):  # the apps' batches are the same as in one message per student
        flush: list[dict[str, Any]] = []
        for group in _client_batches(events[i : i + 20_000], batch):
            flush.extend(group)
            if len(flush) >= FLUSH_EVENTS:
                pack(flush)
                flush = []
        if flush:
            pack(flush)
    return out


def student_batches(messages: list[Message]) -> int:
    """Students' batches in the messages (a ``PartitionBatch`` carries several): the peer's outputs."""
    return sum(len(orjson.loads(value).get("batches", [None])) for _, _, value in messages)


def send(settings: Settings, topic: str, messages: list[Message]) -> int:
    """Write pre-encoded messages as fast as Kafka takes them; how many."""
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    with EventProducer(settings.kafka, topics, source="bench") as producer:
        for partition, key, value in messages:
            producer.send_encoded(key, value, topic=topic, partition=partition)
        assert producer.flush(120) == 0
    return len(messages)


def fill(settings: Settings, topic: str, events: list[dict[str, Any]], batch: int) -> int:
    """Encode and write events as the producer library would; messages written."""
    return send(settings, topic, encode(settings, events, batch))


def paced(
    settings: Settings, topic: str, events: list[dict[str, Any]], rate: int, seconds: float, batch: int
) -> tuple[int, int]:
    """Offer ``rate`` events/s for ``seconds``: every 20 ms what is due, packed per partition like ``encode``
    (received_at stamped as each flush is sent); events and students' batches sent."""
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    sent = batches = 0
    start = time.monotonic()
    budget = int(rate * seconds)
    with EventProducer(settings.kafka, topics, source="bench", linger_ms=2) as producer:
        i = 0
        while sent < budget and i < len(events):
            chunk = events[i : i + max(1, rate // 50)]
            i += len(chunk)
            flush = [e for group in _client_batches(chunk, batch) for e in group]
            for partition, key, value, n in producer.encode_partition_batches(flush, settings.event_partitions):
                producer.send_encoded(key, value, topic=topic, partition=partition)
                sent += n
            batches += len({e["user_id"] for e in flush})  # one batch per student per flush
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush(60)
    return sent, batches


def metric(url: str, name: str) -> float:
    """A Prometheus sample's value from ``url``/metrics (the first series of that name), 0 if absent."""
    return metrics(url, (name,), timeout=2)[0]


def metrics(url: str, names: Sequence[str], timeout: float) -> list[float]:
    """Several samples' values from one scrape of ``url``/metrics (the first series of each name; 0 if absent, or
    all 0 if the scrape failed): values of the same moment."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=timeout).text
    except httpx.HTTPError:
        return [0.0] * len(names)
    values = [0.0] * len(names)
    found = [False] * len(names)
    for line in text.splitlines():
        for i, name in enumerate(names):
            if not found[i] and (line.startswith(name + " ") or line.startswith(name + "{")):
                values[i], found[i] = float(line.rsplit(" ", 1)[1]), True
    return values


@dataclass(frozen=True)
class Drain:
    """A drain timed from its first progress: ``seconds`` to done, and ``share``, the part of the work done in them.

    What was done before the first progress was seen (a worker's first gather: up to hundreds of messages, done
    before its count moves) is not in the seconds, so it must not be in the work either; ``scaled`` turns what was
    measured in the window (seconds, CPU) into the whole drain at the same rate."""

    seconds: float
    share: float
    lead_cpu: float = 0.0  # CPU of the work before the first progress, when the process reports it (else scaled)

    def scaled(self, measured: float) -> float:
        return measured / self.share


def drain_timing(
    progress: Callable[[], float],
    total: float,
    timeout: float,
    at_first: Callable[[], None] | None = None,
    pids: tuple[int, ...] = (),
    lead: Callable[[], tuple[float, float]] | None = None,
) -> Drain:
    """Poll ``progress()`` until it reaches ``total``; timed from its first progress to done. ``at_first`` is
    called at the first progress: CPU counted from there covers the same window as the seconds. A process of
    ``pids`` that exits ends the wait at once (a crashed peer used to be waited for until the timeout).

    ``lead``: the (seconds, CPU seconds) the process itself counted for the work done before the first progress
    (our worker: its gathers' fold time), read at the first progress and added, so the whole drain is measured
    instead of scaled from the part after the first look. A worker that drains a backlog in gathers of 500
    messages folds 40 % of a 300k-event drain before its count first moves, and scaling from the rest made the
    figure depend on where the gathers fell."""
    first: tuple[float, float] | None = None  # (when, progress then)
    lead_seconds = lead_cpu = 0.0
    deadline = time.monotonic() + timeout
    value = 0.0
    while time.monotonic() < deadline:
        gone = [pid for pid in pids if has_exited(pid)]
        if gone:
            raise RuntimeError(f"process {gone[0]} exited after {value:,.0f} of {total:,.0f}: see its log")
        value = progress()
        now = time.monotonic()
        if value > 0 and first is None:
            first = (now, value)
            if at_first is not None:
                at_first()
            if lead is not None:
                lead_seconds, lead_cpu = lead()
        if value >= total:
            assert first is not None
            if first[1] >= total:
                raise RuntimeError(f"drained before it could be timed ({total:,.0f} at the first look): send more")
            if lead is not None:
                return Drain(now - first[0] + lead_seconds, 1.0, lead_cpu)
            return Drain(now - first[0], (total - first[1]) / total)
        time.sleep(0.05)
    raise RuntimeError(f"not drained in {timeout:.0f} s ({value:,.0f} of {total:,.0f})")


def has_exited(pid: int) -> bool:
    """Whether a process is gone or a zombie (exited, not yet waited for by its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores (``/proc/stat``): whether a run had
    cores to spare or the machine itself was the limit."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    tick = os.sysconf("SC_CLK_TCK")
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return (total - idle - iowait) / tick, total / tick


def peak_memory_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latest_per_key(records: list[tuple[float, bytes, bytes]]) -> dict[bytes, bytes]:
    """The last value per key (what a compacted topic keeps): per partition order is per key order."""
    out: dict[bytes, bytes] = {}
    for _, key, value in records:
        out[key] = value
    return out


def decode(value: bytes) -> dict[str, Any]:
    return orjson.loads(value) if value else {}
