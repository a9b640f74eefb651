"""Unit tests for schemas.errors: validation errors phrased for the client developer who sent the event."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from schemas.errors import describe, summary
from schemas.events import EVENT_TYPES, parse_event, parse_event_json
from schemas.messages import EventBatch, FieldError

ALL_TYPES = frozenset(EVENT_TYPES)


def errors_for(data: Any, *, as_json: bool = False) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        if as_json:
            parse_event_json(data if isinstance(data, bytes | str) else json.dumps(data).encode())
        else:
            parse_event(data)
    return describe(info.value, ALL_TYPES)


def as_pairs(errors: list[FieldError]) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in errors]


# ------------------------------------------------------------------------------------------------------
# Locations: the union tag is never shown
# ------------------------------------------------------------------------------------------------------


def test_union_tag_is_stripped_from_payload_locations(make_event):
    errors = errors_for(make_event("quiz_submitted", payload={"score": "5"}))
    assert [e.field for e in errors] == ["payload.score"]


def test_pydantic_itself_prefixes_the_tag(make_event):
    # Guards the test above: if pydantic stops prefixing, the stripping code (and this test) can go.
    with pytest.raises(ValidationError) as info:
        parse_event(make_event("quiz_submitted", payload={"score": "5"}))
    assert info.value.errors()[0]["loc"] == ("quiz_submitted", "payload", "score")


BAD_INPUTS: list[tuple[str, dict[str, Any]]] = [
    ("quiz_submitted", {"payload": {"score": "5"}}),
    ("quiz_submitted", {"payload": {"score": 11.0, "max_score": 10.0}}),
    ("course_progress", {"payload": {"lessons_completed": 20}}),
    ("lesson_started", {"course_id": None}),
    ("session_ended", {"session_id": None}),
    ("login", {"event_time": "2024-05-01T10:00:00"}),
    ("login", {"timezone": "Nowhere/Land"}),
    ("login", {"platform": "windows", "user_id": "has space", "colour": "red"}),
    ("content_viewed", {"payload": {"content_format": "hologram"}}),
    ("notification_opened", {"device": {"type": "toaster"}}),
]


@pytest.mark.parametrize(("event_type", "overrides"), BAD_INPUTS)
def test_no_location_starts_with_an_event_type(make_event, event_type, overrides):
    errors = errors_for(make_event(event_type, **overrides))
    assert errors
    for error in errors:
        first = error.field.split(".")[0]
        assert first not in ALL_TYPES, error
        assert error.field  # never empty
        assert not error.message.startswith("Value error"), error


def test_event_level_rule_is_reported_on_the_event(make_event):
    errors = errors_for(make_event("lesson_started", course_id=None))
    assert as_pairs(errors) == [("(event)", "course_id is required for lesson_started events")]


def test_nested_device_location(make_event):
    errors = errors_for(make_event("login", device={"type": "toaster"}))
    assert [e.field for e in errors] == ["device.type"]
    assert "'toaster'" in errors[0].message


# ------------------------------------------------------------------------------------------------------
# The messages themselves
# ------------------------------------------------------------------------------------------------------


def test_unknown_event_type_message(make_event):
    data = make_event("login")
    data["event_type"] = "logout"
    errors = errors_for(data)
    assert len(errors) == 1
    assert errors[0].field == "event_type"
    expected = "unknown event_type 'logout'; expected one of: " + ", ".join(sorted(EVENT_TYPES))
    assert errors[0].message == expected


def test_unknown_event_type_message_in_json_mode(make_event):
    data = make_event("login")
    data["event_type"] = "page_viewed"
    errors = errors_for(data, as_json=True)
    assert errors[0].field == "event_type"
    assert "'page_viewed'" in errors[0].message
    assert all(t in errors[0].message for t in EVENT_TYPES)


def test_missing_event_type_message(make_event):
    data = make_event("login")
    del data["event_type"]
    assert as_pairs(errors_for(data)) == [("event_type", "event_type is missing")]


def test_missing_field_message(make_event):
    data = make_event("quiz_submitted")
    del data["payload"]["quiz_id"]
    del data["user_id"]
    expected = [("payload.quiz_id", "is required"), ("user_id", "is required")]
    assert sorted(as_pairs(errors_for(data))) == expected


def test_missing_payload_message(make_event):
    data = make_event("lesson_completed")
    del data["payload"]
    assert as_pairs(errors_for(data)) == [("payload", "is required")]


@pytest.mark.parametrize(
    ("where", "overrides"),
    [
        ("colour", {"colour": "red"}),
        ("payload.metod", {"payload": {"metod": "sso"}}),
        ("device.brand", {"device": {"brand": "acme"}}),
    ],
)
def test_extra_field_message_names_the_field(make_event, where, overrides):
    errors = errors_for(make_event("login", **overrides))
    assert [e.field for e in errors] == [where]
    assert "not a known field" in errors[0].message
    assert "spelling" in errors[0].message


def test_type_error_message_shows_the_input(make_event):
    errors = errors_for(make_event("quiz_submitted", payload={"score": "5"}))
    assert errors[0].message.endswith("(got '5')")
    assert "number" in errors[0].message


def test_cross_field_message_has_no_pydantic_prefix_and_names_both(make_event):
    errors = errors_for(make_event("quiz_submitted", payload={"score": 12.5, "max_score": 10.0}))
    assert as_pairs(errors) == [("payload", "score (12.5) cannot exceed max_score (10.0)")]


def test_lessons_message(make_event):
    errors = errors_for(make_event("course_progress", payload={"lessons_completed": 11, "lessons_total": 10}))
    assert as_pairs(errors) == [("payload", "lessons_completed (11) cannot exceed lessons_total (10)")]


def test_naive_time_message(make_event):
    errors = errors_for(make_event("login", event_time="2024-05-01T10:00:00"))
    assert errors[0].field == "event_time"
    assert "timezone" in errors[0].message
    assert "'2024-05-01T10:00:00'" in errors[0].message


def test_timezone_message_is_not_prefixed(make_event):
    errors = errors_for(make_event("login", timezone="Nowhere/Land"))
    assert errors[0].field == "timezone"
    assert errors[0].message.startswith("unknown IANA time zone 'Nowhere/Land'")


def test_long_inputs_are_truncated(make_event):
    long_id = "x y" * 200
    errors = errors_for(make_event("login", user_id=long_id))
    message = errors[0].message
    shown = message[message.index("(got ") + len("(got ") : -1]
    assert len(shown) == 80
    assert shown.endswith("...")
    assert len(message) < 250


def test_short_inputs_are_not_truncated(make_event):
    errors = errors_for(make_event("login", platform="x" * 60))
    assert f"(got '{'x' * 60}')" in errors[0].message


def test_all_problems_are_reported_not_just_the_first(make_event):
    errors = errors_for(make_event("login", platform="windows", user_id="has space", colour="red"))
    assert sorted(e.field for e in errors) == ["colour", "platform", "user_id"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"[1, 2]", "(event): an event must be a JSON object, got list"),
        (b'"login"', "(event): an event must be a JSON object, got str"),
        (b"42", "(event): an event must be a JSON object, got int"),
    ],
)
def test_non_object_json_message(raw, expected):
    assert summary(errors_for(raw, as_json=True)) == expected


def test_invalid_json_message():
    errors = errors_for(b'{"event_type": "login",', as_json=True)
    assert errors[0].field == "(event)"
    assert "Invalid JSON" in errors[0].message


def test_non_object_python_input_is_reported_on_the_event():
    errors = errors_for([1, 2])
    assert [e.field for e in errors] == ["(event)"]


def test_describe_works_for_any_model():
    class Small(BaseModel):
        n: int

    with pytest.raises(ValidationError) as info:
        Small.model_validate({"n": "many", "m": 1})
    assert as_pairs(describe(info.value)) == [
        ("n", "Input should be a valid integer, unable to parse string as an integer (got 'many')"),
    ]


# ------------------------------------------------------------------------------------------------------
# summary()
# ------------------------------------------------------------------------------------------------------


def test_summary_joins_field_and_message():
    errors = [
        FieldError(field="payload.score", message="too big"),
        FieldError(field="platform", message="no"),
    ]
    assert summary(errors) == "payload.score: too big; platform: no"


def test_summary_of_nothing_is_empty():
    assert summary([]) == ""


def test_summary_of_a_real_error_is_one_line(make_event):
    text = summary(errors_for(make_event("quiz_submitted", platform="windows", payload={"score": "5"})))
    assert "\n" not in text
    assert text.count("; ") == 1
    assert "payload.score: " in text and "platform: " in text


# ------------------------------------------------------------------------------------------------------
# Inside an EventBatch
# ------------------------------------------------------------------------------------------------------


def batch_errors(events: list[dict[str, Any]]) -> list[FieldError]:
    with pytest.raises(ValidationError) as info:
        EventBatch.model_validate({"user_id": "student-42", "events": events})
    return describe(info.value, ALL_TYPES)


def test_batch_error_names_the_event_index(make_event):
    errors = batch_errors([make_event("login"), make_event("quiz_submitted", payload={"score": "5"})])
    assert errors[0].field.startswith("events.1.")
    assert errors[0].field.endswith("payload.score")


def test_batch_error_location_has_no_union_tag(make_event):
    errors = batch_errors([make_event("login"), make_event("quiz_submitted", payload={"score": "5"})])
    assert [e.field for e in errors] == ["events.1.payload.score"]


def test_batch_unknown_event_type_keeps_the_event_index(make_event):
    bad = make_event("login", event_id="e2")
    bad["event_type"] = "logout"
    errors = batch_errors([make_event("login"), bad])
    assert [e.field for e in errors] == ["events.1.event_type"]
