"""What a student's record must carry across a crash: the last folded offset and a re-score still owed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.heuristic import HeuristicModel
from processors.pipeline import OWED_KEY, ScoreRequest, UserRecord, ingest, owe_score, owed_request, rescore
from processors.policy import PolicyConfig

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)


def _record() -> UserRecord:
    record = UserRecord.load(None, "u1")
    ingest(
        record,
        "u1",
        [{"event_id": "e1", "user_id": "u1", "event_type": "login", "event_time": NOW.isoformat(), "platform": "web"}],
    )
    return record


def test_the_last_folded_offset_survives_a_round_trip() -> None:
    record = _record()
    record.source_offset = 41
    assert UserRecord.from_bytes(record.to_bytes()).source_offset == 41
    assert UserRecord.load(None, "u2").source_offset == -1


def test_an_owed_rescore_survives_a_round_trip_and_is_marked_in_the_raw_bytes() -> None:
    record = _record()
    assert f'"{OWED_KEY}":'.encode() not in record.to_bytes()
    request = ScoreRequest("u1", NOW, "events", NOW - timedelta(seconds=5), NOW - timedelta(seconds=1))
    owe_score(record, request)
    raw = record.to_bytes()
    assert f'"{OWED_KEY}":'.encode() in raw
    assert owed_request(UserRecord.from_bytes(raw), "u1") == request


def test_a_user_string_that_looks_like_the_mark_is_escaped_in_the_raw_bytes() -> None:
    record = UserRecord.load(None, '"owed":')
    raw = record.to_bytes()
    assert b'"owed":' in raw.replace(b"\\", b"")  # the id is in there...
    assert f'"{OWED_KEY}":'.encode() not in raw  # ...but never as the mark
    assert owed_request(UserRecord.from_bytes(raw), '"owed":') is None


def test_scoring_pays_what_was_owed() -> None:
    record = _record()
    owe_score(record, ScoreRequest("u1", NOW, "events"))
    rescore([record], [ScoreRequest("u1", NOW, "silence")], HeuristicModel(), PolicyConfig(), NOW)
    assert record.owed is None
    assert owed_request(UserRecord.from_bytes(record.to_bytes()), "u1") is None


def test_the_workers_position_keys_can_never_be_a_student_id() -> None:
    import pytest
    from pydantic import TypeAdapter, ValidationError

    from schemas.events import Identifier
    from streams.worker.core.table_keys import position_key

    with pytest.raises(ValidationError):
        TypeAdapter(Identifier).validate_python(position_key(3).decode())


def test_the_outbox_survives_a_round_trip_and_the_offset_is_read_from_the_bytes() -> None:
    record = _record()
    record.source_offset = 2103
    assert UserRecord.offset_in(record.to_bytes()) == 2103  # the offset last: no comma after it
    record.outbox.append(["t.milestones", "u1", '{"milestone_id": "m1", "offset": 7, "note": "\\"offset\\":9"}'])
    owe_score(record, ScoreRequest("u1", NOW, "events"))
    raw = record.to_bytes()
    assert UserRecord.from_bytes(raw).outbox == record.outbox
    assert UserRecord.offset_in(raw) == 2103  # not an "offset" inside an outbox entry
    assert b'"outbox"' not in _record().to_bytes()  # an empty outbox costs nothing
    assert UserRecord.offset_in(b"{}") == -1
