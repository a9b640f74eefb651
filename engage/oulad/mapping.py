"""OULAD rows as the product's behaviour events (pure: no I/O).

- Registration is an ``enrolled`` event (09:00 on the registration day), unregistration an ``unenrolled``
  event (12:00), each presentation a course (``course_id`` = ``AAA-2013J``).
- A day with clicks is one study session at 19:00 (London time): a ``login``, ``session_started``, one
  ``content_viewed`` per site visited (format from the site's activity type, a minute per click, capped at
  an hour), and ``session_ended`` after the viewing time (capped at four hours).
- An assessment submission with a score is a ``quiz_submitted`` (20:00 on the submission day, score out of
  100, passed at 40 as the OU marks); the few without a score are counted, not invented.

The dataset has days, not times: the fixed times keep a day's events in a plausible order and every event
id is derived from what it describes, so a replay is repeatable and re-sending collapses downstream.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from engage.oulad.dataset import Assessment, Click, Enrolment, Presentation, Submission
from schemas.courses import CourseAssessment, CourseCalendar

TIMEZONE = "Europe/London"
_ZONE = ZoneInfo(TIMEZONE)
PASS_MARK = 40.0
SECONDS_PER_CLICK = 60
MAX_VIEW_SECONDS = 3_600
MAX_SESSION_SECONDS = 4 * 3_600

# What kind of content each VLE activity type is (the product's three formats).
_VIDEO = {"ouelluminate"}
_INTERACTIVE = {"quiz", "externalquiz", "questionnaire", "forumng", "oucollaborate", "ouwiki", "dataplus",
                "repeatactivity", "htmlactivity"}  # fmt: skip


def content_format(activity_type: str) -> str:
    if activity_type in _VIDEO:
        return "video"
    if activity_type in _INTERACTIVE:
        return "interactive"
    return "text"  # resource, oucontent, subpage, url, page, homepage, glossary, folder, ...


def at(presentation: Presentation, day: int, hour: int, seconds: int = 0) -> datetime:
    """Local London time on presentation day ``day`` (negative days are before the start)."""
    local = datetime.combine(presentation.start + timedelta(days=day), time(hour), _ZONE)
    return local + timedelta(seconds=seconds)


@dataclass
class MappingReport:
    """What the mapping produced and what it could not map, for the replay's summary."""

    events: int = 0
    submissions_without_score: int = 0
    by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _event(
    enrolment: Enrolment, event_type: str, when: datetime, suffix: str, payload: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"{enrolment.user_id}:{suffix}",
        "user_id": enrolment.user_id,
        "event_type": event_type,
        "event_time": when.isoformat(),
        "platform": "web",
        "timezone": TIMEZONE,
        "course_id": enrolment.presentation,
        "payload": payload,
        **extra,
    }


def registration_events(enrolment: Enrolment, presentation: Presentation) -> list[dict[str, Any]]:
    out = []
    if enrolment.registered_day is not None:
        when = at(presentation, enrolment.registered_day, 9)
        out.append(_event(enrolment, "enrolled", when, "enrolled", {"enrolment_id": enrolment.user_id}))
    if enrolment.unregistered_day is not None:
        when = at(presentation, enrolment.unregistered_day, 12)
        payload = {"enrolment_id": enrolment.user_id, "reason": "unregistered"}
        out.append(_event(enrolment, "unenrolled", when, "unenrolled", payload))
    return out


def study_day_events(
    enrolment: Enrolment, presentation: Presentation, day: int, clicks: Iterable[Click], sites: dict[int, str]
) -> list[dict[str, Any]]:
    """One day's clickstream rows of one student as a session."""
    per_site: dict[int, int] = defaultdict(int)
    for c in clicks:
        per_site[c.site] += c.clicks
    if not per_site:
        return []
    session = f"{enrolment.user_id}:s{day}"
    start = at(presentation, day, 19)
    out = [
        _event(enrolment, "login", start, f"login:{day}", {"method": "password"}),
        _event(enrolment, "session_started", start + timedelta(seconds=1), f"start:{day}", {}, session_id=session),
    ]
    elapsed = 1
    for site, n in sorted(per_site.items()):
        seconds = min(n * SECONDS_PER_CLICK, MAX_VIEW_SECONDS)
        payload = {
            "content_id": f"site-{site}",
            "content_format": content_format(sites.get(site, "")),
            "seconds_viewed": float(seconds),
        }
        out.append(
            _event(enrolment, "content_viewed", start + timedelta(seconds=elapsed + 1), f"view:{day}:{site}",
                   payload, session_id=session)
        )  # fmt: skip
        elapsed += seconds
    duration = min(elapsed, MAX_SESSION_SECONDS)
    out.append(
        _event(enrolment, "session_ended", start + timedelta(seconds=duration + 2), f"end:{day}",
               {"duration_seconds": float(duration)}, session_id=session)
    )  # fmt: skip
    return out


def assessment_id(assessment: Assessment) -> str:
    """The id submissions carry as ``quiz_id`` and the calendar lists: 'tma-1752'."""
    return f"{assessment.kind.lower()}-{assessment.id}"


def course_calendar(presentation: Presentation, assessments: Iterable[Assessment]) -> CourseCalendar:
    """The presentation as a course the pipeline knows: dates, and each assessment with its due date and weight."""
    return CourseCalendar(
        course_id=presentation.key,
        starts_on=presentation.start,
        ends_on=presentation.start + timedelta(days=presentation.length_days),
        assessments=[
            CourseAssessment(
                assessment_id=assessment_id(a),
                kind=a.kind,
                due_on=presentation.start + timedelta(days=a.due_day) if a.due_day is not None else None,
                weight=a.weight,
            )
            for a in sorted(assessments, key=lambda a: (a.due_day is None, a.due_day or 0, a.id))
            if a.presentation == presentation.key
        ],
    )


def submission_event(
    enrolment: Enrolment, presentation: Presentation, assessment: Assessment, submission: Submission
) -> dict[str, Any] | None:
    if submission.score is None:
        return None
    payload = {
        "quiz_id": assessment_id(assessment),
        "score": float(submission.score),
        "max_score": 100.0,
        "passed": submission.score >= PASS_MARK,
    }
    when = at(presentation, submission.day, 20)
    return _event(enrolment, "quiz_submitted", when, f"submitted:{assessment.id}", payload)


def student_events(
    enrolment: Enrolment,
    presentation: Presentation,
    clicks: Iterable[Click],
    submissions: Iterable[Submission],
    assessments: dict[int, Assessment],
    sites: dict[int, str],
    report: MappingReport | None = None,
) -> list[dict[str, Any]]:
    """Every event of one enrolment, in event-time order."""
    report = report if report is not None else MappingReport()
    by_day: dict[int, list[Click]] = defaultdict(list)
    for c in clicks:
        by_day[c.day].append(c)
    events = registration_events(enrolment, presentation)
    for day in sorted(by_day):
        events += study_day_events(enrolment, presentation, day, by_day[day], sites)
    for s in submissions:
        event = submission_event(enrolment, presentation, assessments[s.assessment_id], s)
        if event is None:
            report.submissions_without_score += 1
        else:
            events.append(event)
    events.sort(key=lambda e: datetime.fromisoformat(e["event_time"]))
    for e in events:
        report.by_type[e["event_type"]] += 1
    report.events += len(events)
    return events
