"""The warehouse half of erasing a student, done by the sinks service (``engage sink all`` or ``engage sink erasures``).

For each request on the erasure-requests topic (``streams.erasure.request_erasure`` puts it there beside the one
the owning worker reads on the events topic):

1. the owning worker's confirmation is waited for on the erasures topic: the worker has then sent every output
   of the student's events before the request;
2. every sink is waited for until it has stored everything that was on its topic at that moment, so no row of the
   student is still on its way to ClickHouse;
3. the student's rows are deleted from every warehouse table that has a ``user_id`` (ClickHouse mutations,
   waited for), and dead letters whose raw text names them;
4. every table is counted again, and an ``ErasureReport`` (complete only if all counts are zero; no student
   named) is published on the erasure-reports topic, keyed by the erasure id, before the request's offset is
   committed. A request re-delivered after a crash is carried out again: every step is idempotent.

A step that fails or times out gives a failed report (``failed: why``), as the requester sees it; the request is
then done, and the erasure may be asked for again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from config.settings import Settings
from kafka_io.admin import Replication, ensure_topics
from kafka_io.producer import EventProducer
from schemas.privacy import ErasureReport, ErasureRequest
from schemas.topics import catalogue
from sinks.base import BatchingSink, SinkBatch, UndecodableMessage
from sinks.clickhouse.client import connect
from sinks.clickhouse.tables import DEAD_LETTERS, TABLES, cluster_for
from sinks.positions import sink_positions
from streams.erasure import wait_for_confirmation

log = logging.getLogger(__name__)

STEP_TIMEOUT_SECONDS = 120.0  # each of: the worker's confirmation, the sinks catching up, the deletions


def user_tables() -> list[str]:
    """Warehouse tables keyed by student (the landing table stores nothing)."""
    return [t.name for t in TABLES if "user_id" in t.column_names and not t.engine.startswith("Null")]


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


def complete_erasure(settings: Settings, request: ErasureRequest, timeout: float = STEP_TIMEOUT_SECONDS
                     ) -> ErasureReport:  # fmt: skip
    """Steps 1-4 for a request already sent (raises when a step fails or times out)."""
    started = time.monotonic()
    user_id = request.user_id
    worker_had_state = wait_for_confirmation(settings, request.erasure_id, timeout).found
    wait_for_sinks_to_store_now(settings, timeout)
    client = connect(settings)
    rows_deleted = erase_from_warehouse(client, settings, user_id, timeout)
    rows_left = _counts(client, settings.clickhouse_database, user_id)
    return ErasureReport(
        erasure_id=request.erasure_id,
        reported_at=datetime.now(UTC),
        worker_had_state=worker_had_state,
        rows_deleted=rows_deleted,
        rows_left=rows_left,
        seconds=time.monotonic() - started,
    )


def without_student(text: str, user_id: str) -> str:
    """``text`` (an error message, bound for the report and the log) with the student's id taken out, as written,
    as JSON spells it and as SQL quoting escapes it: a report names the request, never the student."""
    spellings = {user_id, orjson.dumps(user_id).decode()[1:-1], user_id.replace("\\", "\\\\").replace("'", "\\'")}
    for spelling in sorted(spellings - {""}, key=len, reverse=True):
        text = text.replace(spelling, "<the student>")
    return text


class ErasureSink(BatchingSink):
    """The erasure-requests topic into warehouse deletions and a report each (``sinks.runner.SinkRunner`` commits a
    request only after its report is acknowledged by Kafka)."""

    name = "erasures"

    def __init__(self, settings: Settings, reports: EventProducer, step_timeout: float = STEP_TIMEOUT_SECONDS):
        self.settings = settings
        self.reports = reports
        self.step_timeout = step_timeout
        self.topics = catalogue(settings.topic_prefix, settings.event_partitions)

    def setup(self) -> None:
        ensure_topics(
            self.settings.kafka,
            [self.topics.erasure_requests, self.topics.erasure_reports],
            replication=Replication(*self.settings.kafka_replication),
        )

    def decode(self, value: bytes, partition: int, offset: int) -> Sequence[ErasureRequest]:
        try:
            return [ErasureRequest.model_validate_json(value)]
        except ValidationError as exc:
            raise UndecodableMessage(f"not an ErasureRequest: {exc.errors()[:3]}") from exc

    def carry_out(self, request: ErasureRequest) -> ErasureReport:
        """The erasure's report: what was deleted and left, or why it failed."""
        started = time.monotonic()
        try:
            report = complete_erasure(self.settings, request, self.step_timeout)
        except Exception as exc:
            report = ErasureReport(
                erasure_id=request.erasure_id,
                reported_at=datetime.now(UTC),
                seconds=time.monotonic() - started,
                error=without_student(str(exc) or type(exc).__name__, request.user_id),
            )
        log.info("erasure %s: %s in %.1f s", request.erasure_id, report.status, report.seconds)
        return report

    def write(self, batch: SinkBatch) -> None:
        failed_before = self.reports.stats.failed
        for request in batch.rows:
            report = self.carry_out(request)
            self.reports.send_encoded(
                report.erasure_id.encode(), report.model_dump_json().encode(), topic=self.topics.erasure_reports.name
            )
        if self.reports.flush(30.0) or self.reports.stats.failed > failed_before:
            raise RuntimeError(f"erasure reports not acknowledged by Kafka: {self.reports.stats.last_error}")
