"""Shared fixtures for the schemas unit tests: minimal valid events in their JSON form."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

ENVELOPE_MINIMAL: dict[str, Any] = {
    "event_id": "evt-0001",
    "user_id": "student-42",
    "event_time": "2024-05-01T10:00:00+02:00",
    "platform": "web",
}

# Per event type: the envelope context it needs (course/session ids) and the smallest valid payload
# (None = the payload has defaults for everything and may be left out).
MINIMAL_EXTRA: dict[str, dict[str, Any]] = {
    "login": {},
    "session_started": {"session_id": "sess-1"},
    "session_ended": {"session_id": "sess-1", "payload": {"duration_seconds": 600.0}},
    "lesson_started": {"course_id": "course-1", "payload": {"lesson_id": "lesson-1"}},
    "lesson_completed": {
        "course_id": "course-1",
        "payload": {"lesson_id": "lesson-1", "duration_seconds": 300.0},
    },
    "course_progress": {
        "course_id": "course-1",
        "payload": {"progress_pct": 40.0, "lessons_completed": 4, "lessons_total": 10},
    },
    "quiz_submitted": {
        "course_id": "course-1",
        "payload": {"quiz_id": "quiz-1", "score": 7.5, "max_score": 10.0},
    },
    "content_viewed": {"payload": {"content_id": "video-9", "content_format": "video"}},
    "notification_delivered": {"payload": {"notification_id": "n-1", "channel": "push"}},
    "notification_opened": {"payload": {"notification_id": "n-1", "channel": "email"}},
    "notification_clicked": {"payload": {"notification_id": "n-1", "channel": "in_app"}},
    "enrolled": {"course_id": "course-1"},
    "unenrolled": {"course_id": "course-1"},
}


def minimal_event(event_type: str, **overrides: Any) -> dict[str, Any]:
    """A fresh minimal valid event dict (JSON form). ``payload`` overrides are merged into the payload."""
    data: dict[str, Any] = {**copy.deepcopy(ENVELOPE_MINIMAL), "event_type": event_type}
    data.update(copy.deepcopy(MINIMAL_EXTRA[event_type]))
    payload_overrides = overrides.pop("payload", None)
    data.update(overrides)
    if payload_overrides is not None:
        data["payload"] = {**data.get("payload", {}), **payload_overrides}
    return data


@pytest.fixture
def make_event() -> Callable[..., dict[str, Any]]:
    return minimal_event


@pytest.fixture(scope="session")
def minimal_table() -> dict[str, dict[str, Any]]:
    return MINIMAL_EXTRA
