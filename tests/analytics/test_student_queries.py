"""The student page's queries (one student's week of activity, their progress per course) on data worked out by
hand, through the sinks' own row builders. Each test runs on the local ClickHouse 18.16 and on a current one."""

from __future__ import annotations

from typing import Any

from tests.analytics.conftest import Warehouse, event


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in result.records()]


def course_event(user: str, day: str, kind: str, course: str, hour: int = 10, **payload: Any) -> dict[str, Any]:
    return {**event(user, day, kind, hour), "course_id": course, "payload": payload}


def test_a_students_week_counts_each_day_once_per_event(warehouse: Warehouse) -> None:
    twice = event("ana", "2026-12-03", "login", 9)
    warehouse.events(
        event("ana", "2026-11-26"),  # 8 days before as_of: outside the week
        event("ana", "2026-11-27", "login"),  # the week's first day
        twice,
        twice,  # re-delivered: counted once
        course_event("ana", "2026-12-03", "lesson_completed", "c1", 11, lesson_id="l1", duration_seconds=60.0),
        course_event("ana", "2026-12-03", "lesson_completed", "c1", 12, lesson_id="l2", duration_seconds=60.0),
        course_event("ana", "2026-12-03", "quiz_submitted", "c1", 13, quiz_id="q1", score=8.0, max_score=10.0),
        event("ana", "2026-12-03", "notification_delivered", 14),  # an event, not an active one
        event("ana", "2026-12-01", "notification_delivered"),  # a day with events but not active
        event("ana", "2026-12-04"),  # after as_of
        event("bob", "2026-12-03"),  # another student
    )
    result = warehouse.query("student_week_activity", user_id="ana", as_of="2026-12-03")
    assert result.columns == ["day", "active", "events", "active_events", "lessons_completed", "quizzes_submitted"]
    assert rows(result) == [
        ("2026-11-27", 1, 1, 1, 0, 0),
        ("2026-12-01", 0, 1, 0, 0, 0),
        ("2026-12-03", 1, 5, 4, 2, 1),
    ]
    assert rows(warehouse.query("student_week_activity", user_id="nobody", as_of="2026-12-03")) == []


def test_a_students_courses_show_the_latest_progress_and_leave_unenrolled_ones_out(warehouse: Warehouse) -> None:
    def progress(day: str, course: str, pct: float, done: int, total: int, hour: int = 10) -> dict[str, Any]:
        return course_event(
            "ana", day, "course_progress", course, hour, progress_pct=pct, lessons_completed=done, lessons_total=total
        )

    warehouse.events(
        course_event("ana", "2026-11-01", "enrolled", "algebra", enrolment_id="e1"),
        progress("2026-11-05", "algebra", 20.0, 2, 10),
        progress("2026-11-09", "algebra", 40.0, 4, 10),
        progress("2026-11-07", "algebra", 30.0, 3, 10),  # arrives late: not the latest
        course_event("ana", "2026-11-02", "enrolled", "biology", enrolment_id="e2"),  # no progress yet
        course_event("ana", "2026-11-02", "enrolled", "chemistry", enrolment_id="e3"),
        progress("2026-11-03", "chemistry", 10.0, 1, 10),
        course_event("ana", "2026-11-04", "unenrolled", "chemistry", enrolment_id="e3"),  # left the course
        progress("2026-11-03", "drama", 50.0, 5, 10),  # progress without an enrolment event
        course_event("bob", "2026-11-02", "enrolled", "algebra", enrolment_id="e9"),
    )
    result = warehouse.query("student_course_progress", user_id="ana")
    assert result.columns == ["course_id", "progress_pct", "lessons_completed", "lessons_total", "progress_reports"]
    assert rows(result) == [("algebra", 40.0, 4, 10, 3), ("biology", 0.0, 0, 0, 0), ("drama", 50.0, 5, 10, 1)]
