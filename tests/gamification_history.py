"""A small history of five students and a rules file, whose unlocks are worked out by hand: shared by the
backfill's unit tests (pure replay, chdb round trip) and its integration test (ClickHouse 18.16 and Kafka)."""

from __future__ import annotations

from typing import Any

import orjson

from processors.gamification.rules import GameRules, parse_rules

RULES: dict[str, Any] = {
    "version": 7,
    "xp": [{"id": "lesson", "match": {"event_type": "lesson_completed"}, "xp": 60}],
    "levels": {"base": 100, "exponent": 1.5, "max_level": 10},  # level 2 at 100 XP: two lessons
    "achievements": [
        {"id": "first-lesson", "kind": "count", "name": "First steps", "description": "A first lesson",
         "match": {"event_type": "lesson_completed"}, "tiers": [1]},
        {"id": "lessons", "kind": "count", "name": "Lessons", "description": "Lessons completed",
         "match": {"event_type": "lesson_completed"}, "tiers": [2, 5]},
        {"id": "streak", "kind": "streak", "name": "Habit", "description": "Days in a row", "tiers": [3]},
        {"id": "quiz-ace", "kind": "count", "name": "Ace", "description": "A quiz at 90 % or more",
         "match": {"event_type": "quiz_submitted", "when": [{"field": "score_pct", "op": ">=", "value": 90}]},
         "tiers": [1]},
        {"id": "comeback", "kind": "comeback", "name": "Welcome back", "description": "Back after a week",
         "after_days": 7},
        {"id": "level-2", "kind": "level", "name": "Rising", "description": "Level 2", "level": 2},
    ],
}  # fmt: skip


def rules() -> GameRules:
    return parse_rules(orjson.dumps(RULES).decode())


def _event(user: str, n: int, kind: str, when: str, **extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": f"{user}-e{n}", "user_id": user, "event_type": kind}
    event.update(event_time=when, platform="web")
    if kind == "lesson_completed":
        event.update(course_id="c-1", payload={"lesson_id": f"l{n}", "duration_seconds": 300.0})
    elif kind == "quiz_submitted":
        event["course_id"] = "c-1"
    event.update(extra)
    event.setdefault("payload", {})
    return event


def quiz(score: float) -> dict[str, Any]:
    return {"quiz_id": "q1", "score": score, "max_score": 100.0}


KTM = {"timezone": "Asia/Kathmandu"}  # +05:45
NOTIFICATION = {"notification_id": "n1", "channel": "email"}

# s1 (Kathmandu): local days Nov 2, 3, 4 in a row (UTC days Nov 1, 3, 4: not); two lessons, level 2.
# s2 (no zone named: its own -05:00 wall clock): local Nov 2, 3, 4 in a row (UTC Nov 3, 3, 5); a quiz at 95 %.
# s3: a lesson, then back after 13 days (comeback); a quiz at 50 % (no ace).
# s4: only a notification: nothing. s5: one lesson stored twice (one event): first lesson only.
EVENTS: list[dict[str, Any]] = [
    _event("s1", 1, "lesson_completed", "2026-11-02T00:30:00+05:45", **KTM),
    _event("s1", 2, "login", "2026-11-03T23:30:00+05:45", **KTM),
    _event("s1", 3, "lesson_completed", "2026-11-04T12:00:00+05:45", **KTM),
    _event("s2", 1, "login", "2026-11-02T20:00:00-05:00"),
    _event("s2", 2, "quiz_submitted", "2026-11-03T08:00:00-05:00", payload=quiz(95.0)),
    _event("s2", 3, "login", "2026-11-04T20:00:00-05:00", locale="pt-BR"),
    _event("s3", 1, "lesson_completed", "2026-11-01T10:00:00+00:00", timezone="UTC"),
    _event("s3", 2, "quiz_submitted", "2026-11-01T11:00:00+00:00", timezone="UTC", payload=quiz(50.0)),
    _event("s3", 3, "login", "2026-11-15T09:00:00+00:00", timezone="UTC"),
    _event("s4", 1, "notification_delivered", "2026-11-05T09:00:00+00:00", payload=NOTIFICATION),
    _event("s5", 1, "lesson_completed", "2026-11-06T09:00:00+00:00"),
]
DUPLICATED = "s5-e1"  # stored twice (a re-delivery before ClickHouse merged it away)

EXPECTED = {
    "s1": {"first-lesson", "lessons.2", "level-2", "streak"},
    "s2": {"streak", "quiz-ace"},
    "s3": {"first-lesson", "comeback"},
    "s5": {"first-lesson"},
}
