"""Moving to a new topic catalogue (another prefix, more partitions), carrying over what services hold as state.

A student's events, state and outputs live in the partition their id hashes to, so the events topic cannot grow
in place: after ``kafka-topics --alter --partitions`` a student's new events would land where their state is not.
Growing goes through a new catalogue instead (``deploy/SCALING.md``): producers switch to it, the old catalogue's
consumers finish and stop, and then the state they rebuild from whole topics (``TopicSpec.carried_over``: the
compacted topics, the bandit's outcomes) and the workers' table changelogs is copied over, each message to the
partition its student hashes to under the new count. The new catalogue's consumers then start on it.

Copying is refused while a consumer group still has members or has not consumed everything of the old
catalogue's topics: a record copied before its last events were folded would miss them in the new catalogue.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import orjson
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from kafka_io.admin import Replication, connect_admin, ensure_topics, whole_topic_reader
from kafka_io.client import Kafka, kafka_conf
from kafka_io.producer import EventProducer, key_partition
from schemas.topics import TopicCatalogue, TopicSpec

Rewrite = Callable[[bytes, bytes], bytes | None]  # (key, value) -> the value to carry over, or None: not carried


class NotDrained(RuntimeError):
    """The old catalogue is still being consumed: copying its state now would leave events out of it."""


@dataclass(frozen=True)
class Carried:
    """One topic whose messages the new catalogue must start with."""

    source: TopicSpec
    target: TopicSpec
    newest_only: bool  # compacted: the newest value per key, tombstones left behind
    rewrite: Rewrite | None = None

    def student(self, key: bytes, value: bytes) -> bytes:
        """The bytes whose hash decides the message's partition: its key, or its student's id (``student_field``)."""
        if not self.source.student_field:
            return key
        return str(orjson.loads(value)[self.source.student_field]).encode()

    def partition(self, key: bytes, value: bytes) -> int:
        return 0 if self.target.partitions == 1 else key_partition(self.student(key, value), self.target.partitions)


@dataclass
class MoveReport:
    copied: dict[str, int] = field(default_factory=dict)  # target topic -> messages written
    left_behind: dict[str, int] = field(default_factory=dict)  # source topic -> messages not carried (see Carried)


def carried_topics(old: TopicCatalogue, new: TopicCatalogue) -> list[Carried]:
    """The catalogue's topics that hold state (``TopicSpec.carried_over``), each with its counterpart."""
    return [
        Carried(source, target, newest_only=source.cleanup_policy == "compact")
        for source, target in zip(old.all(), new.all(), strict=True)
        if source.carried_over
    ]


def undrained(kafka: Kafka, topics: set[str], prefix: str, timeout: float = 30.0) -> list[str]:
    """Why copying the state of ``topics`` now would lose events: each consumer group of them that still has
    members, or has committed offsets on one of them short of its end. A group is one of them if it committed
    offsets on them, a member is assigned one of them, or it is named after the catalogue (``{prefix}-...``: the
    workers', whose first commit may not have come yet). Empty when every group is stopped and caught up."""
    admin, _ = connect_admin(kafka, timeout)
    groups = [g.group_id for g in admin.list_consumer_groups(request_timeout=timeout).result().valid]
    problems: list[str] = []
    if not groups:
        return problems
    described = admin.describe_consumer_groups(groups, request_timeout=timeout)
    reader = Consumer(kafka_conf(kafka, {"group.id": "engage-catalogue-move-check", "enable.auto.commit": False}))
    try:
        for group in groups:
            committed = _group_offsets(admin, group, timeout)
            ours = [tp for tp in committed if tp.topic in topics and tp.offset >= 0]
            members = described[group].result().members
            assigned = {tp.topic for m in members if m.assignment for tp in m.assignment.topic_partitions}
            if not ours and not assigned & topics and not group.startswith(f"{prefix}-"):
                continue
            if members:
                problems.append(f"group {group!r} still has {len(members)} member(s): stop them")
            for tp in ours:
                _, high = reader.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout)
                if high > tp.offset:
                    problems.append(f"group {group!r} has {high - tp.offset} message(s) of {tp.topic} "
                                    f"[{tp.partition}] not consumed (committed {tp.offset}, end {high})")  # fmt: skip
    finally:
        reader.close()
    return problems


