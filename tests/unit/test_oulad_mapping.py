"""OULAD rows to product events (engage.oulad): reading the official layout and the mapping rules."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from engage.oulad.dataset import Click, Enrolment, OuladDataset, Presentation, Submission
from engage.oulad.mapping import MappingReport, content_format, student_events, study_day_events
from schemas.events import EVENT_ADAPTER

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "oulad_sample"
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def sample() -> OuladDataset:
    return OuladDataset.load(SAMPLE)


def _events(data: OuladDataset, key: str, student: int, report: MappingReport | None = None) -> list[dict]:
    enrolment = data.enrolments[(key, student)]
    clicks = [c for c in data.clicks(key) if c.student == student]
    subs = [
        s for s in data.submissions if s.student == student and data.assessments[s.assessment_id].presentation == key
    ]
    return student_events(enrolment, data.presentations[key], clicks, subs, data.assessments, data.sites, report)


def test_the_official_layout_is_read_with_missing_values(sample: OuladDataset) -> None:
    assert set(sample.presentations) == {"BBB-2013B", "BBB-2013J"}
    assert sample.presentations["BBB-2013J"].start == date(2013, 10, 1)
    assert sample.presentations["BBB-2013B"].start == date(2013, 2, 1)
    withdrawn = sample.enrolments[("BBB-2013B", 52899)]
    assert (withdrawn.registered_day, withdrawn.unregistered_day, withdrawn.withdrawn) == (-117, 86, True)
    retake = sample.enrolments[("BBB-2013J", 52899)]
    assert (retake.unregistered_day, retake.final_result) == (None, "Pass")
    assert withdrawn.user_id != retake.user_id  # a retake is another enrolment, another product user
    assert len(sample.enrolments) == 7 and len(sample.submissions) == 48


def test_unknown_presentations_and_other_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown presentations \['AAA-2013J'\]; known: \['BBB-2013B', 'BBB-2013J'\]"):
        OuladDataset.load(SAMPLE, ["AAA-2013J"])
    with pytest.raises(FileNotFoundError, match=r"courses\.csv is missing"):
        OuladDataset.load(tmp_path)


def test_every_mapped_event_is_valid_ordered_and_uniquely_identified(sample: OuladDataset) -> None:
    report = MappingReport()
    for key, student in sample.enrolments:
        events = _events(sample, key, student, report)
        for e in events:
            EVENT_ADAPTER.validate_python(e)
        times = [datetime.fromisoformat(e["event_time"]) for e in events]
        assert times == sorted(times)
    assert report.events == sum(report.by_type.values())
    assert report.by_type["enrolled"] == 7 and report.by_type["unenrolled"] == 3  # 27891, 52899 (2013B), 23632
    assert report.by_type["quiz_submitted"] + report.submissions_without_score == 48


def test_registration_and_unregistration_are_enrolment_events_on_their_days(sample: OuladDataset) -> None:
    events = _events(sample, "BBB-2013B", 52899)
    enrolled = next(e for e in events if e["event_type"] == "enrolled")
    unenrolled = next(e for e in events if e["event_type"] == "unenrolled")
    # day -117 of a presentation starting 2013-02-01 is 2012-10-07 (BST), day 86 is 2013-04-28 (BST)
    assert enrolled["event_time"] == "2012-10-07T09:00:00+01:00"
    assert unenrolled["event_time"] == "2013-04-28T12:00:00+01:00"
    assert enrolled["course_id"] == "BBB-2013B" and enrolled["user_id"] == "oulad-BBB-2013B-52899"


def test_a_day_of_clicks_is_one_session_with_a_view_per_site() -> None:
    p = Presentation("BBB", "2013J", 268)
    e = Enrolment("BBB-2013J", 7, registered_day=-10)
    clicks = [Click(7, 1, 5, 3), Click(7, 1, 5, 2), Click(7, 2, 5, 90), Click(7, 3, 5, 1)]
    events = study_day_events(e, p, 5, clicks, {1: "resource", 2: "quiz", 3: "ouelluminate"})
    assert [x["event_type"] for x in events] == ["login", "session_started", *["content_viewed"] * 3, "session_ended"]
    views = {x["payload"]["content_id"]: x["payload"] for x in events if x["event_type"] == "content_viewed"}
    assert views["site-1"]["seconds_viewed"] == 300.0  # the two rows of one site and day are summed: 5 clicks
    assert views["site-2"]["seconds_viewed"] == 3_600.0  # 90 clicks, capped at an hour
    assert [v["content_format"] for v in views.values()] == ["text", "interactive", "video"]
    assert events[-1]["payload"]["duration_seconds"] == 300 + 3_600 + 60 + 1
    start = datetime.fromisoformat(events[0]["event_time"])
    assert start == datetime(2013, 10, 6, 19, tzinfo=LONDON)
    assert len({x["session_id"] for x in events[1:]}) == 1
    assert study_day_events(e, p, 6, [], {}) == []


def test_submissions_are_scored_quizzes_and_missing_scores_are_counted_not_invented() -> None:
    p = Presentation("BBB", "2013J", 268)
    e = Enrolment("BBB-2013J", 7)
    from engage.oulad.dataset import Assessment

    assessments = {1: Assessment(1, "BBB-2013J", "TMA", 19, 10.0), 2: Assessment(2, "BBB-2013J", "CMA", 30, 0.0)}
    report = MappingReport()
    events = student_events(
        e, p, [], [Submission(1, 7, 20, False, 38.0), Submission(2, 7, 31, False, None)], assessments, {}, report
    )
    assert [x["payload"] for x in events] == [{"quiz_id": "tma-1", "score": 38.0, "max_score": 100.0, "passed": False}]
    assert report.submissions_without_score == 1


def test_mapping_twice_gives_the_same_events(sample: OuladDataset) -> None:
    assert _events(sample, "BBB-2013J", 30091) == _events(sample, "BBB-2013J", 30091)
    ids = [e["event_id"] for e in _events(sample, "BBB-2013J", 30091)]
    assert len(ids) == len(set(ids))


def test_content_formats() -> None:
    assert Counter(content_format(t) for t in ("resource", "oucontent", "url", "forumng", "quiz", "ouelluminate")) == {
        "text": 3,
        "interactive": 2,
        "video": 1,
    }


def test_each_presentation_is_a_course_calendar_whose_ids_submissions_carry(sample: OuladDataset) -> None:
    from engage.oulad.mapping import course_calendar

    p = sample.presentations["BBB-2013J"]
    calendar = course_calendar(p, sample.assessments.values())
    assert (calendar.course_id, calendar.starts_on, calendar.ends_on) == (
        "BBB-2013J",
        date(2013, 10, 1),
        date(2014, 6, 26),
    )
    dated = [a for a in calendar.assessments if a.due_on is not None]
    assert dated == sorted(dated, key=lambda a: a.due_on) and dated[0].assessment_id.startswith(("tma-", "cma-"))
    assert sum(a.weight for a in calendar.assessments) == pytest.approx(200.0)  # coursework 100 + exam 100
    ids = {a.assessment_id for a in calendar.assessments}
    submitted = {
        e["payload"]["quiz_id"] for e in _events(sample, "BBB-2013J", 30091) if e["event_type"] == "quiz_submitted"
    }
    assert submitted and submitted <= ids
