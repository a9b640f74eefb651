"""The producer library for server-side producers (and the collector's way onto Kafka).

- ``send`` groups events per user and packs the users of one call per partition: one Kafka message (a
  ``PartitionBatch`` of ``EventBatch``es, at most ``MAX_PACKED_EVENTS`` events) per partition per call, on the
  partition each user id hashes to (murmur2, as a keyed message would), so one student's events stay ordered
  and the stream processors pay their per-message cost once per partition rather than once per student.
  ``send_async`` (the collector: one device's request, mostly one student) writes one ``EventBatch`` per user,
  keyed by user id.
- librdkafka's idempotent producer (acks=all, no duplicates on internal retries), batching by linger time,
  lz4 compression. ``send`` never blocks on the network and never awaits per message: it queues and
  returns; delivery reports arrive on a poller thread (or on your ``poll()`` calls).
- By default only failed deliveries call back into Python (``delivery.report.only.error``): a Python call
  per acknowledged message would cost more than producing it. Successes are counted as
  queued - failed - in flight. ``report_successes=True`` reports every message (the collector needs it to
  answer a request only once its events are stored).
- ``send_async`` returns an awaitable that resolves once *every* message of that call is acknowledged
  (or fails): one future per call, not per message. The HTTP collector answers only after that.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError, Message, Producer

from kafka_io.client import Kafka, kafka_conf
from schemas.events import EventEnvelope
from schemas.interventions import InterventionOutcome
from schemas.messages import DeadLetter
from schemas.topics import TopicCatalogue

DeliveryCallback = Callable[[KafkaError | None, Message], None]
RENEW_AT_MOST_EVERY_SECONDS = 10.0
# Events per PartitionBatch message: large enough that the processors' cost per message is noise (a few hundred
# µs against ~20 ms of work for 500 events), small enough to stay far below Kafka's 4 MiB message limit.
MAX_PACKED_EVENTS = 1_000


@dataclass
class DeliveryStats:
    queued: int = 0
    failed: int = 0
    events_queued: int = 0
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, err: KafkaError | None) -> None:
        if err is None:
            return
        with self._lock:
            self.failed += 1
            self.last_error = str(err)


class DeliveryFailed(RuntimeError):
    """At least one message of a send could not be written to Kafka; nothing of it may be assumed stored."""


def _event_dict(event: EventEnvelope | Mapping[str, Any], received_at: str, overwrite: bool) -> dict[str, Any]:
    """The event in contract JSON form, stamped with ``received_at`` (kept if present, unless ``overwrite``)."""
    data = event.model_dump(mode="json") if isinstance(event, EventEnvelope) else dict(event)
    if overwrite or not data.get("received_at"):
        data["received_at"] = received_at
    return data


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Java clients, Faust and our producers use) gives
    a message with this key; for a user id, where that student's events and state live."""
    hashed: int = murmur2(key)  # aiokafka is untyped
    return (hashed & 0x7FFFFFFF) % partitions


