"""The collector's per-event judgement (streams.collector.validation): pure logic, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from streams.collector.validation import BatchShapeError, Limits, Rejection, Verdict, extract_events, judge

# The conftest's minimal events happen at 2024-05-01T10:00:00+02:00 = 08:00 UTC.
RECEIVED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)
APP = "demo-web"


def run(events: list[Any], limits: Limits | None = None) -> Verdict:
    return judge(events, RECEIVED, APP, limits or Limits())


def at(moment: datetime, offset_hours: float = 2) -> str:
    """``moment`` as ISO text in a non-UTC offset (the comparison must be on the instant, not the wall clock)."""
    return moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


# ------------------------------------------------------------------------------------------------------
# Accepting and rejecting
# ------------------------------------------------------------------------------------------------------


def test_good_events_are_accepted_in_order(make_event):
    events = [
        make_event("login", event_id="e-1"),
        make_event("quiz_submitted", event_id="e-2"),
        make_event("session_started", event_id="e-3"),
    ]
    verdict = run(events)
    assert [e.event_id for e in verdict.accepted] == ["e-1", "e-2", "e-3"]
    assert [e.event_type for e in verdict.accepted] == ["login", "quiz_submitted", "session_started"]
    assert verdict.rejected == []
    assert verdict.dead_letters == []
    assert verdict.duplicates == []


def test_a_bad_event_is_rejected_alone_with_its_index_id_reason_and_dead_letter(make_event):
    bad = make_event("login", event_id="e-bad", platform="windows")
    events = [make_event("login", event_id="e-1"), bad, make_event("enrolled", event_id="e-3")]
    verdict = run(events)

    assert [e.event_id for e in verdict.accepted] == ["e-1", "e-3"]
    assert len(verdict.rejected) == 1
    rejection = verdict.rejected[0]
    assert isinstance(rejection, Rejection)
    assert rejection.index == 1
    assert rejection.event_id == "e-bad"
    assert [e.field for e in rejection.errors] == ["platform"]
    assert "platform" in rejection.reason
    assert "windows" in rejection.reason

    assert len(verdict.dead_letters) == 1
    letter = verdict.dead_letters[0]
    assert letter.source == "collector"
    assert letter.app_id == APP
    assert letter.received_at == RECEIVED
    assert letter.reason == rejection.reason
    assert letter.errors == rejection.errors
    assert letter.event_id == "e-bad"
    assert letter.user_id == bad["user_id"]
    assert letter.event_type == "login"
    assert orjson.loads(letter.raw) == bad


def test_each_rejection_carries_its_own_index_and_dead_letter(make_event):
    events = [
        make_event("login", event_id="ok-0"),
        make_event("login", event_id="bad-1", platform="fax"),
        make_event("login", event_id="ok-2"),
        make_event("quiz_submitted", event_id="bad-3", payload={"score": 11.0}),
        {"event_type": "login"},
    ]
    verdict = run(events)
    assert [r.index for r in verdict.rejected] == [1, 3, 4]
    assert [r.event_id for r in verdict.rejected] == ["bad-1", "bad-3", None]
    assert all(r.reason and r.errors for r in verdict.rejected)
    assert [orjson.loads(d.raw) for d in verdict.dead_letters] == [events[1], events[3], events[4]]
    assert len({d.dead_letter_id for d in verdict.dead_letters}) == 3
    assert [e.event_id for e in verdict.accepted] == ["ok-0", "ok-2"]


@pytest.mark.parametrize("event_id", [None, 123, ["e-1"]])
def test_event_id_is_none_when_missing_or_not_a_string(make_event, event_id):
    event = make_event("login", platform="fax")
    if event_id is None:
        del event["event_id"]
    else:
        event["event_id"] = event_id
    verdict = run([event])
    assert verdict.rejected[0].event_id is None
    assert verdict.dead_letters[0].event_id is None
    assert orjson.loads(verdict.dead_letters[0].raw) == event


def test_rejection_as_json_is_plain_json(make_event):
    verdict = run([make_event("login", event_id="e-bad", platform="fax")])
    body = verdict.rejected[0].as_json()
    assert set(body) == {"index", "event_id", "reason", "errors"}
    assert body["index"] == 0
    assert body["event_id"] == "e-bad"
    assert body["errors"] == [{"field": "platform", "message": verdict.rejected[0].errors[0].message}]
    assert orjson.loads(orjson.dumps(body)) == body


@pytest.mark.parametrize("item", [5, "x", None, [], 2.5, True])
def test_non_objects_are_rejected_not_crashing(make_event, item):
    verdict = run([make_event("login"), item])
    assert [e.event_id for e in verdict.accepted] == ["evt-0001"]
    [rejection] = verdict.rejected
    assert rejection.index == 1
    assert rejection.event_id is None
    assert [e.field for e in rejection.errors] == ["(event)"]
    [letter] = verdict.dead_letters
    assert orjson.loads(letter.raw) == item
    assert letter.user_id is None
    assert letter.event_type is None
    assert letter.app_id == APP


@pytest.mark.parametrize(("item", "type_name"), [(5, "int"), ("x", "str"), ([], "list")])
def test_non_object_reason_is_the_friendly_one(item, type_name):
    verdict = run([item])
    assert verdict.rejected[0].reason == f"(event): an event must be a JSON object, got {type_name}"


# ------------------------------------------------------------------------------------------------------
# Event time window
# ------------------------------------------------------------------------------------------------------


def test_event_exactly_at_the_future_skew_is_accepted(make_event):
    limits = Limits(max_future_skew=timedelta(minutes=5))
    verdict = run([make_event("login", event_time=at(RECEIVED + timedelta(minutes=5)))], limits)
    assert len(verdict.accepted) == 1
    assert verdict.rejected == []


def test_event_beyond_the_future_skew_is_rejected_on_event_time(make_event):
    limits = Limits(max_future_skew=timedelta(minutes=5))
    event = make_event("login", event_id="e-future", event_time=at(RECEIVED + timedelta(minutes=5, seconds=1)))
    verdict = run([event], limits)
    assert verdict.accepted == []
    [rejection] = verdict.rejected
    assert rejection.event_id == "e-future"
    assert [e.field for e in rejection.errors] == ["event_time"]
    assert "future" in rejection.reason
    assert verdict.dead_letters[0].reason == rejection.reason
    assert orjson.loads(verdict.dead_letters[0].raw) == event


def test_future_check_compares_instants_not_wall_clocks(make_event):
    # 10:20 at +02:00 is 08:20 UTC, before RECEIVED (08:30 UTC) even though 10:20 > 08:30 on the wall clock.
    verdict = run([make_event("login", event_time="2024-05-01T10:20:00+02:00")], Limits(max_future_skew=timedelta(0)))
    assert len(verdict.accepted) == 1
    # 03:35 at -05:00 is 08:35 UTC: in the future even though 03:35 < 08:30 on the wall clock.
    verdict = run([make_event("login", event_time="2024-05-01T03:35:00-05:00")], Limits(max_future_skew=timedelta(0)))
    assert [e.field for e in verdict.rejected[0].errors] == ["event_time"]


def test_event_older_than_max_age_is_rejected_on_event_time(make_event):
    limits = Limits(max_age=timedelta(days=30))
    old = make_event("login", event_id="e-old", event_time=at(RECEIVED - timedelta(days=30, seconds=1)))
    edge = make_event("login", event_id="e-edge", event_time=at(RECEIVED - timedelta(days=30)))
    verdict = run([old, edge], limits)
    assert [e.event_id for e in verdict.accepted] == ["e-edge"]
    [rejection] = verdict.rejected
    assert rejection.index == 0
    assert rejection.event_id == "e-old"
    assert [e.field for e in rejection.errors] == ["event_time"]
    assert "older than 30 days" in rejection.reason


def test_default_limits_reject_a_year_and_a_half_old_event(make_event):
    verdict = run([make_event("login", event_time=at(RECEIVED - timedelta(days=550)))])
    assert verdict.accepted == []
    assert "older than 400 days" in verdict.rejected[0].reason


# ------------------------------------------------------------------------------------------------------
# Duplicates within one batch
# ------------------------------------------------------------------------------------------------------


def test_repeated_event_ids_keep_the_first(make_event):
    events = [
        make_event("login", event_id="dup", platform="web"),
        make_event("login", event_id="other"),
        make_event("login", event_id="dup", platform="ios"),
        make_event("login", event_id="dup", platform="android"),
    ]
    verdict = run(events)
    assert [e.event_id for e in verdict.accepted] == ["dup", "other"]
    assert verdict.accepted[0].platform == "web"
    assert verdict.duplicates == ["dup", "dup"]
    assert verdict.rejected == []
    assert verdict.dead_letters == []


def test_a_rejected_event_does_not_make_a_later_valid_one_a_duplicate(make_event):
    events = [make_event("login", event_id="same", platform="fax"), make_event("login", event_id="same")]
    verdict = run(events)
    assert [e.event_id for e in verdict.accepted] == ["same"]
    assert verdict.duplicates == []
    assert [r.index for r in verdict.rejected] == [0]


# ------------------------------------------------------------------------------------------------------
# The request body's shape
# ------------------------------------------------------------------------------------------------------


def test_extract_events_accepts_an_object_with_events(make_event):
    events = [make_event("login")]
    assert extract_events({"events": events}, Limits()) == events


def test_extract_events_accepts_a_bare_array(make_event):
    events = [make_event("login"), make_event("enrolled")]
    assert extract_events(events, Limits()) == events


@pytest.mark.parametrize("body", [[], {"events": []}])
def test_extract_events_refuses_an_empty_batch(body):
    with pytest.raises(BatchShapeError, match="empty"):
        extract_events(body, Limits())


def test_extract_events_refuses_too_many_and_says_how_many(make_event):
    limits = Limits(max_events=3)
    assert len(extract_events([make_event("login")] * 3, limits)) == 3
    with pytest.raises(BatchShapeError) as info:
        extract_events({"events": [make_event("login")] * 4}, limits)
    message = str(info.value)
    assert "too many" in message
    assert "4" in message
    assert "at most 3" in message


@pytest.mark.parametrize("body", [None, 5, "events", {"event": []}, {"events": {}}, {"events": "[]"}, {}])
def test_extract_events_refuses_other_shapes_naming_both_accepted_ones(body):
    with pytest.raises(BatchShapeError) as info:
        extract_events(body, Limits())
    message = str(info.value)
    assert '{"events": [...]}' in message
    assert "JSON array" in message


def test_batch_shape_error_is_a_value_error():
    assert issubclass(BatchShapeError, ValueError)


def test_outcomes_are_judged_one_by_one() -> None:
    from streams.collector.validation import BatchShapeError, extract_outcomes, judge_outcomes

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    good = {"intervention_id": "i1", "user_id": "u1", "outcome": "clicked", "at": "2026-11-20T11:00:00+00:00"}
    wrong_kind = dict(good, outcome="liked")
    future = dict(good, at="2026-11-21T12:00:00+00:00")
    verdict = judge_outcomes([good, wrong_kind, future, "x"], now, "app", Limits())
    assert [o.intervention_id for o in verdict.accepted] == ["i1"]
    reasons = [r.reason for r in verdict.rejected]
    assert reasons[0].startswith("outcome: Input should be 'sent', 'delivered'")
    assert reasons[1].startswith("at 2026-11-21T12:00:00+00:00 is in the future")
    assert [r.index for r in verdict.rejected] == [1, 2, 3]
    assert len(verdict.dead_letters) == 3 and all(d.raw for d in verdict.dead_letters)
    with pytest.raises(BatchShapeError, match="at least one outcome"):
        extract_outcomes({"outcomes": []}, Limits())
    with pytest.raises(BatchShapeError, match="too many outcomes"):
        extract_outcomes({"outcomes": [good] * 3}, Limits(max_events=2))
