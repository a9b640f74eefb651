"""The erasure's report and the sinks service's side of it, without servers (``schemas.privacy``, ``sinks.erasure``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from config.settings import Settings
from schemas.privacy import ErasureReport, ErasureRequest
from schemas.topics import catalogue
from sinks import erasure
from sinks.base import SinkBatch, UndecodableMessage
from sinks.erasure import ErasureSink, without_student
from sinks.positions import ERASURES, SERVICE_NAMES, SINK_NAMES, source_of
from sinks.service import batching_for

NOW = datetime(2026, 11, 25, 10, tzinfo=UTC)
STUDENT = "o'brien\\x"  # not a valid id (schemas.events.Identifier), but the warehouse half must not care
ENROLLED = "student-7"


def _report(**fields: Any) -> ErasureReport:
    return ErasureReport(erasure_id="erasure-1", reported_at=NOW, **fields)


def _request(user_id: str = ENROLLED, erasure_id: str = "erasure-1") -> ErasureRequest:
    return ErasureRequest(erasure_id=erasure_id, user_id=user_id, requested_at=NOW, requested_by="cli")


def test_a_report_is_complete_only_with_nothing_left_and_no_error() -> None:
    assert _report(rows_deleted={"behavior_events": 5}, rows_left={"behavior_events": 0}).status == "complete"
    left = _report(rows_deleted={"behavior_events": 5}, rows_left={"behavior_events": 2, "risk_updates": 0})
    assert not left.complete
    assert left.status == "failed: rows left {'behavior_events': 2, 'risk_updates': 0}"
    stopped = _report(error="no worker confirmed erasure erasure-1 within 120 s: is a worker running?")
    assert not stopped.complete
    assert stopped.status == "failed: no worker confirmed erasure erasure-1 within 120 s: is a worker running?"


def test_a_report_round_trips_as_json_and_refuses_unknown_fields() -> None:
    report = _report(worker_had_state=True, rows_deleted={"dead_letters": 1}, rows_left={"dead_letters": 0})
    assert ErasureReport.model_validate_json(report.model_dump_json()) == report
    with pytest.raises(ValueError, match="user_id"):
        ErasureReport.model_validate({**report.model_dump(mode="json"), "user_id": STUDENT})


def test_the_erasure_topics_are_keyed_by_the_erasure_and_only_the_request_names_the_student() -> None:
    topics = catalogue("t", 4)
    assert topics.erasure_requests.key == topics.erasure_reports.key == topics.erasures.key == "erasure_id"
    assert topics.erasure_requests.partitions == topics.erasure_reports.partitions == 1
    # The request (which names the student) is kept no longer than the events topic keeps the same request.
    assert topics.erasure_requests.retention_ms == topics.events.retention_ms
    assert topics.erasure_reports.cleanup_policy == "compact"  # the newest report per erasure
    assert "user_id" not in ErasureReport.model_fields


def test_an_error_message_loses_the_students_id_in_every_spelling() -> None:
    message = (
        f"Code: 62. Syntax error near 'o\\'brien\\\\x' in DELETE WHERE user_id = {STUDENT} "
        f"raw {orjson.dumps(STUDENT).decode()}"
    )
    scrubbed = without_student(message, STUDENT)
    assert "brien" not in scrubbed
    assert scrubbed.count("<the student>") == 3
    assert without_student("nothing to hide", STUDENT) == "nothing to hide"


def test_the_erasure_sink_decodes_requests_and_refuses_anything_else() -> None:
    sink = ErasureSink(Settings(), reports=None)  # type: ignore[arg-type]
    assert sink.decode(_request().model_dump_json().encode(), 0, 7) == [_request()]
    with pytest.raises(UndecodableMessage, match="not an ErasureRequest"):
        sink.decode(b'{"erasure_id": "e"}', 0, 8)


class _Reports:
    """The producer the sink publishes reports with: what was sent, and delivery failures on demand."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[bytes, bytes, str | None]] = []
        self.fail = fail
        self.stats = type("Stats", (), {"failed": 0, "last_error": None})()

    def send_encoded(self, key: bytes, value: bytes, topic: str | None = None) -> None:
        self.sent.append((key, value, topic))
        if self.fail:
            self.stats.failed += 1
            self.stats.last_error = "broker down"

    def flush(self, timeout: float = 30.0) -> int:
        return 0


def _batch(*requests: ErasureRequest) -> SinkBatch:
    batch = SinkBatch("t.erasure-requests.v1")
    for offset, request in enumerate(requests):
        batch.add(0, offset, [request])
    return batch


def test_each_request_gets_a_report_and_a_failed_step_a_failed_report_without_the_student(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def complete(settings: Settings, request: ErasureRequest, timeout: float) -> ErasureReport:
        if request.erasure_id == "erasure-2":
            raise ConnectionError(f"ClickHouse refused DELETE WHERE user_id = '{request.user_id}'")
        return ErasureReport(erasure_id=request.erasure_id, reported_at=NOW, worker_had_state=True,
                             rows_deleted={"behavior_events": 3}, rows_left={"behavior_events": 0})  # fmt: skip

    monkeypatch.setattr(erasure, "complete_erasure", complete)
    reports = _Reports()
    sink = ErasureSink(Settings(topic_prefix="t"), reports)  # type: ignore[arg-type]
    sink.write(_batch(_request(), _request("other", "erasure-2")))

    assert [(key, topic) for key, _, topic in reports.sent] == [
        (b"erasure-1", "t.erasure-reports.v1"),
        (b"erasure-2", "t.erasure-reports.v1"),
    ]
    done, failed = (ErasureReport.model_validate_json(value) for _, value, _ in reports.sent)
    assert done.status == "complete" and done.worker_had_state
    assert failed.status == "failed: ClickHouse refused DELETE WHERE user_id = '<the student>'"
    assert all(b"other" not in value for _, value, _ in reports.sent)


def test_a_report_kafka_did_not_take_fails_the_write_so_the_request_is_carried_out_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(erasure, "complete_erasure", lambda s, r, t: _report())
    sink = ErasureSink(Settings(), _Reports(fail=True))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="not acknowledged"):
        sink.write(_batch(_request()))


def test_the_sinks_service_runs_erasures_beside_the_sinks_it_waits_for() -> None:
    settings = Settings(topic_prefix="t", sink_batch_rows=100_000, sink_batch_seconds=5.0)
    assert ERASURES in SERVICE_NAMES and ERASURES not in SINK_NAMES  # never waits for itself
    assert source_of(catalogue("t"), ERASURES) == ("erasures", "t.erasure-requests.v1")
    assert batching_for(settings, ERASURES).rows == 1  # the table overrides do not hold erasures back
    assert batching_for(settings, "events").rows == 100_000
