"""Unit tests for the behaviour-event contract (schemas.events) and the Kafka messages (schemas.messages)."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.errors import describe, summary
from schemas.events import (
    COURSE_REQUIRED,
    EVENT_ADAPTER,
    EVENT_MODELS,
    EVENT_TYPES,
    PAYLOAD_MODELS,
    SCHEMA_VERSION,
    SESSION_REQUIRED,
    Channel,
    ContentFormat,
    EventEnvelope,
    Platform,
    known_timezone,
    parse_event,
    parse_event_json,
    utc_naive,
)
from schemas.messages import EVENT_BATCH_ADAPTER, DeadLetter, EventBatch, FieldError, received_now

ALL_TYPES = frozenset(EVENT_TYPES)
MODEL_BY_TYPE = dict(zip(EVENT_TYPES, EVENT_MODELS, strict=True))


def refused(data: Any) -> str:
    """Validate ``data``; it must be refused. Returns the one-line client-facing summary."""
    with pytest.raises(ValidationError) as info:
        parse_event(data)
    return summary(describe(info.value, ALL_TYPES))


def refused_fields(data: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_event(data)
    return [e.field for e in describe(info.value, ALL_TYPES)]


# ------------------------------------------------------------------------------------------------------
# The catalogue of event types
# ------------------------------------------------------------------------------------------------------


def test_event_types_are_unique_and_match_models():
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES)) == len(EVENT_MODELS)
    for event_type, model in MODEL_BY_TYPE.items():
        assert model.model_fields["event_type"].annotation.__args__ == (event_type,)
        assert issubclass(model, EventEnvelope)
    assert set(PAYLOAD_MODELS) == ALL_TYPES


def test_every_behaviour_from_the_product_page_has_an_event_type():
    # PRODUCT.md §1: session start/end, login, lesson started/completed, course progress, quiz submitted,
    # content viewed, notification delivered/opened/clicked, enrolment/unenrolment.
    expected = {
        "session_started",
        "session_ended",
        "login",
        "lesson_started",
        "lesson_completed",
        "course_progress",
        "quiz_submitted",
        "content_viewed",
        "notification_delivered",
        "notification_opened",
        "notification_clicked",
        "enrolled",
        "unenrolled",
    }
    assert expected <= ALL_TYPES
    assert {f.value for f in ContentFormat} == {"video", "audio", "text", "interactive"}
    assert {c.value for c in Channel} == {"email", "push", "in_app", "sms"}
    assert {"platform", "device"} <= set(EventEnvelope.model_fields)


def test_fixture_table_covers_exactly_the_event_types(minimal_table):
    # the shared table in conftest.py: a new event type must get a minimal example
    assert set(minimal_table) == ALL_TYPES


def test_json_schema_export_has_a_discriminator_for_every_type():
    schema = EVENT_ADAPTER.json_schema()
    assert schema["discriminator"]["propertyName"] == "event_type"
    assert set(schema["discriminator"]["mapping"]) == ALL_TYPES
    # extra="forbid" must show in the exported contract so SDK authors see it
    for name, definition in schema["$defs"].items():
        if "properties" in definition:
            assert definition.get("additionalProperties") is False, name


# ------------------------------------------------------------------------------------------------------
# Every event type: minimal form validates, round-trips, and the union picks the right class
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_minimal_event_validates_to_its_own_class(make_event, event_type):
    event = parse_event(make_event(event_type))
    assert type(event) is MODEL_BY_TYPE[event_type]
    assert event.event_type == event_type
    assert isinstance(event.payload, PAYLOAD_MODELS[event_type])
    assert event.schema_version == SCHEMA_VERSION
    assert event.event_time == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    assert event.received_at is None


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip_through_json_form(make_event, event_type):
    event = parse_event(make_event(event_type))
    dumped = event.model_dump(mode="json")
    json.dumps(dumped)  # really JSON-serialisable
    again = parse_event(dumped)
    assert type(again) is type(event)
    assert again == event
    assert again.model_dump(mode="json") == dumped
    # the device's UTC offset survives the round trip (streaks need local time)
    assert again.event_time.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_round_trip_through_json_bytes_and_str(make_event, event_type):
    event = parse_event(make_event(event_type))
    raw = event.model_dump_json()
    assert parse_event_json(raw.encode("utf-8")) == event
    assert parse_event_json(raw) == event


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_minimal_example_is_minimal(make_event, event_type):
    """Each key in the minimal example is really required: dropping it is refused, naming the key."""
    data = make_event(event_type)
    for key in [k for k in data if k != "event_type"]:
        if key == "payload":
            for pkey in data["payload"]:
                broken = make_event(event_type)
                del broken["payload"][pkey]
                assert f"payload.{pkey}" in refused_fields(broken), (event_type, pkey)
            broken = make_event(event_type)
            del broken["payload"]
            assert "payload" in refused_fields(broken)
            continue
        broken = make_event(event_type)
        del broken[key]
        message = refused(broken)
        assert key in message, (event_type, key, message)


@pytest.mark.parametrize(
    ("event_type", "other_type"),
    [
        ("notification_opened", "notification_delivered"),
        ("notification_clicked", "notification_opened"),
        ("unenrolled", "enrolled"),
        ("session_started", "login"),
    ],
)
def test_discriminator_not_payload_shape_decides_the_class(make_event, event_type, other_type):
    # These pairs accept each other's payloads; only the tag may decide the class.
    data = make_event(event_type)
    data.update({k: v for k, v in make_event(other_type).items() if k not in ("event_type",)})
    data.setdefault("session_id", "sess-1")
    data.setdefault("course_id", "course-1")
    event = parse_event(data)
    assert type(event) is MODEL_BY_TYPE[event_type]


def test_full_quiz_event_keeps_every_field(make_event):
    data = make_event(
        "quiz_submitted",
        received_at="2024-05-01T08:00:01Z",
        device={"type": "phone", "os": "iOS", "os_version": "17.4", "model": "iPhone15,2"},
        app_version="3.2.1",
        session_id="sess-7",
        timezone="Europe/Berlin",
        locale="de-DE",
        platform="ios",
        payload={"attempt": 2, "duration_seconds": 95.5, "passed": True},
    )
    event = parse_event(data)
    assert event.platform is Platform.ios
    assert event.device.type == "phone"
    assert event.payload.attempt == 2
    assert event.payload.passed is True
    assert event.timezone == "Europe/Berlin"
    assert parse_event(event.model_dump(mode="json")) == event


def test_events_are_immutable(make_event):
    event = parse_event(make_event("login"))
    with pytest.raises(ValidationError):
        event.user_id = "someone-else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        event.payload.method = "sso"  # type: ignore[misc]
    # frozen models are hashable, so the same event twice is one set member (event-id idempotency helpers)
    assert len({event, parse_event(make_event("login"))}) == 1


# ------------------------------------------------------------------------------------------------------
# Unknown event types, missing tag, non-objects
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_tag", ["logout", "Login", "", 5, None])
def test_unknown_event_type_lists_the_known_ones(make_event, bad_tag):
    data = make_event("login")
    data["event_type"] = bad_tag
    with pytest.raises(ValidationError) as info:
        parse_event(data)
    errors = describe(info.value, ALL_TYPES)
    assert len(errors) == 1
    assert errors[0].field == "event_type"
    assert repr(bad_tag) in errors[0].message
    for known in EVENT_TYPES:
        assert known in errors[0].message


def test_missing_event_type_is_refused(make_event):
    data = make_event("login")
    del data["event_type"]
    errors = refused(data)
    assert errors == "event_type: event_type is missing"


# ------------------------------------------------------------------------------------------------------
# Time
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_missing_event_time_is_refused(make_event, event_type):
    data = make_event(event_type)
    del data["event_time"]
    assert refused_fields(data) == ["event_time"]


@pytest.mark.parametrize("naive", ["2024-05-01T10:00:00", "2024-05-01 10:00:00", "2024-05-01"])
def test_naive_event_time_is_refused(make_event, naive):
    fields = refused_fields(make_event("login", event_time=naive))
    assert fields == ["event_time"]


def test_naive_datetime_object_is_refused(make_event):
    assert refused_fields(make_event("login", event_time=datetime(2024, 5, 1, 10, 0))) == ["event_time"]


def test_naive_received_at_is_refused(make_event):
    assert refused_fields(make_event("login", received_at="2024-05-01T10:00:00")) == ["received_at"]


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("2024-05-01T10:00:00Z", timedelta(0)),
        ("2024-05-01T10:00:00+00:00", timedelta(0)),
        ("2024-05-01T10:00:00.123456-05:30", timedelta(hours=-5, minutes=-30)),
    ],
)
def test_aware_event_time_keeps_its_offset(make_event, text, offset):
    event = parse_event(make_event("login", event_time=text))
    assert event.event_time.utcoffset() == offset


def test_utc_naive_converts_to_utc_wall_time():
    ts = datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc_naive(ts) == datetime(2024, 5, 1, 8, 0)
    assert utc_naive(ts).tzinfo is None
    already = datetime(2024, 5, 1, 8, 0)
    assert utc_naive(already) == already


# ------------------------------------------------------------------------------------------------------
# Unknown fields
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_unknown_envelope_field_is_refused_and_named(make_event, event_type):
    message = refused(make_event(event_type, user_idd="typo"))
    assert message.startswith("user_idd:")
    assert "not a known field" in message


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_unknown_payload_field_is_refused_and_named(make_event, event_type):
    message = refused(make_event(event_type, payload={"scoer": 1.0}))
    assert "payload.scoer" in message


def test_unknown_device_field_is_refused(make_event):
    assert refused_fields(make_event("login", device={"type": "phone", "brand": "x"})) == ["device.brand"]


def test_payload_of_another_type_is_refused(make_event):
    # a lesson payload on a quiz event: lesson_id is unknown there, quiz fields are missing
    data = make_event("quiz_submitted")
    data["payload"] = {"lesson_id": "lesson-1"}
    fields = refused_fields(data)
    assert "payload.lesson_id" in fields
    assert {"payload.quiz_id", "payload.score", "payload.max_score"} <= set(fields)


# ------------------------------------------------------------------------------------------------------
# Strict types
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "overrides", "field"),
    [
        ("quiz_submitted", {"payload": {"score": "5"}}, "payload.score"),
        ("quiz_submitted", {"payload": {"max_score": "10"}}, "payload.max_score"),
        ("quiz_submitted", {"payload": {"score": True}}, "payload.score"),
        ("quiz_submitted", {"payload": {"attempt": "2"}}, "payload.attempt"),
        ("quiz_submitted", {"payload": {"attempt": 2.0}}, "payload.attempt"),
        ("quiz_submitted", {"payload": {"passed": "true"}}, "payload.passed"),
        ("quiz_submitted", {"payload": {"passed": 1}}, "payload.passed"),
        ("quiz_submitted", {"payload": {"quiz_id": 17}}, "payload.quiz_id"),
        ("course_progress", {"payload": {"lessons_completed": 1.5}}, "payload.lessons_completed"),
        ("course_progress", {"payload": {"lessons_total": "10"}}, "payload.lessons_total"),
        ("course_progress", {"payload": {"progress_pct": "40"}}, "payload.progress_pct"),
        ("session_ended", {"payload": {"duration_seconds": "600"}}, "payload.duration_seconds"),
        ("lesson_started", {"payload": {"lesson_id": 3}}, "payload.lesson_id"),
        ("login", {"event_id": 12345}, "event_id"),
        ("login", {"user_id": 42}, "user_id"),
        ("lesson_started", {"course_id": 7}, "course_id"),
        ("session_started", {"session_id": 7}, "session_id"),
        ("login", {"app_version": 3}, "app_version"),
        ("login", {"device": {"os": 17}}, "device.os"),
    ],
)
@pytest.mark.parametrize("mode", ["python", "json"])
def test_strict_types_refuse_coercion(make_event, event_type, overrides, field, mode):
    data = make_event(event_type, **overrides)
    with pytest.raises(ValidationError) as info:
        if mode == "json":
            parse_event_json(json.dumps(data).encode())
        else:
            parse_event(data)
    fields = [e.field for e in describe(info.value, ALL_TYPES)]
    assert field in fields


def test_integer_json_numbers_are_fine_for_float_fields(make_event):
    # Many JSON encoders write 10.0 as 10; refusing that would be hostile, and it is not a lossy coercion.
    event = parse_event_json(json.dumps(make_event("quiz_submitted", payload={"score": 7, "max_score": 10})))
    assert event.payload.score == 7.0
    assert isinstance(event.payload.score, float)


# ------------------------------------------------------------------------------------------------------
# Cross-field rules and bounds
# ------------------------------------------------------------------------------------------------------


def test_score_above_max_score_is_refused(make_event):
    message = refused(make_event("quiz_submitted", payload={"score": 11.0, "max_score": 10.0}))
    assert "score (11.0)" in message
    assert "max_score (10.0)" in message


def test_score_equal_to_max_score_is_fine(make_event):
    event = parse_event(make_event("quiz_submitted", payload={"score": 10.0, "max_score": 10.0}))
    assert event.payload.score == event.payload.max_score


def test_lessons_completed_above_total_is_refused(make_event):
    message = refused(make_event("course_progress", payload={"lessons_completed": 11, "lessons_total": 10}))
    assert "lessons_completed (11)" in message
    assert "lessons_total (10)" in message


def test_lessons_completed_equal_to_total_is_fine(make_event):
    event = parse_event(
        make_event("course_progress", payload={"progress_pct": 100.0, "lessons_completed": 10, "lessons_total": 10})
    )
    assert event.payload.lessons_completed == 10


@pytest.mark.parametrize(
    ("event_type", "payload", "field"),
    [
        ("quiz_submitted", {"score": -1.0}, "payload.score"),
        ("quiz_submitted", {"max_score": 0.0}, "payload.max_score"),
        ("quiz_submitted", {"attempt": 0}, "payload.attempt"),
        ("course_progress", {"progress_pct": 100.1}, "payload.progress_pct"),
        ("course_progress", {"progress_pct": -0.1}, "payload.progress_pct"),
        ("course_progress", {"lessons_completed": -1}, "payload.lessons_completed"),
        ("course_progress", {"lessons_total": 0}, "payload.lessons_total"),
        ("session_ended", {"duration_seconds": -1.0}, "payload.duration_seconds"),
        ("session_ended", {"duration_seconds": 86_400 * 7 + 1.0}, "payload.duration_seconds"),
        ("content_viewed", {"completion_pct": 101.0}, "payload.completion_pct"),
        ("content_viewed", {"content_format": "podcast"}, "payload.content_format"),
        ("notification_opened", {"channel": "pigeon"}, "payload.channel"),
        ("login", {"method": "fingerprint"}, "payload.method"),
        ("unenrolled", {"reason": "x" * 257}, "payload.reason"),
        ("session_started", {"referrer": "x" * 257}, "payload.referrer"),
    ],
)
def test_payload_bounds(make_event, event_type, payload, field):
    assert field in refused_fields(make_event(event_type, payload=payload))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"platform": "windows"}, "platform"),
        ({"schema_version": 2}, "schema_version"),
        ({"device": {"type": "toaster"}}, "device.type"),
        ({"device": {"os": "x" * 65}}, "device.os"),
        ({"app_version": "1" * 33}, "app_version"),
        ({"locale": "english!"}, "locale"),
        ({"locale": "e"}, "locale"),
        ({"locale": ""}, "locale"),
    ],
)
def test_envelope_bounds(make_event, overrides, field):
    assert refused_fields(make_event("login", **overrides)) == [field]


@pytest.mark.parametrize("locale", ["en", "en-GB", "pt_BR", "zh-Hant-TW", "fil"])
def test_valid_locales_are_accepted(make_event, locale):
    # One spelling per locale (BCP 47 hyphens), so analytics does not split en_GB from en-GB.
    assert parse_event(make_event("login", locale=locale)).locale == locale.replace("_", "-")


# ------------------------------------------------------------------------------------------------------
# Required context: course_id and session_id
# ------------------------------------------------------------------------------------------------------


def test_required_context_sets_match_the_brief():
    assert {
        "lesson_started",
        "lesson_completed",
        "quiz_submitted",
        "course_progress",
        "enrolled",
        "unenrolled",
    } == COURSE_REQUIRED
    assert {"session_started", "session_ended"} == SESSION_REQUIRED


@pytest.mark.parametrize("event_type", sorted(COURSE_REQUIRED))
def test_course_events_require_course_id(make_event, event_type):
    data = make_event(event_type)
    del data["course_id"]
    message = refused(data)
    assert f"course_id is required for {event_type} events" in message
    assert refused(make_event(event_type, course_id=None)) == message


@pytest.mark.parametrize("event_type", sorted(SESSION_REQUIRED))
def test_session_events_require_session_id(make_event, event_type):
    data = make_event(event_type)
    del data["session_id"]
    message = refused(data)
    assert f"session_id is required for {event_type} events" in message


@pytest.mark.parametrize("event_type", sorted(ALL_TYPES - COURSE_REQUIRED - SESSION_REQUIRED))
def test_other_events_need_neither_course_nor_session(make_event, event_type):
    event = parse_event(make_event(event_type))
    assert event.course_id is None
    assert event.session_id is None


# ------------------------------------------------------------------------------------------------------
# Time zones
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone", ["Europe/London", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "UTC", "Etc/GMT+5"]
)
def test_valid_iana_timezone_is_accepted(make_event, zone):
    event = parse_event(make_event("login", timezone=zone))
    assert event.timezone == zone
    assert known_timezone(zone)


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "Europe/Londn",
        "",
        "Europe London",
        "../../etc/passwd",
        "/etc/localtime",
        "Europe/London/",
        "+02:00",
        "zone.tab",
        "E" * 65,
    ],
)
def test_invalid_timezone_is_refused(make_event, zone):
    message = refused(make_event("login", timezone=zone))
    assert message.startswith("timezone:")


def test_invalid_timezone_message_is_helpful(make_event):
    message = refused(make_event("login", timezone="Europe/Londn"))
    assert "unknown IANA time zone 'Europe/Londn'" in message
    assert "Europe/London" in message


@pytest.mark.parametrize("zone", ["Europe", "America"])
def test_timezone_that_names_a_tzdata_directory_is_refused_not_crashing(make_event, zone):
    # The crash needs the tzdata package: a dev dependency (pyproject.toml), so this never skips.
    assert importlib.util.find_spec("tzdata") is not None, "tzdata is missing: install the dev dependencies"
    message = refused(make_event("login", timezone=zone))
    assert message.startswith("timezone:")


@pytest.mark.skipif(
    not Path("/usr/share/zoneinfo/localtime").exists(), reason="needs a host zoneinfo with a localtime link"
)
def test_host_local_timezone_alias_is_refused(make_event):
    refused(make_event("login", timezone="localtime"))


# ------------------------------------------------------------------------------------------------------
# Identifiers
# ------------------------------------------------------------------------------------------------------


GOOD_IDS = ["a", "0d6f3c1e-8a4b-4c1d-9f2e-3b5a7c9d1e2f", "user@example.org", "org:course.101_b-2", "x" * 128]
BAD_IDS = [
    "",
    "has space",
    " leading",
    "trailing ",
    "x" * 129,
    "_underscore_first",
    "-dash",
    "new\nline",
    "tab\there",
    "naïve",
    "semi;colon",
    "slash/ed",
]


@pytest.mark.parametrize("value", GOOD_IDS)
@pytest.mark.parametrize("field", ["event_id", "user_id", "course_id", "session_id"])
def test_good_identifiers_are_accepted(make_event, field, value):
    event = parse_event(make_event("lesson_started", **{"session_id": "s", field: value}))
    assert getattr(event, field) == value


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize("field", ["event_id", "user_id", "course_id", "session_id"])
def test_bad_envelope_identifiers_are_refused(make_event, field, value):
    assert refused_fields(make_event("lesson_started", **{field: value})) == [field]


@pytest.mark.parametrize("value", BAD_IDS)
@pytest.mark.parametrize(
    ("event_type", "field"),
    [
        ("lesson_started", "lesson_id"),
        ("quiz_submitted", "quiz_id"),
        ("content_viewed", "content_id"),
        ("notification_clicked", "notification_id"),
        ("notification_clicked", "intervention_id"),
        ("enrolled", "enrolment_id"),
    ],
)
def test_bad_payload_identifiers_are_refused(make_event, event_type, field, value):
    assert refused_fields(make_event(event_type, payload={field: value})) == [f"payload.{field}"]


# ------------------------------------------------------------------------------------------------------
# parse_event_json on raw input
# ------------------------------------------------------------------------------------------------------


def test_parse_event_json_accepts_utf8_bytes_with_non_ascii(make_event):
    data = make_event("unenrolled", payload={"reason": "trop cher — ça coûte 💸"})
    event = parse_event_json(json.dumps(data, ensure_ascii=False).encode("utf-8"))
    assert event.payload.reason == "trop cher — ça coûte 💸"


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"null", b"[]", b'"login"', b"42"])
def test_parse_event_json_refuses_non_objects_and_garbage(raw):
    with pytest.raises(ValidationError) as info:
        parse_event_json(raw)
    errors = describe(info.value, ALL_TYPES)
    assert errors
    assert all(e.field in ("(event)", "event_type") for e in errors)


def test_parse_event_json_refuses_a_batch_array(make_event):
    raw = json.dumps([make_event("login")]).encode()
    with pytest.raises(ValidationError) as info:
        parse_event_json(raw)
    assert summary(describe(info.value, ALL_TYPES)) == "(event): an event must be a JSON object, got list"


# ------------------------------------------------------------------------------------------------------
# EventBatch
# ------------------------------------------------------------------------------------------------------


def test_event_batch_round_trips_and_keeps_order(make_event):
    events = [make_event(t, event_id=f"e{i}") for i, t in enumerate(EVENT_TYPES)]
    batch = EventBatch.model_validate({"user_id": "student-42", "source": "collector", "events": events})
    assert [e.event_id for e in batch.events] == [f"e{i}" for i in range(len(EVENT_TYPES))]
    assert [type(e) for e in batch.events] == list(EVENT_MODELS)
    raw = batch.model_dump_json().encode()
    again = EVENT_BATCH_ADAPTER.validate_json(raw)
    assert again == batch
    assert EventBatch.model_validate(batch.model_dump(mode="json")) == batch


def test_event_batch_accepts_event_objects(make_event):
    event = parse_event(make_event("login"))
    batch = EventBatch(user_id="student-42", events=[event])
    assert batch.events == [event]


def test_event_batch_refuses_mixed_user_ids(make_event):
    events = [make_event("login"), make_event("login", event_id="e2", user_id="intruder-7")]
    with pytest.raises(ValidationError) as info:
        EventBatch.model_validate({"user_id": "student-42", "events": events})
    message = summary(describe(info.value, ALL_TYPES))
    assert "one user's events" in message
    assert "intruder-7" in message


def test_event_batch_refuses_events_of_another_user_only(make_event):
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"user_id": "someone", "events": [make_event("login")]})


@pytest.mark.parametrize("events", [[], None])
def test_event_batch_refuses_empty_or_missing_events(events):
    data: dict[str, Any] = {"user_id": "student-42"}
    if events is not None:
        data["events"] = events
    with pytest.raises(ValidationError) as info:
        EventBatch.model_validate(data)
    assert [e.field for e in describe(info.value, ALL_TYPES)] == ["events"]


def test_event_batch_refuses_unknown_fields_and_bad_user_id(make_event):
    with pytest.raises(ValidationError) as info:
        EventBatch.model_validate({"user_id": "student-42", "events": [make_event("login")], "extra": 1})
    assert [e.field for e in describe(info.value, ALL_TYPES)] == ["extra"]
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"user_id": "bad id", "events": [make_event("login", user_id="bad id")]})


def test_event_batch_refuses_an_invalid_event_inside(make_event):
    events = [make_event("login"), make_event("quiz_submitted", payload={"score": 99.0})]
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"user_id": "student-42", "events": events})


# ------------------------------------------------------------------------------------------------------
# DeadLetter
# ------------------------------------------------------------------------------------------------------


def _dead_letter(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "dead_letter_id": "dl-1",
        "received_at": "2024-05-01T08:00:01+00:00",
        "source": "collector",
        "reason": "validation failed",
        "raw": '{"event_type": "logout", "note": "ünïcødé"}',
    }
    data.update(overrides)
    return data


def test_dead_letter_round_trips_with_errors_from_describe(make_event):
    with pytest.raises(ValidationError) as info:
        parse_event(make_event("quiz_submitted", payload={"score": "5"}))
    errors = describe(info.value, ALL_TYPES)
    letter = DeadLetter.model_validate(
        _dead_letter(
            errors=[e.model_dump() for e in errors],
            event_id="evt-0001",
            user_id="student-42",
            event_type="quiz_submitted",
            original_topic="engage.events.v1",
            original_partition=3,
            original_offset=12345,
        )
    )
    assert letter.errors == errors
    assert DeadLetter.model_validate_json(letter.model_dump_json().encode()) == letter
    assert DeadLetter.model_validate(letter.model_dump(mode="json")) == letter
    assert letter.schema_version == SCHEMA_VERSION


def test_dead_letter_minimal_defaults():
    letter = DeadLetter.model_validate(_dead_letter())
    assert letter.errors == []
    assert letter.event_id is None and letter.original_offset is None
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"received_at": "2024-05-01T08:00:01"}, "received_at"),
        ({"source": "s" * 65}, "source"),
        ({"colour": "red"}, "colour"),
        ({"schema_version": 2}, "schema_version"),
        ({"errors": [{"field": "x"}]}, "errors.0.message"),
    ],
)
def test_dead_letter_refuses_bad_input(overrides, field):
    with pytest.raises(ValidationError) as info:
        DeadLetter.model_validate(_dead_letter(**overrides))
    assert field in [e.field for e in describe(info.value)]


@pytest.mark.parametrize("missing", ["dead_letter_id", "received_at", "source", "reason", "raw"])
def test_dead_letter_required_fields(missing):
    data = _dead_letter()
    del data[missing]
    with pytest.raises(ValidationError) as info:
        DeadLetter.model_validate(data)
    assert describe(info.value) == [FieldError(field=missing, message="is required")]


def test_received_now_is_aware_utc():
    before = datetime.now(UTC)
    now = received_now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


@pytest.mark.parametrize("value", [1700000000, 1700000000.5, True])
def test_event_time_as_a_number_is_refused(make_event, value):
    with pytest.raises(ValidationError) as info:
        parse_event(make_event("login", event_time=value))
    assert "ISO 8601" in str(info.value)
