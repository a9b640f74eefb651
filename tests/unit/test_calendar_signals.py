"""Course-calendar signals: past-due and missed assessments, weights, days to the next due date."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from processors.calendar import calendar_signals
from processors.signals import apply_events, snapshot
from schemas.courses import CourseAssessment, CourseCalendar

CAL = CourseCalendar(
    course_id="c1",
    starts_on=date(2026, 10, 1),
    ends_on=date(2027, 6, 1),
    assessments=[
        CourseAssessment(assessment_id="tma-1", kind="TMA", due_on=date(2026, 10, 20), weight=10),
        CourseAssessment(assessment_id="tma-2", kind="TMA", due_on=date(2026, 11, 10), weight=30),
        CourseAssessment(assessment_id="tma-3", kind="TMA", due_on=date(2026, 12, 1), weight=60),
        CourseAssessment(assessment_id="exam", kind="Exam", due_on=None, weight=100),
    ],
)


def _event(n: int, event_type: str, day: str, **payload: object) -> dict:
    return {
        "event_id": f"e{n}",
        "user_id": "u1",
        "event_type": event_type,
        "event_time": f"{day}T10:00:00+00:00",
        "platform": "web",
        "timezone": "UTC",
        "course_id": "c1",
        "payload": payload,
    }


def test_missed_and_upcoming_assessments_from_the_calendar() -> None:
    result = apply_events(
        None,
        "u1",
        [
            _event(1, "enrolled", "2026-09-20"),
            _event(2, "quiz_submitted", "2026-10-19", quiz_id="tma-1", score=70.0, max_score=100.0),
        ],
    )
    state = result.state
    on_due_day = snapshot(state, datetime(2026, 11, 10, 20, tzinfo=UTC), {"c1": CAL})
    assert (on_due_day.assessments_due, on_due_day.assessments_missed) == (1, 0)  # the due day is still on time
    late = snapshot(state, datetime(2026, 11, 15, 12, tzinfo=UTC), {"c1": CAL})
    assert late.course_day == 45.0
    assert (late.assessments_due, late.assessments_missed) == (2, 1)
    assert late.assessment_weight_missed_pct == pytest.approx(75.0)  # 30 of 40 points due
    assert (late.days_since_missed_due, late.days_to_next_due) == (5.0, 16.0)
    caught_up = apply_events(
        state, "u1", [_event(3, "quiz_submitted", "2026-11-16", quiz_id="tma-2", score=50.0, max_score=100.0)]
    ).state
    after = snapshot(caught_up, datetime(2026, 11, 17, 12, tzinfo=UTC), {"c1": CAL})
    assert (after.assessments_missed, after.assessment_weight_missed_pct, after.days_since_missed_due) == (0, 0.0, None)
    assert snapshot(caught_up, datetime(2026, 11, 17, 12, tzinfo=UTC)).course_day is None  # no calendar known


def test_only_current_courses_count() -> None:
    state = apply_events(None, "u1", [_event(1, "enrolled", "2026-09-20"), _event(2, "unenrolled", "2026-10-25")]).state
    assert snapshot(state, datetime(2026, 11, 15, tzinfo=UTC), {"c1": CAL}).assessments_due == 0
    assert calendar_signals({}, {"c1": CAL}, date(2026, 11, 15)).course_day is None


def test_a_calendar_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match=r"ends_on \(2026-01-01\) is before starts_on \(2026-02-01\)"):
        CourseCalendar(course_id="c", starts_on=date(2026, 2, 1), ends_on=date(2026, 1, 1))


def test_dormant_when_no_course_is_current() -> None:
    from processors.calendar import is_dormant

    enrolled = apply_events(None, "u1", [_event(1, "enrolled", "2026-09-20")]).state
    assert not is_dormant(enrolled.courses, {"c1": CAL}, date(2027, 6, 20))  # ended 19 days ago
    assert is_dormant(enrolled.courses, {"c1": CAL}, date(2027, 7, 10))  # ended 39 days ago
    assert not is_dormant(enrolled.courses, {}, date(2030, 1, 1))  # no calendar: nothing says it ended
    left = apply_events(enrolled, "u1", [_event(2, "unenrolled", "2026-10-25")]).state
    assert is_dormant(left.courses, {}, date(2026, 10, 26))
    assert not is_dormant({}, {}, date(2026, 10, 26))  # no course information at all


def test_the_course_directory_keeps_the_latest_calendar_and_dead_letters_invalid_ones() -> None:
    from schemas.messages import DeadLetter
    from streams.worker.courses import CourseDirectory

    letters: list[DeadLetter] = []
    directory = CourseDirectory("127.0.0.1:1", "courses", letters.append)  # not started: no Kafka needed
    directory.apply(b"c1", CAL.model_dump_json().encode())
    assert directory.calendars()["c1"] == CAL
    directory.apply(b"c2", b'{"course_id": "c2", "starts_on": "2026-02-01"}')
    assert "c2" not in directory.calendars()
    assert letters[0].reason == "invalid course calendar: ends_on: is required"
    assert letters[0].original_topic == "courses" and '"c2"' in letters[0].raw
    directory.apply(b"c1", None)  # tombstone
    assert directory.calendars() == {}


def test_how_long_before_the_course_start_the_student_enrolled() -> None:
    now = datetime(2026, 10, 15, 12, tzinfo=UTC)
    early = apply_events(None, "u1", [_event(1, "enrolled", "2026-09-20")]).state
    assert snapshot(early, now, {"c1": CAL}).enrolled_days_before_start == 11.0
    late = apply_events(None, "u1", [_event(1, "enrolled", "2026-10-04")]).state
    assert snapshot(late, now, {"c1": CAL}).enrolled_days_before_start == -3.0  # after the start
    # Activity in the course without an enrolment event: the enrolment day is not known.
    unknown = apply_events(None, "u1", [_event(1, "course_progress", "2026-10-04", progress_pct=5.0)]).state
    assert snapshot(unknown, now, {"c1": CAL}).enrolled_days_before_start is None
    assert snapshot(early, now, {}).enrolled_days_before_start is None  # no calendar: no start to count to