def _group_offsets(admin: AdminClient, group: str, timeout: float) -> list[TopicPartition]:
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=timeout)
    result = futures[group].result()
    return list(result.topic_partitions or [])


Message = tuple[bytes, bytes | None, int]  # key, value, Kafka timestamp (ms)


def read_whole(kafka: Kafka, topic: str, timeout: float = 30.0) -> Iterator[Message]:
    """Every message of ``topic`` up to its end as it is now, in each partition's order."""
    consumer = whole_topic_reader(kafka, topic, "engage-catalogue-move", timeout)
    try:
        ends: dict[int, int] = {}
        for tp in consumer.assignment():
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high > low:
                ends[tp.partition] = high
        deadline = time.monotonic() + timeout
        while ends:
            messages = consumer.consume(1000, timeout=0.5)
            for msg in messages:
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                partition, offset = msg.partition(), msg.offset()
                if partition not in ends or offset is None or offset >= ends[partition]:
                    continue
                yield msg.key() or b"", msg.value(), max(0, msg.timestamp()[1])
                if offset + 1 >= ends[partition]:
                    del ends[partition]
            if messages:
                deadline = time.monotonic() + timeout
            else:  # compaction can leave the end's offsets empty: the position tells how far the reader got
                for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                    if tp.offset >= ends[tp.partition]:
                        del ends[tp.partition]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}: nothing read for {timeout:.0f} s short of its end ({ends})")
    finally:
        consumer.close()


def copy_carried(kafka: Kafka, item: Carried, producer: EventProducer, report: MoveReport) -> None:
    """Write ``item``'s source messages to its target, each to the partition its student hashes to there."""
    messages: Iterator[Message] = read_whole(kafka, item.source.name)
    if item.newest_only:
        newest: dict[bytes, Message] = {}
        for message in messages:
            newest.pop(message[0], None)  # a key keeps the place of its newest write, as in the partition's order
            newest[message[0]] = message
        messages = iter(list(newest.values()))
    copied = left = 0
    for key, value, timestamp in messages:
        if value is None and item.newest_only:  # a deleted key: nothing to carry
            left += 1
            continue
        if value is not None and item.rewrite is not None:
            value = item.rewrite(key, value)
            if value is None:
                left += 1
                continue
        partition = item.partition(key, value or b"")
        producer.send_encoded(key, value, topic=item.target.name, partition=partition, timestamp=timestamp)
        copied += 1
    report.copied[item.target.name] = copied
    report.left_behind[item.source.name] = left


def move_catalogue(
    kafka: Kafka,
    old: TopicCatalogue,
    new: TopicCatalogue,
    replication: Replication,
    tables: tuple[Carried, ...] = (),
    timeout: float = 60.0,
) -> MoveReport:
    """Create ``new``'s topics (and ``tables``' targets), check ``old`` is drained, and carry its state over."""
    carried = [*carried_topics(old, new), *tables]
    ensure_topics(kafka, [*new.all(), *(t.target for t in tables)], replication=replication)
    problems = undrained(kafka, {t.name for t in old.all()}, old.prefix)
    if problems:
        raise NotDrained("the old catalogue is still being consumed; stop its consumers once they caught up:\n  "
                         + "\n  ".join(problems))  # fmt: skip
    report = MoveReport()
    producer = EventProducer(kafka, new, source="catalogue-move")
    try:
        for item in carried:
            copy_carried(kafka, item, producer, report)
        if producer.flush(timeout) or producer.stats.failed:
            raise RuntimeError(f"Kafka did not acknowledge every copied message: {producer.stats.last_error}")
    finally:
        producer.close(timeout=0)
    return report
