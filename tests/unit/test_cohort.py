"""Course standing: percentile ranks among the students of the same course, and the in-course training filter."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from models.training import in_course
from processors.cohort import CohortValues, CourseCohorts, mid_rank
from processors.signals import apply_events, snapshot
from schemas.courses import CourseAssessment, CourseCalendar


def test_mid_rank_gives_the_median_half_and_ties_share() -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert mid_rank(values, 3.0) == pytest.approx(0.5)
    assert mid_rank(values, 0.0) == 0.0
    assert mid_rank(values, 9.0) == 1.0
    assert mid_rank([0.0, 0.0, 0.0, 10.0], 0.0) == pytest.approx(0.375)  # three tied at the bottom share 0..0.75


def _values(minutes: float, submitted: float | None = None, score: float | None = None) -> CohortValues:
    return CohortValues(minutes, minutes * 4, submitted, score)


def test_ranks_are_within_the_course_only_and_wait_for_enough_peers() -> None:
    cohorts = CourseCohorts(min_peers=5, rebuild_share=0.0, rebuild_min=1)
    for i in range(4):
        assert cohorts.observe(f"a{i}", "A", _values(10.0 * i)).activity_7d is None  # 1..4 peers: too few
    ranks = cohorts.observe("a4", "A", _values(40.0))
    assert ranks.peers == 5
    assert ranks.activity_7d == pytest.approx(0.9)  # the most active of five: 4 below, itself half
    for i in range(5):  # another course with ten times the minutes: the same standing
        cohorts.observe(f"b{i}", "B", _values(100.0 * i))
    assert cohorts.observe("b2", "B", _values(200.0)).activity_7d == pytest.approx(0.5)
    assert cohorts.observe("a2", "A", _values(20.0)).activity_7d == pytest.approx(0.5)
    assert ranks.submitted_share is None and ranks.score is None  # values not known are not ranked


def test_a_student_moves_course_or_leaves() -> None:
    cohorts = CourseCohorts(min_peers=1, rebuild_share=0.0, rebuild_min=1)
    cohorts.observe("u", "A", _values(5.0))
    cohorts.observe("v", "A", _values(1.0))
    assert len(cohorts) == 2
    assert cohorts.observe("u", "B", _values(5.0)).peers == 1  # moved: counted in B only
    assert cohorts.observe("v", "A", _values(1.0)).peers == 1
    assert cohorts.observe("u", None, None).peers == 0  # no current course: not ranked, forgotten
    assert len(cohorts) == 1


def test_the_sorted_copy_is_rebuilt_after_enough_updates() -> None:
    cohorts = CourseCohorts(min_peers=1, rebuild_share=0.5, rebuild_min=3)
    for i in range(4):
        cohorts.observe(f"s{i}", "A", _values(float(i)))
    # s0 becomes the most active: ranked first against the copy sorted at s3 ([0, 1, 2, 3]), which is at
    # most rebuild_min updates old; the third update since then rebuilds it ([1, 2, 3, 100])
    assert cohorts.observe("s0", "A", _values(100.0)).activity_7d == 1.0
    cohorts.observe("s1", "A", _values(1.0))
    assert cohorts.observe("s0", "A", _values(100.0)).activity_7d == pytest.approx(0.875)


CAL = CourseCalendar(
    course_id="c1",
    starts_on=date(2026, 10, 1),
    ends_on=date(2027, 6, 1),
    assessments=[CourseAssessment(assessment_id="tma-1", kind="TMA", due_on=date(2026, 10, 20), weight=10)],
)


def _student(user: str, minutes: int, submits: bool) -> object:
    events = [
        {"event_id": f"{user}-0", "user_id": user, "event_type": "enrolled", "event_time": "2026-09-20T10:00:00+00:00",
         "timezone": "UTC", "course_id": "c1", "payload": {}},
        {"event_id": f"{user}-1", "user_id": user, "event_type": "content_viewed",
         "event_time": "2026-10-24T10:00:00+00:00", "timezone": "UTC", "course_id": "c1",
         "payload": {"content_id": "x", "content_type": "video", "seconds_viewed": minutes * 60}},
    ]  # fmt: skip
    if submits:
        events.append(
            {"event_id": f"{user}-2", "user_id": user, "event_type": "quiz_submitted",
             "event_time": "2026-10-19T10:00:00+00:00", "timezone": "UTC", "course_id": "c1",
             "payload": {"quiz_id": "tma-1", "score": 60.0, "max_score": 100.0}}
        )  # fmt: skip
    return apply_events(None, user, events).state


def test_snapshots_carry_the_standing_in_the_course_of_their_calendar() -> None:
    cohorts = CourseCohorts(min_peers=3, rebuild_share=0.0, rebuild_min=1)
    as_of = datetime(2026, 10, 25, 12, tzinfo=UTC)
    states = [_student(f"u{i}", minutes=10 * (i + 1), submits=i != 0) for i in range(4)]
    for state in states:
        snapshot(state, as_of, {"c1": CAL}, cohorts)  # type: ignore[arg-type]
    quiet = snapshot(states[0], as_of, {"c1": CAL}, cohorts)  # type: ignore[arg-type]
    busy = snapshot(states[3], as_of, {"c1": CAL}, cohorts)  # type: ignore[arg-type]
    assert quiet.course_peers == 4
    assert quiet.course_activity_rank_7d == pytest.approx(0.125) and busy.course_activity_rank_7d == pytest.approx(
        0.875
    )
    assert quiet.course_submitted_rank == pytest.approx(0.125)  # the only one who missed tma-1
    assert busy.course_submitted_rank == pytest.approx(0.625)  # tied with two others above the one who missed
    assert snapshot(states[3], as_of, {"c1": CAL}).course_peers == 0  # no cohorts given: no ranks
    assert (busy.course_submissions, busy.course_avg_score_pct) == (1, pytest.approx(60.0))
    assert (quiet.course_submissions, quiet.course_avg_score_pct, quiet.course_score_rank) == (0, None, None)


def test_course_scores_average_every_attempt_whatever_the_order() -> None:
    def submit(n: int, score: float) -> dict:
        return {"event_id": f"q{n}", "user_id": "u", "event_type": "quiz_submitted", "timezone": "UTC",
                "event_time": f"2026-10-{10 + n}T10:00:00+00:00", "course_id": "c1",
                "payload": {"quiz_id": "tma-1", "score": score, "max_score": 100.0}}  # fmt: skip

    enrol = {"event_id": "e", "user_id": "u", "event_type": "enrolled", "timezone": "UTC",
             "event_time": "2026-09-20T10:00:00+00:00", "course_id": "c1", "payload": {}}  # fmt: skip
    as_of = datetime(2026, 10, 25, 12, tzinfo=UTC)
    one_way = apply_events(apply_events(None, "u", [enrol, submit(1, 40.0)]).state, "u", [submit(2, 80.0)]).state
    other_way = apply_events(apply_events(None, "u", [submit(2, 80.0), enrol]).state, "u", [submit(1, 40.0)]).state
    for state in (one_way, other_way):
        snap = snapshot(state, as_of, {"c1": CAL})
        assert (snap.course_submissions, snap.course_avg_score_pct) == (1, pytest.approx(60.0))


def test_in_course_rows_are_those_of_a_running_course_with_work_due() -> None:
    assert in_course({"signals_course_day": 10.0, "signals_days_to_next_due": 5.0})
    assert not in_course({"signals_course_day": -3.0, "signals_days_to_next_due": 20.0})  # not started
    assert not in_course({"signals_course_day": 250.0, "signals_days_to_next_due": math.nan})  # nothing left due
    assert not in_course({"signals_course_day": math.nan, "signals_days_to_next_due": math.nan})  # no course
