"""The send ledger: what became of each intervention request, kept on the compacted ``notification_ledger`` topic.

Where. Every entry is written to the SAME partition number as the request it records (an explicit partition, not
the key's hash), so the ledger of a partition moves with its requests: the process that is assigned partition
``p`` of the interventions topic reads partition ``p`` of the ledger to its end (``Ledger.load``) before it
handles any request of ``p``, and is then its only writer. Compaction keeps the newest entry per
``ledger_key`` (intervention, channel).

Order of writes (``notifications.service``): deliver -> write the outcome and any dead letter and wait until Kafka
acknowledged them (``Outbox.send``, acks=all, idempotent producer) -> write the ledger entries and wait again ->
only then commit the request's offset. The ledger goes last because writes to several partitions are not atomic: a
final entry must never be stored without the outcome it stands for (``Ledger.write``). A deferred request is
committed once its ``scheduled`` entry (which carries the request) is acknowledged: the ledger, not the
interventions topic, then holds it until it is sent.

Crash semantics. A crash (SIGKILL) after a provider accepted a message and before its ledger entry was acknowledged
loses the record of that send (its outcome may be stored, and is then stored twice) but not the request (its offset
was not committed, or, for a scheduled one, its entry still says ``scheduled``): the next owner sends it again. So a
crash resends at most the messages in flight at that instant - at most ``notify_max_in_flight`` (each request once),
usually none or one - and never more than once per crash. Nothing is lost: a request is committed only when its
final state is stored. (E-mail resends carry the same Message-ID and the in-app inbox keeps one item per
intervention, so those two dedupe downstream; push and SMS do not.)

Why a compacted topic and not ClickHouse. The ledger is written on every send, where its latency adds to the
response time and a crash window, and read at one moment only: on assignment, one partition to its end. Measured
on the 2-core test machine (``test_ledger_figures...`` in ``tests/integration/test_notify_service.py``; ClickHouse
with a ReplacingMergeTree of the same rows, ad hoc): one acknowledged write (acks=all) p50 6.5 ms, p99 12 ms
against a synchronous one-row ClickHouse insert p50 3.8 ms, p99 15 ms - but each such insert is a new part
(hundreds a second is ClickHouse's "too many parts"), and batching or async inserts move the acknowledgement later,
widening the crash window. Rebuilding 100k entries of one partition (64 MB, a fifth carrying their request): 3.0 s
from Kafka, parsed, against 0.18 s for ClickHouse's ``SELECT ... FINAL`` unparsed (+0.6 s to parse): slower, but
paid once per assignment, not per send. The topic keeps the ledger in the failure domain of the requests' own
offsets (no second datastore to be up for every send) and moves with its partition; ClickHouse sees the same facts
anyway, through ``intervention_outcomes``. Compaction keeps one entry per (intervention, channel) forever: the
rebuild time grows with history (tombstoning entries older than the interventions topic's retention is the next
step when it matters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from kafka_io.client import Kafka, kafka_conf
from kafka_io.producer import EventProducer
from schemas.notifications import FINAL_STATES, LedgerEntry

log = logging.getLogger(__name__)

LEDGER_REBUILD_SECONDS = Histogram(
    "engage_notify_ledger_rebuild_seconds",
    "Reading one ledger partition to its end on assignment",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LEDGER_WRITE_SECONDS = Histogram(
    "engage_notify_ledger_write_seconds",
    "From producing a request's ledger entries (with its outcome, dead letter) to Kafka's acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
LEDGER_UNREADABLE = Counter("engage_notify_ledger_unreadable_total", "Ledger entries that did not parse (skipped)")


# -- writing: produce and wait for Kafka's acknowledgement --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Out:
    """One message to write: ``partition`` -1 means the one the key hashes to (murmur2, like every producer here)."""

    topic: str
    key: bytes
    value: bytes
    partition: int = -1


class Outbox:
    """Writes messages and resolves once Kafka acknowledged every one of them (``DeliveryFailed`` otherwise)."""

    def __init__(self, producer: EventProducer) -> None:
        if not producer.report_successes:
            raise ValueError("the Outbox needs an EventProducer created with report_successes=True")
        self.producer = producer

    async def send(self, messages: Sequence[Out]) -> None:
        await self.producer.send_acknowledged([(m.topic, m.key, m.value, m.partition) for m in messages])


# -- reading a partition to its end -------------------------------------------------------------------------------


def reader(bootstrap: Kafka, name: str) -> Consumer:
    """A consumer for reading assigned partitions (no group membership, nothing committed)."""
    return Consumer(
        kafka_conf(
            bootstrap,
            {
                "group.id": f"engage-notify-{name}-reader",  # required by librdkafka; never joined nor committed
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
                # one partition read from its start: large fetches (the default 1 MiB per partition per fetch made a
                # 64 MB ledger partition take ~3 s to read)
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
                "fetch.max.bytes": 64 * 1024 * 1024,
                "queued.max.messages.kbytes": 262_144,
            },
        )
    )


def watermarks(consumer: Consumer, topic: str, partition: int, timeout: float = 60.0) -> tuple[int, int]:
    """The partition's low and high offsets, asked again while the broker does not know the partition yet (right after
    a broker restart the metadata lags: ``_UNKNOWN_PARTITION``, leader not available, timeouts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10.0, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("watermarks of %s[%d] not known yet (%s); asking again", topic, partition, exc)
            time.sleep(0.5)


