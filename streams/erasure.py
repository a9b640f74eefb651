"""The Kafka half of erasing a student: the request, the worker's confirmation, the sinks service's report.

1. ``request_erasure`` puts an ``ErasureRequest`` on the events topic, keyed by the student (``schemas.privacy``),
   so the worker owning them handles it after every event sent before it: the record is deleted (a tombstone in
   the changelog, which is compacted) along with what the worker holds in memory; it confirms on the erasures
   topic. The same request goes on the erasure-requests topic, keyed by its id, for the sinks service.
2. The sinks service (``sinks.erasure``) waits for that confirmation, for every sink to store what was on its
   topic then, deletes the student's warehouse rows, counts again and publishes an ``ErasureReport`` on the
   erasure-reports topic.
3. Whoever asked (``engage privacy delete``, or ``GET /v1/erasures/{id}`` on any worker) reads that report.

Nothing here touches ClickHouse: the worker that answers ``DELETE /v1/users/{id}`` only sends the request.
Non-compacted topics (events, risk updates, ...) keep messages until their retention (7-30 days) deletes
them; they are not rewritten, which Kafka cannot do. Events sent after the request create a new record.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition

from config.settings import Settings
from kafka_io.client import kafka_conf
from kafka_io.producer import EventProducer
from schemas.privacy import ErasureDone, ErasureReport, ErasureRequest
from schemas.topics import catalogue

IN_PROGRESS = "in_progress"


def request_erasure(settings: Settings, user_id: str, requested_by: str) -> ErasureRequest:
    """Send the request to the owning worker (events topic) and to the sinks service (erasure-requests topic);
    return once Kafka acknowledged both."""
    request = ErasureRequest(
        erasure_id=f"erasure-{uuid.uuid4().hex}",
        user_id=user_id,
        requested_at=datetime.now(UTC),
        requested_by=requested_by,
    )
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    message = {"schema_version": 1, "user_id": user_id, "erase": request.model_dump(mode="json")}
    with EventProducer(settings.kafka, topics, source="privacy") as producer:
        producer.send_encoded(user_id.encode(), orjson.dumps(message), topic=topics.events.name)
        producer.send_encoded(
            request.erasure_id.encode(), request.model_dump_json().encode(), topic=topics.erasure_requests.name
        )
        if producer.flush(30) or producer.stats.failed:
            raise RuntimeError(f"Kafka did not acknowledge the erasure request: {producer.stats.last_error}")
    return request


def _consumer(settings: Settings) -> Consumer:
    return Consumer(kafka_conf(settings.kafka, {"group.id": f"privacy-{uuid.uuid4().hex}",
                     "auto.offset.reset": "earliest", "enable.auto.commit": False,
                     "enable.partition.eof": True}))  # fmt: skip


def _wait_for_key(settings: Settings, topic: str, key: bytes, timeout: float) -> bytes | None:
    """The first value with ``key`` on a one-partition topic, read from its start; None after ``timeout``."""
    consumer = _consumer(settings)
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is None and msg.key() == key:
                    return msg.value() or b"{}"
    finally:
        consumer.close()
    return None


def newest_value(settings: Settings, topic: str, key: bytes, timeout: float = 10.0) -> bytes | None:
    """The newest value with ``key`` on a one-partition topic as it stands now (read to its end); None: none."""
    consumer = _consumer(settings)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout)
        if high <= low:
            return None
        consumer.assign([TopicPartition(topic, 0, low)])
        newest: bytes | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        return newest
                    continue
                if msg.key() == key:
                    newest = msg.value()
                if (msg.offset() or 0) >= high - 1:
                    return newest
        raise TimeoutError(f"{topic} not read to its end within {timeout:.0f} s")
    finally:
        consumer.close()


def wait_for_confirmation(settings: Settings, erasure_id: str, timeout: float) -> ErasureDone:
    """The owning worker's confirmation (read from the start of the erasures topic)."""
    topic = catalogue(settings.topic_prefix, settings.event_partitions).erasures.name
    value = _wait_for_key(settings, topic, erasure_id.encode(), timeout)
    if value is None:
        raise TimeoutError(f"no worker confirmed erasure {erasure_id} within {timeout:.0f} s: is a worker running?")
    return ErasureDone.model_validate_json(value)


def wait_for_report(settings: Settings, erasure_id: str, timeout: float) -> ErasureReport:
    """The sinks service's report on the erasure (read from the start of the erasure-reports topic)."""
    topic = catalogue(settings.topic_prefix, settings.event_partitions).erasure_reports.name
    value = _wait_for_key(settings, topic, erasure_id.encode(), timeout)
    if value is None:
        raise TimeoutError(
            f"no report on erasure {erasure_id} within {timeout:.0f} s: is the sinks service running "
            "(engage sink all, or engage sink erasures)? The request stays queued for it."
        )
    return ErasureReport.model_validate_json(value)


def erasure_status(settings: Settings, erasure_id: str) -> str | None:
    """``complete`` / ``failed: ...`` from the newest report, ``in_progress`` while the request waits for one,
    None for an id never requested (or one whose request and report are both gone)."""
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    key = erasure_id.encode()
    report = newest_value(settings, topics.erasure_reports.name, key)
    if report is not None:
        return ErasureReport.model_validate_json(report).status
    if newest_value(settings, topics.erasure_requests.name, key) is not None:
        return IN_PROGRESS
    return None


def erase_everywhere(settings: Settings, user_id: str, requested_by: str, timeout: float) -> ErasureReport:
    """Request the erasure and wait up to ``timeout`` for the sinks service's report on it."""
    return wait_for_report(settings, request_erasure(settings, user_id, requested_by).erasure_id, timeout)
