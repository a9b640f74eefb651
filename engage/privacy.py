"""`engage privacy delete USER`: erase one student everywhere, in an order that leaves nothing behind.

1. An ``ErasureRequest`` goes on the events topic, keyed by the student (``schemas.privacy``), so the worker
   owning them handles it after every event sent before it: the record is deleted (a tombstone in the
   changelog, which is compacted) along with what the worker holds in memory; it confirms on the erasures topic.
2. Every sink is waited for until it has stored everything that was on its topic at the confirmation, so no
   row of the student is still on its way to ClickHouse.
3. The student's rows are deleted from every warehouse table that has a ``user_id`` (ClickHouse mutations,
   waited for), and dead letters whose raw text names them.
4. Every place is checked again and the counts are reported: the erasure is complete only if all are zero.

Non-compacted topics (events, risk updates, ...) keep messages until their retention (7-30 days) deletes
them; they are not rewritten, which Kafka cannot do. Events sent after the request create a new record.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from config.settings import Settings
from schemas.privacy import ErasureDone, ErasureRequest
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.clickhouse.tables import DEAD_LETTERS, TABLES, cluster_for
from sinks.service import sink_positions
from streams.producer import EventProducer


@dataclass
class ErasureReport:
    erasure_id: str
    worker_had_state: bool = False
    rows_deleted: dict[str, int] = field(default_factory=dict)
    rows_left: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not any(self.rows_left.values())


def user_tables() -> list[str]:
    """Warehouse tables keyed by student (the landing table stores nothing)."""
    return [t.name for t in TABLES if "user_id" in t.column_names and not t.engine.startswith("Null")]


def request_erasure(settings: Settings, user_id: str, requested_by: str) -> ErasureRequest:
    request = ErasureRequest(
        erasure_id=f"erasure-{uuid.uuid4().hex}",
        user_id=user_id,
        requested_at=datetime.now(UTC),
        requested_by=requested_by,
    )
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    message = {"schema_version": 1, "user_id": user_id, "erase": request.model_dump(mode="json")}
    with EventProducer(settings.kafka_bootstrap, topics, source="privacy") as producer:
        producer.send_encoded(user_id.encode(), orjson.dumps(message), topic=topics.events.name)
        if producer.flush(30):
            raise RuntimeError("Kafka did not acknowledge the erasure request")
    return request


def wait_for_confirmation(settings: Settings, erasure_id: str, timeout: float) -> ErasureDone:
    """The owning worker's confirmation (read from the start of the erasures topic)."""
    topic = catalogue(settings.topic_prefix, settings.event_partitions).erasures.name
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"privacy-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, 0)])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if msg.error() is None and msg.key() == erasure_id.encode():
                    return ErasureDone.model_validate_json(msg.value() or b"{}")
    finally:
        consumer.close()
    raise TimeoutError(f"no worker confirmed erasure {erasure_id} within {timeout:.0f} s: is a worker running?")


def wait_for_sinks_to_store_now(settings: Settings, timeout: float) -> None:
    """Until every sink has stored what was on its topic now (later messages do not matter)."""
    marks = {name: {p: high for p, (_, high) in parts.items()} for name, parts in sink_positions(settings).items()}
    deadline = time.monotonic() + timeout
    while True:
        behind = {
            name: [p for p, (done, _) in parts.items() if done < marks[name][p]]
            for name, parts in sink_positions(settings).items()
        }
        behind = {k: v for k, v in behind.items() if v}
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"sinks still storing older messages after {timeout:.0f} s: {sorted(behind)}")
        time.sleep(0.5)


def _where(table: str) -> str:
    """The student's rows; dead letters also when their raw text (the refused input) names the student.

    Values are ``%(name)s`` parameters (``_params``), which clickhouse-driver escapes.
    """
    match = "user_id = %(user_id)s"
    if table == DEAD_LETTERS.name:
        match += " OR raw LIKE %(raw_pattern)s"
    return match


def _params(user_id: str) -> dict[str, str]:
    """The values ``_where`` names: the id, and a LIKE pattern matching it as a JSON string in the raw text."""
    quoted = orjson.dumps(user_id).decode()  # as the raw JSON spells it: "a\\b" for a\b
    like = quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")  # wildcards, literally
    return {"user_id": user_id, "raw_pattern": f"%{like}%"}


def _counts(client: Any, database: str, user_id: str) -> dict[str, int]:
    return {
        t: int(client.execute(f"SELECT count() FROM {database}.{t} WHERE {_where(t)}", _params(user_id))[0][0])
        for t in user_tables()
    }


def erase_from_warehouse(client: Any, settings: Settings, user_id: str, timeout: float = 120.0) -> dict[str, int]:
    """Delete the student's rows everywhere (mutations, waited for); rows found per table before."""
    database = settings.clickhouse_database
    cluster = cluster_for(settings.clickhouse_cluster)
    before = _counts(client, database, user_id)
    for table, rows in before.items():
        if not rows:
            continue
        name = cluster.local(table) if cluster else table
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        client.execute(f"ALTER TABLE {database}.{name}{on} DELETE WHERE {_where(table)}", _params(user_id))
    deadline = time.monotonic() + timeout
    pending = "SELECT count() FROM system.mutations WHERE database = %(database)s AND is_done = 0"
    while client.execute(pending, {"database": database})[0][0]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"ClickHouse deletions not finished within {timeout:.0f} s")
        time.sleep(0.2)
    return before


def erase_everywhere(settings: Settings, user_id: str, requested_by: str = "cli", timeout: float = 120.0
                     ) -> ErasureReport:  # fmt: skip
    return complete_erasure(settings, request_erasure(settings, user_id, requested_by), timeout)


def complete_erasure(settings: Settings, request: ErasureRequest, timeout: float = 120.0) -> ErasureReport:
    """Steps 2-4 for a request already sent (the API answers with its id first, then finishes in the background)."""
    started = time.monotonic()
    user_id = request.user_id
    report = ErasureReport(request.erasure_id)
    report.worker_had_state = wait_for_confirmation(settings, request.erasure_id, timeout).found
    wait_for_sinks_to_store_now(settings, timeout)
    client = connect(settings)
    report.rows_deleted = erase_from_warehouse(client, settings, user_id, timeout)
    report.rows_left = _counts(client, settings.clickhouse_database, user_id)
    report.seconds = time.monotonic() - started
    return report
