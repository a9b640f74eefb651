"""The cold-start heuristic: monotone, explainable, never crashing on missing data."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models.base import RiskModel
from models.heuristic import MAX_FACTORS, MISSING, RULES, HeuristicModel, confidence
from schemas.signals import SIGNAL_GROUP_WEIGHTS, SignalSnapshot, tier_for

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MODEL = HeuristicModel()

ENGAGED: dict[str, Any] = {
    "user_id": "engaged",
    "as_of": NOW,
    "first_seen": NOW - timedelta(days=60),
    "events_total": 900,
    "logins_7d": 9,
    "logins_30d": 35,
    "login_days_7d": 6,
    "days_since_last_login": 0.3,
    "login_trend": 0.1,
    "sessions_7d": 8,
    "sessions_30d": 30,
    "avg_session_minutes_7d": 28.0,
    "session_minutes_trend": 0.0,
    "minutes_on_platform_7d": 220.0,
    "minutes_on_platform_30d": 900.0,
    "lessons_completed_7d": 6,
    "lessons_completed_30d": 24,
    "lessons_per_week_30d": 5.6,
    "lesson_completion_rate_30d": 0.9,
    "lessons_trend": 0.0,
    "course_progress_pct": 55.0,
    "courses_enrolled": 2,
    "current_streak_days": 12,
    "longest_streak_days": 20,
    "active_days_7d": 6,
    "active_days_30d": 25,
    "study_consistency_30d": 0.83,
    "quizzes_30d": 6,
    "avg_quiz_score_pct_30d": 82.0,
    "quiz_score_trend": 0.02,
    "days_since_last_activity": 0.3,
    "days_observed": 30,
}

# Was engaged for a month, then faded this week.
FADING: dict[str, Any] = {
    **ENGAGED,
    "user_id": "fading",
    "logins_7d": 1,
    "login_days_7d": 1,
    "login_trend": -0.875,
    "days_since_last_login": 5.0,
    "days_since_last_activity": 5.0,
    "sessions_7d": 1,
    "avg_session_minutes_7d": 8.0,
    "session_minutes_trend": -0.9,
    "minutes_on_platform_7d": 8.0,
    "lessons_completed_7d": 1,
    "lessons_trend": -5 / 6,
    "current_streak_days": 0,
    "streak_broken_recently": True,
    "active_days_7d": 1,
    "avg_quiz_score_pct_30d": 38.0,
    "quiz_score_trend": -0.3,
}

SILENT_UNENROLLED: dict[str, Any] = {
    "user_id": "gone",
    "as_of": NOW,
    "first_seen": NOW - timedelta(days=60),
    "events_total": 300,
    "logins_30d": 2,
    "days_since_last_login": 25.0,
    "login_trend": 0.0,
    "sessions_30d": 2,
    "minutes_on_platform_30d": 30.0,
    "lessons_completed_30d": 1,
    "lessons_per_week_30d": 0.2,
    "lessons_trend": 0.0,
    "course_progress_pct": 10.0,
    "courses_enrolled": 0,
    "courses_unenrolled": 2,
    "longest_streak_days": 5,
    "active_days_30d": 3,
    "study_consistency_30d": 0.1,
    "days_since_last_activity": 25.0,
    "days_observed": 30,
}

NEW_STUDENT_ONE_LOGIN: dict[str, Any] = {
    "user_id": "new",
    "as_of": NOW,
    "first_seen": NOW - timedelta(minutes=5),
    "last_event_time": NOW - timedelta(minutes=5),
    "events_total": 1,
    "logins_7d": 1,
    "logins_30d": 1,
    "login_days_7d": 1,
    "days_since_last_login": 0.0,
    "active_days_7d": 1,
    "active_days_30d": 1,
    "days_since_last_activity": 0.0,
    "days_observed": 0,
}


# Enrolled and doing fine on paper, but not seen for four weeks: the silence floor (90) decides the score.
LONG_SILENT: dict[str, Any] = {
    **SILENT_UNENROLLED,
    "user_id": "long-silent",
    "courses_enrolled": 1,
    "courses_unenrolled": 0,
    "course_progress_pct": 60.0,
    "avg_quiz_score_pct_30d": 85.0,
    "days_since_last_login": 28.0,
    "days_since_last_activity": 28.0,
}


def snap(base: dict[str, Any], **overrides: Any) -> SignalSnapshot:
    return SignalSnapshot(**{**base, **overrides})


def test_heuristic_is_a_risk_model() -> None:
    assert isinstance(MODEL, RiskModel)
    assert MODEL.version == "heuristic-1"
    assert MODEL.score(snap(ENGAGED)).model_version == MODEL.version


def test_rule_weights_sum_to_one_in_each_group_and_horizon() -> None:
    assert {r.group for r in RULES} == set(SIGNAL_GROUP_WEIGHTS)
    for group in SIGNAL_GROUP_WEIGHTS:
        assert sum(r.w7 for r in RULES if r.group == group) == pytest.approx(1.0), group
        assert sum(r.w30 for r in RULES if r.group == group) == pytest.approx(1.0), group
    assert len({r.signal for r in RULES}) == len(RULES)


@pytest.mark.parametrize("base", [ENGAGED, FADING], ids=["engaged", "fading"])
def test_more_days_since_login_means_more_risk(base: dict[str, Any]) -> None:
    scores = [MODEL.score(snap(base, days_since_last_login=float(d))) for d in range(0, 21)]
    r7 = [a.risk_7d for a in scores]
    r30 = [a.risk_30d for a in scores]
    assert r7 == sorted(r7)
    assert r30 == sorted(r30)
    assert r7[14] - r7[0] == pytest.approx(15.0, abs=0.2)  # login weight 25% x recency weight 0.6 in the 7-day score
    assert r7[20] == r7[14]  # saturates at 14 days


@pytest.mark.parametrize(
    ("field", "better", "worse"),
    [
        ("lessons_completed_7d", 6, 0),
        ("sessions_7d", 8, 0),
        ("avg_quiz_score_pct_30d", 80.0, 30.0),
        ("lessons_trend", 0.0, -0.8),
        ("login_trend", 0.2, -1.0),
        ("course_progress_pct", 60.0, 5.0),
        ("streak_broken_recently", False, True),
        ("study_consistency_30d", 0.8, 0.1),
        ("courses_unenrolled", 0, 1),
    ],
)
def test_worse_signal_never_lowers_risk(field: str, better: Any, worse: Any) -> None:
    good, bad = MODEL.score(snap(ENGAGED, **{field: better})), MODEL.score(snap(ENGAGED, **{field: worse}))
    assert bad.risk_7d >= good.risk_7d and bad.risk_30d >= good.risk_30d
    assert bad.risk_7d + bad.risk_30d > good.risk_7d + good.risk_30d


def test_engaged_student_is_minimal_and_silent_unenrolled_is_critical() -> None:
    engaged = MODEL.score(snap(ENGAGED))
    assert engaged.tier in ("minimal", "low") and engaged.risk_7d < 20
    gone = MODEL.score(snap(SILENT_UNENROLLED))
    assert gone.tier == "critical" and gone.risk_7d >= 95 and gone.risk_30d >= 95
    descriptions = [f.description for f in gone.factors]
    assert "Unenrolled from all courses" in descriptions
    assert "No login for 25 days" in descriptions


def test_long_silence_alone_reaches_critical_and_a_fade_is_in_between() -> None:
    long_silent = MODEL.score(snap(LONG_SILENT))
    assert long_silent.risk_7d == 90.0 and long_silent.tier == "critical"
    assert long_silent.factors[0].description == "No activity at all for 28 days"
    silent = MODEL.score(snap(SILENT_UNENROLLED, courses_enrolled=2, courses_unenrolled=0, course_progress_pct=40.0))
    assert silent.tier == "critical"
    fading = MODEL.score(snap(FADING))
    assert fading.tier in ("medium", "high")


def test_recency_weighs_more_in_the_7_day_score() -> None:
    # A weak month but a good week (coming back): the 7-day risk is the lower one.
    returning = snap(
        SILENT_UNENROLLED,
        courses_enrolled=1,
        courses_unenrolled=0,
        days_since_last_login=0.5,
        days_since_last_activity=0.5,
        logins_7d=2,
        login_days_7d=2,
        logins_30d=4,
        login_trend=1.0,
        sessions_7d=2,
        sessions_30d=4,
        minutes_on_platform_7d=60.0,
        lessons_completed_7d=2,
        lessons_completed_30d=3,
        lessons_trend=1.0,
        active_days_7d=2,
        current_streak_days=2,
    )
    a = MODEL.score(returning)
    assert a.risk_7d < a.risk_30d


@pytest.mark.parametrize(
    ("score", "tier"),
    [
        (0.0, "minimal"),
        (19.9, "minimal"),
        (20.0, "low"),
        (39.9, "low"),
        (40.0, "medium"),
        (59.9, "medium"),
        (60.0, "high"),
        (79.9, "high"),
        (80.0, "critical"),
        (100.0, "critical"),
    ],
)
def test_tier_boundaries(score: float, tier: str) -> None:
    assert tier_for(score) == tier


def test_tier_follows_the_7_day_risk() -> None:
    for base in (ENGAGED, FADING, SILENT_UNENROLLED, NEW_STUDENT_ONE_LOGIN):
        a = MODEL.score(snap(base))
        assert a.tier == tier_for(a.risk_7d)
        assert a.risk_30d >= a.risk_7d  # dropping off within a month includes within a week


def test_confidence_rises_with_data() -> None:
    new = confidence(snap(NEW_STUDENT_ONE_LOGIN))
    assert new < 0.2
    week = confidence(snap(ENGAGED, days_observed=7, events_total=80))
    month = confidence(snap(ENGAGED))
    assert new < week < month == 1.0
    by_days = [confidence(snap(ENGAGED, days_observed=d, events_total=50)) for d in range(0, 31)]
    assert by_days == sorted(by_days)
    by_events = [confidence(snap(ENGAGED, days_observed=10, events_total=n)) for n in (0, 1, 10, 100, 1000)]
    assert by_events == sorted(by_events) and by_events[0] < by_events[-1]
    fewer_groups = confidence(snap(ENGAGED, quizzes_30d=0, avg_quiz_score_pct_30d=None))
    assert fewer_groups < month
    assert MODEL.score(snap(NEW_STUDENT_ONE_LOGIN)).confidence == new


def test_brand_new_student_is_neither_safe_nor_alarming() -> None:
    a = MODEL.score(snap(NEW_STUDENT_ONE_LOGIN))
    assert a.tier in ("low", "medium") and 20 <= a.risk_7d < 45


def test_factors_sorted_bounded_and_in_words() -> None:
    a = MODEL.score(snap(FADING))
    assert 1 <= len(a.factors) <= MAX_FACTORS
    points = [f.contribution for f in a.factors]
    assert points == sorted(points, reverse=True) and all(p > 0 for p in points)
    for f in a.factors:
        assert f.group in SIGNAL_GROUP_WEIGHTS
        assert not f.description[0].islower() and " " in f.description and "_" not in f.description
    everything = {f.description for f in MODEL.contributions(snap(FADING))}
    assert "No login for 5 days" in everything
    assert "Quiz average 38%" in everything
    assert "Lessons per week fell from 6 to 1" in everything
    assert "Logins per week fell from 8 to 1" in everything


def test_engaged_student_has_no_factors_to_speak_of() -> None:
    assert MODEL.score(snap(ENGAGED)).factors == []


@pytest.mark.parametrize("base", [ENGAGED, FADING, SILENT_UNENROLLED, LONG_SILENT, NEW_STUDENT_ONE_LOGIN])
def test_contributions_explain_the_score(base: dict[str, Any]) -> None:
    a = MODEL.score(snap(base))
    every = MODEL.contributions(snap(base))
    # baseline 0 (an ideal student): all contributions add up to the score, up to rounding to 0.1 each
    assert sum(f.contribution for f in every) == pytest.approx(a.risk_7d, abs=0.05 * len(every) + 0.05)
    if a.risk_7d >= 40:
        assert sum(f.contribution for f in a.factors) >= 0.5 * a.risk_7d


def test_none_signals_do_not_crash_and_count_as_slightly_risky() -> None:
    bare = SignalSnapshot(user_id="nobody", as_of=NOW)
    a = MODEL.score(bare)
    assert 0 <= a.risk_7d <= 100 and a.confidence == 0.0
    optional = [name for name, f in SignalSnapshot.model_fields.items() if f.default is None]
    assert "avg_quiz_score_pct_30d" in optional and "days_since_last_login" in optional
    known = MODEL.score(snap(ENGAGED))
    unknown = MODEL.score(snap(ENGAGED, **dict.fromkeys(optional)))
    assert known.risk_7d < unknown.risk_7d < 50
    # unknown = MISSING (0.3) of the rule's points: quiz average 10% x 0.6, completion rate 20% x 0.15
    points = {f.signal: f.contribution for f in MODEL.contributions(snap(ENGAGED, **dict.fromkeys(optional)))}
    assert points["avg_quiz_score_pct_30d"] == pytest.approx(100 * 0.10 * 0.6 * MISSING)
    assert points["lesson_completion_rate_30d"] == pytest.approx(100 * 0.20 * 0.15 * MISSING)


def test_random_snapshots_stay_in_range() -> None:
    rng = random.Random(7)
    optional = [name for name, f in SignalSnapshot.model_fields.items() if f.default is None]
    for i in range(300):
        data = {**(ENGAGED if i % 2 else SILENT_UNENROLLED)}
        for key in optional:
            if key in ("first_seen", "last_event_time"):
                continue
            data[key] = (
                None if rng.random() < 0.3 else rng.choice([0.0, 0.5, 3.0, 40.0, -1.0, -2.5, math.nan, math.inf])
            )
        data["days_observed"] = rng.randint(0, 30)
        data["courses_enrolled"], data["courses_unenrolled"] = rng.randint(0, 3), rng.randint(0, 3)
        data["streak_broken_recently"] = rng.random() < 0.5
        data["minutes_on_platform_7d"] = rng.choice([0.0, 30.0, math.nan])
        a = MODEL.score(SignalSnapshot(**data))
        assert 0 <= a.risk_7d <= a.risk_30d <= 100
        assert len(a.factors) <= MAX_FACTORS and all(f.description for f in a.factors)


def test_score_many_equals_score_per_item() -> None:
    snapshots = [snap(b) for b in (ENGAGED, FADING, SILENT_UNENROLLED, NEW_STUDENT_ONE_LOGIN)]
    assert MODEL.score_many(snapshots) == [MODEL.score(s) for s in snapshots]
    assert MODEL.score_many([]) == []