def read_to_end(
    consumer: Consumer, topic: str, partition: int, start: int = OFFSET_BEGINNING, timeout: float = 60.0
) -> Iterator[Message]:
    """Every message of ``topic[partition]`` from ``start`` up to its end offset as it is when called."""
    low, high = watermarks(consumer, topic, partition, timeout)
    first = low if start == OFFSET_BEGINNING else max(start, low)
    if first >= high:
        return
    consumer.assign([TopicPartition(topic, partition, first)])
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}[{partition}] not read to offset {high} within {timeout:.0f} s")
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() != KafkaError._PARTITION_EOF:
                        log.warning("reading %s[%d]: %s", topic, partition, err)
                    continue
                offset = msg.offset() or 0
                if offset < high:
                    yield msg
                if offset + 1 >= high:
                    return
    finally:
        consumer.unassign()


# -- the ledger ---------------------------------------------------------------------------------------------------


@dataclass
class _Record:
    partition: int
    entries: dict[str, LedgerEntry] = field(default_factory=dict)  # ledger_key -> newest entry


class Ledger:
    """The ledger of the partitions this process owns, in memory, and its writes.

    ``entries(id)`` is what ``processors.notify.dispatch.decide`` is given; ``scheduled()`` what the scheduler
    re-arms after an assignment; ``sent_at(user)`` the sends the per-student cap counts."""

    def __init__(self, bootstrap: Kafka, topic: str, outbox: Outbox) -> None:
        self.topic = topic
        self.outbox = outbox
        self._bootstrap = bootstrap
        self._records: dict[str, _Record] = {}
        self._by_partition: dict[int, set[str]] = {}
        self._sent: dict[str, list[datetime]] = {}  # user -> delivery instants (pruned to the cap window on read)

    # ---- reading
    def load(self, partition: int) -> tuple[int, float]:
        """Read ``partition`` of the ledger to its end (on assignment); returns (entries read, seconds)."""
        started = time.monotonic()
        self.drop(partition)
        self._by_partition[partition] = set()
        consumer = reader(self._bootstrap, "ledger")
        count = 0
        try:
            for msg in read_to_end(consumer, self.topic, partition):
                value = msg.value()
                if value is None:
                    continue  # a tombstone: compaction will drop the key
                try:
                    entry = LedgerEntry.model_validate_json(value)
                except ValidationError as exc:
                    LEDGER_UNREADABLE.inc()
                    log.error(
                        "ledger entry %s[%d]@%d unreadable, skipped: %s", self.topic, partition, msg.offset(), exc
                    )
                    continue
                self._apply(partition, entry)
                count += 1
        finally:
            consumer.close()
        seconds = time.monotonic() - started
        LEDGER_REBUILD_SECONDS.observe(seconds)
        return count, seconds

    def drop(self, partition: int) -> None:
        """Forget a partition (revoked: its next owner reads it back)."""
        for intervention_id in self._by_partition.pop(partition, set()):
            self._records.pop(intervention_id, None)

    @property
    def partitions(self) -> set[int]:
        return set(self._by_partition)

    def entries(self, intervention_id: str) -> list[LedgerEntry]:
        record = self._records.get(intervention_id)
        return list(record.entries.values()) if record is not None else []

    def scheduled(self, partition: int | None = None) -> Iterator[tuple[int, LedgerEntry]]:
        """(partition, scheduled entry) of every request waiting for its time."""
        for record in self._records.values():
            if partition is not None and record.partition != partition:
                continue
            states = {e.state for e in record.entries.values()}
            if "scheduled" in states and not states & FINAL_STATES:
                yield from ((record.partition, e) for e in record.entries.values() if e.state == "scheduled")

    def sent_at(self, user_id: str, now: datetime, window: timedelta = timedelta(hours=24)) -> list[datetime]:
        times = [t for t in self._sent.get(user_id, []) if t > now - window]
        if times:
            self._sent[user_id] = times
        else:
            self._sent.pop(user_id, None)
        return times

    def __len__(self) -> int:
        return len(self._records)

    # ---- writing
    def _apply(self, partition: int, entry: LedgerEntry) -> None:
        record = self._records.get(entry.intervention_id)
        if record is None:
            record = self._records[entry.intervention_id] = _Record(partition)
            self._by_partition.setdefault(partition, set()).add(entry.intervention_id)
        record.entries[entry.ledger_key] = entry
        if entry.state == "sent" and entry.channel is not None:
            self._sent.setdefault(entry.user_id, []).append(entry.at)

    def encode(self, partition: int, entries: Iterable[LedgerEntry]) -> list[Out]:
        return [
            Out(self.topic, e.ledger_key.encode(), e.model_dump_json(exclude_none=True).encode(), partition)
            for e in entries
        ]

    def applied(self, partition: int, entries: Iterable[LedgerEntry]) -> None:
        """Take entries into the in-memory view, once Kafka acknowledged them."""
        for e in entries:
            self._apply(partition, e)

    async def write(self, partition: int, entries: Sequence[LedgerEntry], also: Sequence[Out] = ()) -> None:
        """Write ``also`` (outcomes, dead letters), wait for Kafka's acks, then ``entries`` to ``partition`` and wait
        again; the in-memory view changes only then.

        Two steps because messages to several partitions are not written atomically: sent together, a SIGKILL could
        land between the ledger's partition and the outcome's, and the restarted owner, finding the request final in
        the ledger, would skip it - its outcome lost for good. In this order an entry in the ledger means what it
        stands for is stored; a crash between the steps repeats the request (``also`` is written again), never loses
        it. The price is one more round trip per request (``LEDGER_WRITE_SECONDS`` measures both)."""
        started = time.monotonic()
        if also:
            await self.outbox.send(also)
        await self.outbox.send(self.encode(partition, entries))
        LEDGER_WRITE_SECONDS.observe(time.monotonic() - started)
        self.applied(partition, entries)
