"""Behaviour events: one envelope, a typed payload per event type (a discriminated union on ``event_type``).

This module is the contract between client apps and the engine. Client SDK authors get it as JSON Schema
(``engage schemas export``); the collector validates every event against it on its own; the Kafka topic
carries it; the ClickHouse ``behavior_events`` columns are derived from it (``schemas.columns``).

Rules a client developer should know:
- ``event_id`` is the idempotency key: send the same event twice and it is counted once.
- ``event_time`` is when it happened on the device, with its UTC offset; ``timezone`` (IANA name) is the
  student's zone, used for daily streaks. Late and out-of-order events are fine: the engine works in event time.
- Unknown fields are refused (a typo in a field name would otherwise be silently lost).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, cast, get_args
from zoneinfo import available_timezones

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    field_validator,
    model_validator,
)

SCHEMA_VERSION: Final = 1


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    # Only real IANA names: not host aliases ("localtime" follows the server), nor tzdata's variant trees.
    return frozenset(
        z
        for z in available_timezones()
        if not z.startswith(("posix/", "right/")) and z not in {"localtime", "posixrules", "Factory"}
    )


def known_timezone(name: str) -> bool:
    return name in _iana_zones()


_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]*$"
Identifier = Annotated[StrictStr, Field(min_length=1, max_length=128, pattern=_ID_PATTERN)]
Seconds = Annotated[StrictFloat, Field(ge=0, le=86_400 * 7)]
Percent = Annotated[StrictFloat, Field(ge=0, le=100)]
# Counts fit the Int64 columns they land in (JSON carries integers up to 2**64 - 1; ClickHouse would wrap them).
Count = Annotated[StrictInt, Field(le=2**63 - 1)]


class Platform(StrEnum):
    web = "web"
    ios = "ios"
    android = "android"


class ContentFormat(StrEnum):
    video = "video"
    audio = "audio"
    text = "text"
    interactive = "interactive"


class Channel(StrEnum):
    email = "email"
    push = "push"
    in_app = "in_app"
    sms = "sms"


class DeviceType(StrEnum):
    desktop = "desktop"
    phone = "phone"
    tablet = "tablet"
    other = "other"


class _Strict(BaseModel):
    # No NaN or infinity: JSON cannot carry them, so an event holding one would not survive its own encoding.
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False, allow_inf_nan=False)


class Device(_Strict):
    """What the event came from; free text is bounded so a client bug cannot bloat every row."""

    type: DeviceType = DeviceType.other
    os: Annotated[StrictStr, Field(max_length=64)] = ""
    os_version: Annotated[StrictStr, Field(max_length=64)] = ""
    model: Annotated[StrictStr, Field(max_length=128)] = ""


# --------------------------------------------------------------------------------------------------------
# Payloads, one per event type. Field names are unique across payloads unless they mean the same thing
# with the same type (they become one ClickHouse column each; a test enforces this).
# --------------------------------------------------------------------------------------------------------


class LoginPayload(_Strict):
    method: Literal["password", "sso", "magic_link", "token", "social", "other"] = "other"


class SessionStartedPayload(_Strict):
    referrer: Annotated[StrictStr, Field(max_length=256)] = ""


class SessionEndedPayload(_Strict):
    duration_seconds: Seconds


class LessonStartedPayload(_Strict):
    lesson_id: Identifier


class LessonCompletedPayload(_Strict):
    lesson_id: Identifier
    duration_seconds: Seconds


class CourseProgressPayload(_Strict):
    progress_pct: Percent
    lessons_completed: Annotated[Count, Field(ge=0)]
    lessons_total: Annotated[Count, Field(gt=0)]

    @model_validator(mode="after")
    def _completed_within_total(self) -> CourseProgressPayload:
        if self.lessons_completed > self.lessons_total:
            raise ValueError(
                f"lessons_completed ({self.lessons_completed}) cannot exceed lessons_total ({self.lessons_total})"
            )
        return self


class QuizSubmittedPayload(_Strict):
    quiz_id: Identifier
    score: Annotated[StrictFloat, Field(ge=0)]
    max_score: Annotated[StrictFloat, Field(gt=0)]
    attempt: Annotated[Count, Field(ge=1)] = 1
    duration_seconds: Seconds = 0.0
    passed: StrictBool | None = None

    @model_validator(mode="after")
    def _score_within_max(self) -> QuizSubmittedPayload:
        if self.score > self.max_score:
            raise ValueError(f"score ({self.score}) cannot exceed max_score ({self.max_score})")
        return self


class ContentViewedPayload(_Strict):
    content_id: Identifier
    content_format: ContentFormat
    seconds_viewed: Seconds = 0.0
    completion_pct: Percent = 0.0


class NotificationPayload(_Strict):
    notification_id: Identifier
    channel: Channel
    intervention_id: Identifier | None = None
    template_id: Identifier | None = None


class EnrolledPayload(_Strict):
    enrolment_id: Identifier | None = None


class UnenrolledPayload(_Strict):
    enrolment_id: Identifier | None = None
    reason: Annotated[StrictStr, Field(max_length=256)] = ""


# --------------------------------------------------------------------------------------------------------
# The envelope
# --------------------------------------------------------------------------------------------------------

COURSE_REQUIRED = frozenset(
    {"lesson_started", "lesson_completed", "course_progress", "quiz_submitted", "enrolled", "unenrolled"}
)
SESSION_REQUIRED = frozenset({"session_started", "session_ended"})


class EventEnvelope(_Strict):
    """Fields every behaviour event carries. ``received_at`` is set by the engine, never trusted from clients."""

    event_id: Identifier = Field(description="Client-generated unique id (UUID recommended); the idempotency key")
    user_id: Identifier = Field(description="The platform's stable student id; the Kafka key")
    event_time: AwareDatetime = Field(description="When it happened on the device, ISO 8601 with UTC offset")
    received_at: AwareDatetime | None = Field(None, description="Set by the collector or producer on arrival")
    schema_version: Literal[1] = SCHEMA_VERSION
    platform: Platform
    device: Device = Field(default_factory=Device)
    app_version: Annotated[StrictStr, Field(max_length=32)] = ""
    session_id: Identifier | None = None
    course_id: Identifier | None = None
    timezone: Annotated[StrictStr, Field(max_length=64)] | None = Field(
        None, description="The student's IANA time zone, e.g. Europe/London; streak days are counted in it"
    )
    locale: Annotated[StrictStr, Field(max_length=35, pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$")] | None = None

    @field_validator("event_time", "received_at", mode="before")
    @classmethod
    def _iso_text_only(cls, value: Any) -> Any:
        # pydantic would also take a bare number as Unix seconds, or a number in a string; a client sending that
        # has a bug (and the device's UTC offset would be lost).
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return value
        raise ValueError("must be an ISO 8601 string with a UTC offset, e.g. 2026-03-01T09:30:00+01:00")

    @field_validator("locale")
    @classmethod
    def _bcp47_locale(cls, value: str | None) -> str | None:
        # en_GB and en-GB are one locale: keep one spelling so analytics does not split it.
        return value.replace("_", "-") if value is not None else None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not known_timezone(value):
            raise ValueError(f"unknown IANA time zone {value!r} (use a name like 'Europe/London')")
        return value

    @model_validator(mode="after")
    def _required_context(self) -> EventEnvelope:
        event_type = getattr(self, "event_type", None)
        if event_type in COURSE_REQUIRED and self.course_id is None:
            raise ValueError(f"course_id is required for {event_type} events")
        if event_type in SESSION_REQUIRED and self.session_id is None:
            raise ValueError(f"session_id is required for {event_type} events")
        return self


class Login(EventEnvelope):
    event_type: Literal["login"]
    payload: LoginPayload = Field(default_factory=LoginPayload)


class SessionStarted(EventEnvelope):
    event_type: Literal["session_started"]
    payload: SessionStartedPayload = Field(default_factory=SessionStartedPayload)


class SessionEnded(EventEnvelope):
    event_type: Literal["session_ended"]
    payload: SessionEndedPayload


class LessonStarted(EventEnvelope):
    event_type: Literal["lesson_started"]
    payload: LessonStartedPayload


class LessonCompleted(EventEnvelope):
    event_type: Literal["lesson_completed"]
    payload: LessonCompletedPayload


class CourseProgress(EventEnvelope):
    event_type: Literal["course_progress"]
    payload: CourseProgressPayload


class QuizSubmitted(EventEnvelope):
    event_type: Literal["quiz_submitted"]
    payload: QuizSubmittedPayload


class ContentViewed(EventEnvelope):
    event_type: Literal["content_viewed"]
    payload: ContentViewedPayload


class NotificationDelivered(EventEnvelope):
    event_type: Literal["notification_delivered"]
    payload: NotificationPayload


class NotificationOpened(EventEnvelope):
    event_type: Literal["notification_opened"]
    payload: NotificationPayload


class NotificationClicked(EventEnvelope):
    event_type: Literal["notification_clicked"]
    payload: NotificationPayload


class Enrolled(EventEnvelope):
    event_type: Literal["enrolled"]
    payload: EnrolledPayload = Field(default_factory=EnrolledPayload)


class Unenrolled(EventEnvelope):
    event_type: Literal["unenrolled"]
    payload: UnenrolledPayload = Field(default_factory=UnenrolledPayload)


EVENT_MODELS: tuple[type[EventEnvelope], ...] = (
    Login,
    SessionStarted,
    SessionEnded,
    LessonStarted,
    LessonCompleted,
    CourseProgress,
    QuizSubmitted,
    ContentViewed,
    NotificationDelivered,
    NotificationOpened,
    NotificationClicked,
    Enrolled,
    Unenrolled,
)

BehaviorEvent = Annotated[
    Login
    | SessionStarted
    | SessionEnded
    | LessonStarted
    | LessonCompleted
    | CourseProgress
    | QuizSubmitted
    | ContentViewed
    | NotificationDelivered
    | NotificationOpened
    | NotificationClicked
    | Enrolled
    | Unenrolled,
    Field(discriminator="event_type"),
]

EVENT_TYPES: tuple[str, ...] = tuple(get_args(m.model_fields["event_type"].annotation)[0] for m in EVENT_MODELS)
PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    t: cast(type[BaseModel], m.model_fields["payload"].annotation)
    for t, m in zip(EVENT_TYPES, EVENT_MODELS, strict=True)
}

EVENT_ADAPTER: TypeAdapter[BehaviorEvent] = TypeAdapter(BehaviorEvent)


def parse_event(data: Any) -> BehaviorEvent:
    """Validate one decoded JSON object as a behaviour event (raises ``pydantic.ValidationError``)."""
    return EVENT_ADAPTER.validate_python(data)


def parse_event_json(raw: bytes | str) -> BehaviorEvent:
    return EVENT_ADAPTER.validate_json(raw)


def utc_naive(ts: datetime) -> datetime:
    """UTC wall time without tzinfo, the form ClickHouse DateTime columns take."""
    offset = ts.utcoffset()
    return (ts - offset).replace(tzinfo=None) if offset is not None else ts
