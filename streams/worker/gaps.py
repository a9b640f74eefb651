"""Messages the consumer skipped, found and read directly, so that no offset is committed past an unfolded one.

Offsets of the events topic are contiguous (no transactions, no compaction), and the worker stores, after each
batch, the last offset it folded per partition. A batch whose offsets for a partition do not continue from
there means the consumer skipped messages. It happened: after a SIGKILL, the restarted worker's first batch
began one past the committed offset (Faust resumes the stream partitions and runs its fetcher before it seeks
them to the committed offsets, and a message fetched in between can be lost in that race), and Faust then
committed past the skipped message, because it treats an acknowledged offset one above the committed one as
contiguous. The skipped messages are read with a plain consumer of their own and folded before the batch.

Skips no later batch reveals (clean clones' ``make test`` runs lost events to the first and the last):
- the last message of a partition: nothing comes after it to show the hole, so ``StalledTails`` watches for
  offsets the consumer handed to the stream that stay unfolded for a grace period, and has them read directly;
- the first message of a partition: with nothing folded or committed yet, the partition starts at its earliest
  offset on the topic (the consumer resets to earliest), not at the first offset a batch happens to hold;
- messages the consumer took from Kafka and Faust never handed to the stream (a fetch that dropped them, with
  no committed offset for a seek to bring them back): ``StalledTails`` also watches a partition whose end stays
  past its last folded offset while nothing is handed and the partition is not paused.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, TopicPartition

from kafka_io.client import Kafka, kafka_conf
from streams.worker.core.ports import Message


def missing_offsets(offsets: Iterable[int], last_folded: int) -> list[int]:
    """Offsets after ``last_folded`` and up to the highest of ``offsets`` that are not among them."""
    seen = {o for o in offsets if o > last_folded}
    if not seen:
        return []
    return [o for o in range(last_folded + 1, max(seen)) if o not in seen]


@dataclass(frozen=True, slots=True)
class _Observed:
    last_folded: int
    handed: int
    since: float


class StalledTails:
    """Offsets the consumer handed to the stream (or took from Kafka) that the worker has not folded for ``grace``
    seconds.

    Faust hands a message to the stream and notes its offset as read; if the message then vanishes (the race
    above), the read offset stays ahead of the partition's last folded offset and nothing moves either. A
    message still queued moves within a batch or two; one lost never does. Reading a merely slow message a
    second time is harmless (the record's ``source_offset`` skips it), so the grace only keeps that rare.
    """

    def __init__(self, grace_seconds: float, max_offsets: int = 1_000) -> None:
        self.grace_seconds = grace_seconds
        self.max_offsets = max_offsets
        self._observed: dict[int, _Observed] = {}

    def missing(self, partition: int, last_folded: int, handed: int | None, now: float) -> list[int]:
        """The offsets to read directly now (at most ``max_offsets``, the oldest first), or []."""
        if handed is None or handed <= last_folded:
            self._observed.pop(partition, None)
            return []
        seen = self._observed.get(partition)
        if seen is None or (seen.last_folded, seen.handed) != (last_folded, handed):
            self._observed[partition] = _Observed(last_folded, handed, now)
            return []
        if now - seen.since < self.grace_seconds:
            return []
        del self._observed[partition]
        return list(range(last_folded + 1, min(handed, last_folded + self.max_offsets) + 1))

    def keep_partitions(self, owned: set[int]) -> None:
        """Forget partitions this worker no longer owns (their new owner watches them)."""
        self._observed = {p: o for p, o in self._observed.items() if p in owned}


def read_offsets(
    bootstrap: Kafka, topic: str, partition: int, offsets: list[int], timeout: float = 30.0
) -> tuple[list[Message], list[int]]:
    """Read the messages at ``offsets`` of one partition: (the ones found, the offsets no longer on the topic).

    Raises TimeoutError when Kafka does not deliver them in ``timeout`` seconds (then the worker must not go on
    folding that partition: a later offset folded and committed would lose them).
    """
    wanted = set(offsets)
    consumer = Consumer(
        kafka_conf(
            bootstrap,
            {
                "group.id": f"{topic}-refetch",  # assign() only: nothing is ever committed for this group
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            },
        )
    )
    found: dict[int, Message] = {}
    try:
        consumer.assign([TopicPartition(topic, partition, min(wanted))])
        deadline = time.monotonic() + timeout
        position = min(wanted)
        while position <= max(wanted):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}[{partition}]: offsets {sorted(wanted - set(found))} not read in time")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            error, offset = msg.error(), msg.offset()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    break  # the partition ends before them: nothing more to read
                continue  # transient (the client retries); the deadline bounds it
            if offset is None:
                continue
            position = offset + 1
            if offset in wanted:
                ts = msg.timestamp()[1]
                found[offset] = Message(partition, offset, ts / 1000 if ts > 0 else None, msg.value() or b"")
    finally:
        consumer.close()
    return [found[o] for o in sorted(found)], sorted(wanted - set(found))
