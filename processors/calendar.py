"""Signals from the course calendar: how far into their course a student is, and what they let pass.

For each course the student is enrolled in whose calendar is known (``schemas.courses``): an assessment is
*past due* once its due date is over (the due day itself still counts as on time) and *missed* while no
``quiz_submitted`` with its id has arrived. Dates are the student's local dates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from schemas.courses import CourseCalendar

SUBMITTED = 4  # index of the submitted assessment ids in a ``UserState.courses`` entry
SCORE_BP, SCORED = 5, 6  # then the sum of those submissions' scores (basis points) and how many had a score
MAX_SUBMITTED = 200  # per course; a course has tens of assessments


@dataclass(frozen=True)
class CalendarSignals:
    course_id: str | None = None  # the student's earliest-starting current course (the one course_day counts in)
    course_day: float | None = None  # days since the start of the student's earliest-starting current course
    assessments_due: int = 0
    assessments_missed: int = 0
    assessment_weight_missed_pct: float | None = None
    days_since_missed_due: float | None = None
    days_to_next_due: float | None = None
    # Days between enrolling in that course and its start (negative: enrolled after it started). Late enrolment
    # is one of the earliest signs of dropping out, known before any behaviour is.
    enrolled_days_before_start: float | None = None


def submitted_ids(entry: list[Any]) -> list[str]:
    return entry[SUBMITTED] if len(entry) > SUBMITTED else []


def record_submission(entry: list[Any], assessment_id: str, score_bp: int | None = None) -> None:
    """Remember that the student submitted ``assessment_id`` in this course (an entry of ``UserState.courses``),
    and add its score in basis points, if it had one, to the course's totals. Every attempt counts (a sum does
    not depend on the order submissions arrive in); events are already distinct by id (``processors.state``)."""
    while len(entry) <= SCORED:
        entry.append([] if len(entry) == SUBMITTED else 0 if len(entry) > SUBMITTED else 0.0)
    ids: list[str] = entry[SUBMITTED]
    if assessment_id not in ids and len(ids) < MAX_SUBMITTED:
        ids.append(assessment_id)
    if score_bp is not None:
        entry[SCORE_BP] += score_bp
        entry[SCORED] += 1


def course_scores(enrolled: Mapping[str, list[Any]]) -> tuple[int, float | None]:
    """(assessments submitted, the average score of all scored attempts in percent) over current courses."""
    submitted = scored = total_bp = 0
    for entry in enrolled.values():
        submitted += len(submitted_ids(entry))
        if len(entry) > SCORED:
            total_bp += entry[SCORE_BP]
            scored += entry[SCORED]
    return submitted, (total_bp / scored / 100 if scored else None)


def calendar_signals(
    enrolled: Mapping[str, list[Any]], calendars: Mapping[str, CourseCalendar], today: date
) -> CalendarSignals:
    """``enrolled``: course id -> the student's ``UserState.courses`` entry, for the courses they are in."""
    starts: list[tuple[date, str]] = []
    due = missed = 0
    weight_due = weight_missed = 0.0
    last_missed: date | None = None
    next_due: date | None = None
    for course_id, entry in enrolled.items():
        calendar = calendars.get(course_id)
        if calendar is None:
            continue
        starts.append((calendar.starts_on, course_id))
        done = set(submitted_ids(entry))
        for a in calendar.assessments:
            if a.due_on is None:
                continue
            if a.due_on < today:
                due += 1
                weight_due += a.weight
                if a.assessment_id not in done:
                    missed += 1
                    weight_missed += a.weight
                    last_missed = a.due_on if last_missed is None else max(last_missed, a.due_on)
            elif next_due is None or a.due_on < next_due:
                next_due = a.due_on
    if not starts:
        return CalendarSignals()
    first_start, first_course = min(starts)
    enrolled_at = _enrolled_at(enrolled[first_course])
    return CalendarSignals(
        course_id=first_course,
        course_day=float((today - first_start).days),
        assessments_due=due,
        assessments_missed=missed,
        assessment_weight_missed_pct=100 * weight_missed / weight_due if weight_due else None,
        days_since_missed_due=float((today - last_missed).days) if last_missed else None,
        days_to_next_due=float((next_due - today).days) if next_due else None,
        enrolled_days_before_start=float((first_start - enrolled_at).days) if enrolled_at else None,
    )


def _enrolled_at(entry: list[Any]) -> date | None:
    """The day of the enrolment event, if the entry is an enrolment (status, status time, ...)."""
    from processors.state import COURSE_ENROLLED

    if entry[0] != COURSE_ENROLLED or not entry[1]:
        return None
    return datetime.fromtimestamp(entry[1], UTC).date()


DORMANT_AFTER_COURSE_END_DAYS = 30


def is_dormant(courses: Mapping[str, list[Any]], calendars: Mapping[str, CourseCalendar], today: date) -> bool:
    """No current course: unenrolled from every course, or every course ended more than 30 days ago.

    Dormant students are re-scored less often while silent (their risk no longer moves); a student with no
    course information at all is never dormant, since nothing says their learning ended.
    """
    from processors.state import COURSE_UNENROLLED

    if not courses:
        return False
    for course_id, entry in courses.items():
        if entry[0] == COURSE_UNENROLLED:
            continue
        calendar = calendars.get(course_id)
        if calendar is None or (today - calendar.ends_on).days <= DORMANT_AFTER_COURSE_END_DAYS:
            return False
    return True