def group_by_user(events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events per user id, each user's events in the order given."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        groups.setdefault(e["user_id"], []).append(e)
    return groups


def _stamped_groups(
    events: Iterable[EventEnvelope | Mapping[str, Any]], received_at: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """Events in contract JSON form per user. An explicit ``received_at`` (the collector's arrival time) replaces
    whatever a client sent; without one, events keep theirs (a replay of history) or are stamped now."""
    stamp = (received_at or datetime.now(UTC)).isoformat()
    return group_by_user(_event_dict(e, stamp, received_at is not None) for e in events)


def pack_partition_batches(
    events: Iterable[EventEnvelope | Mapping[str, Any]],
    partitions: int,
    source: str,
    received_at: datetime | None = None,
    max_events: int = MAX_PACKED_EVENTS,
) -> list[tuple[int, bytes, bytes, int]]:
    """(partition, key, value, event count) per ``PartitionBatch``: the users' batches packed per partition
    of a topic with ``partitions`` partitions, a new message whenever one would pass ``max_events`` (a user's
    batch is never split). The key names the partition; consumers go by the user ids inside."""
    packs: dict[int, list[tuple[list[dict[str, Any]], list[int]]]] = {}  # partition -> (batches, [events])
    for user, evs in _stamped_groups(events, received_at).items():
        messages = packs.setdefault(key_partition(user.encode(), partitions), [([], [0])])
        batches, count = messages[-1]
        if batches and count[0] + len(evs) > max_events:
            batches, count = [], [0]
            messages.append((batches, count))
        batches.append({"user_id": user, "events": evs})
        count[0] += len(evs)
    return [
        (
            partition,
            f"partition:{partition}".encode(),
            orjson.dumps({"schema_version": 1, "source": source, "partition": partition, "batches": batches}),
            count[0],
        )
        for partition, messages in packs.items()
        for batches, count in messages
    ]


class EventProducer:
    """Publishes behaviour events (``PartitionBatch`` or per-user ``EventBatch`` messages) and dead letters, with
    delivery reports."""

    def __init__(
        self,
        kafka: Kafka,
        topics: TopicCatalogue,
        *,
        source: str = "producer",
        linger_ms: int = 5,
        config: Mapping[str, Any] | None = None,
        renew_when_timing_out: bool = False,
        on_delivery: DeliveryCallback | None = None,
        poll_thread: bool = True,
        report_successes: bool = False,
    ) -> None:
        self.topics = topics
        self.source = source
        self.stats = DeliveryStats()
        self._user_callback = on_delivery
        self.report_successes = report_successes
        conf: dict[str, Any] = kafka_conf(
            kafka,
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": linger_ms,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
                "queue.buffering.max.kbytes": 1_048_576,
                "message.max.bytes": 4_194_304,
                "client.id": f"engage-{source}",
                # Kafka's Java default (murmur2): Faust, the Java clients and we then agree on a user's partition,
                # which table routing and changelog co-partitioning rely on.
                "partitioner": "murmur2_random",
                "delivery.report.only.error": not report_successes,
                "on_delivery": self._delivered,
            },
        )
        conf.update(config or {})
        self._conf = conf
        self._producer = Producer(conf)
        # After a broker restart librdkafka can keep producing to a connection or leader it no longer gets answers
        # from, until every message times out (seen in chaos runs: the collector answered 503 for minutes while
        # Kafka was back). A fresh producer recovers at once. Only where every send awaits its own delivery
        # reports (the collector): the old producer's messages are purged and their senders told they failed.
        self._renew_when_timing_out = renew_when_timing_out
        self._renew_requested = False
        self._renewed_at = 0.0
        self.renewals = 0
        self._retired: list[Producer] = []  # renewed-away producers, polled until their last report is out
        self._closed = threading.Event()
        self._poller: threading.Thread | None = None
        if poll_thread:
            self._poller = threading.Thread(target=self._poll_loop, name=f"{source}-delivery", daemon=True)
            self._poller.start()

    # --- delivery -----------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)
            if self._renew_requested and time.monotonic() - self._renewed_at > RENEW_AT_MOST_EVERY_SECONDS:
                self._renew()
            for old in list(self._retired):
                old.poll(0)
                if not len(old):
                    self._retired.remove(old)

    def _renew(self) -> None:
        """Swap in a new librdkafka producer; purge the old one, whose pending messages then fail."""
        old, self._producer = self._producer, Producer(self._conf)
        self._renew_requested, self._renewed_at = False, time.monotonic()
        self.renewals += 1
        old.purge()  # its messages fail; their reports are served by polling it (below) until none is left
        self._retired.append(old)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None and err.code() == KafkaError._MSG_TIMED_OUT and self._renew_when_timing_out:
            self._renew_requested = True
        self.stats.record(err)
        if self._user_callback is not None:
            self._user_callback(err, msg)

    def _produce(
        self,
        topic: str,
        key: bytes,
        value: bytes | None,
        callback: DeliveryCallback | None,
        partition: int = -1,
        timestamp: int = 0,
    ) -> None:
        while True:
            try:
                if callback is None:  # only failures are reported, through the producer-wide callback
                    self._producer.produce(topic, value, key, partition=partition, timestamp=timestamp)
                else:
                    self._producer.produce(
                        topic, value, key, partition=partition, timestamp=timestamp, on_delivery=callback
                    )
                self.stats.queued += 1
                return
            except BufferError:
                # Local queue full: let delivery reports drain it (the poller thread does the same).
                self._producer.poll(0.05)

    # --- public API ---------------------------------------------------------------------------------
    def encode_batches(
        self, events: Iterable[EventEnvelope | Mapping[str, Any]], received_at: datetime | None = None
    ) -> list[tuple[bytes, bytes, int]]:
        """(key, value, event count) per user, ready to produce (``received_at``: see ``_stamped_groups``)."""
        groups = _stamped_groups(events, received_at)
        return [
            (
                user.encode(),
                orjson.dumps({"schema_version": 1, "user_id": user, "source": self.source, "events": evs}),
                len(evs),
            )
            for user, evs in groups.items()
        ]

    def encode_partition_batches(
        self,
        events: Iterable[EventEnvelope | Mapping[str, Any]],
        partitions: int,
        received_at: datetime | None = None,
        max_events: int = MAX_PACKED_EVENTS,
    ) -> list[tuple[int, bytes, bytes, int]]:
        """``pack_partition_batches`` with this producer's source."""
        return pack_partition_batches(events, partitions, self.source, received_at, max_events)

    def send(self, events: Iterable[EventEnvelope | Mapping[str, Any]]) -> int:
        """Queue events (validated models, or dicts already in the contract's JSON form), packed per partition of
        the events topic as the catalogue gives it (the count the topics were created with, which the workers
        also hash by); returns messages queued."""
        packed = self.encode_partition_batches(events, self.topics.events.partitions)
        for partition, key, value, n in packed:
            self._produce(self.topics.events.name, key, value, None, partition)
            self.stats.events_queued += n
        return len(packed)

    def send_encoded(
        self,
        key: bytes,
        value: bytes | None,
        callback: DeliveryCallback | None = None,
        topic: str | None = None,
        partition: int = -1,
        timestamp: int = 0,
    ) -> None:
        """Queue one pre-encoded message, by default on the events topic (benchmarks and tests encode ahead of
        time, or write other topics); ``partition`` -1: the one the key hashes to; ``value`` None: a tombstone;
        ``timestamp`` (ms) 0: now (a copied message keeps its own, and so its retention)."""
        self._produce(topic or self.topics.events.name, key, value, callback, partition, timestamp)

    @property
    def in_flight(self) -> int:
        return len(self._producer)

    @property
    def delivered(self) -> int:
        return self.stats.queued - self.stats.failed - self.in_flight

    async def send_async(
        self,
        events: Iterable[EventEnvelope | Mapping[str, Any]],
        dead_letters: Iterable[DeadLetter] = (),
        received_at: datetime | None = None,
        outcomes: Iterable[InterventionOutcome] = (),
    ) -> None:
        """Queue events, dead letters and intervention outcomes; resolve when all are acknowledged, raise
        ``DeliveryFailed`` if not."""
        messages = [(self.topics.events.name, k, v) for k, v, _ in self.encode_batches(events, received_at)]
        messages += [
            (self.topics.dead_letters.name, dl.source.encode(), dl.model_dump_json().encode()) for dl in dead_letters
        ]
        messages += [
            (self.topics.intervention_outcomes.name, o.user_id.encode(), o.model_dump_json().encode()) for o in outcomes
        ]
        await self.send_acknowledged(messages)

    async def send_acknowledged(
        self, messages: Sequence[tuple[str, bytes, bytes] | tuple[str, bytes, bytes, int]]
    ) -> None:
        """Queue pre-encoded (topic, key, value[, partition]) messages (partition -1 or left out: the key's); resolve
        when Kafka acknowledged all of them, raise ``DeliveryFailed`` if any failed. Each report also goes through
        the producer's own callback (counters, renewal on timeouts)."""
        if not self.report_successes:
            raise RuntimeError("send_acknowledged needs an EventProducer created with report_successes=True")
        if not messages:
            return
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        pending = [len(messages)]
        errors: list[str] = []
        lock = threading.Lock()

        def settle() -> None:
            if not done.done():
                if errors:
                    done.set_exception(DeliveryFailed("; ".join(errors[:3])))
                else:
                    done.set_result(None)

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            self._delivered(err, msg)
            with lock:
                if err is not None:
                    errors.append(f"{msg.topic()}: {err}")
                pending[0] -= 1
                last = pending[0] == 0
            if last:
                loop.call_soon_threadsafe(settle)

        for topic, key, value, *partition in messages:
            self._produce(topic, key, value, on_delivery, partition[0] if partition else -1)
        await done

    def send_dead_letter(self, letter: DeadLetter) -> None:
        self._produce(
            self.topics.dead_letters.name,
            letter.source.encode(),
            letter.model_dump_json().encode(),
            None,
        )

    def poll(self, timeout: float = 0.0) -> int:
        return int(self._producer.poll(timeout))

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still in flight (0 = all settled)."""
        deadline = time.monotonic() + timeout
        remaining = len(self._producer)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(min(0.5, max(0.0, deadline - time.monotonic())))
        return int(remaining)

    def close(self, timeout: float = 30.0) -> int:
        """Wait up to ``timeout`` for outstanding deliveries, then release the librdkafka handles: what is still
        undelivered fails (its senders are told), and no thread keeps reconnecting to a broker that is gone.
        Returns how many were undelivered; closing again returns 0."""
        if self._closed.is_set():
            return 0
        remaining = self.flush(timeout)
        self._closed.set()
        if self._poller is not None:
            self._poller.join(timeout=1.0)
        for handle in [self._producer, *self._retired]:
            handle.purge()
            handle.poll(0)  # serve the purged messages' reports
            handle.close()
        self._retired.clear()
        return remaining

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
