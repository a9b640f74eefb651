"""The transparent cold-start risk heuristic: what scores students before a model is trained on our history.

Why a hand-written rule table: before there is history to train on, the success team needs scores it can
check by reading them. Every number below is a documented rule; every point of a score can be traced to one
signal and is reported in words ("No login for 9 days").

How a score is built (PRODUCT.md §2, weights in ``schemas.signals.SIGNAL_GROUP_WEIGHTS``):

1. Each rule turns one signal into a *disengagement* sub-score ``r`` in 0..1 (0 = healthy, 1 = as bad as it
   gets). Rules are monotone: a worse signal never lowers ``r``.
2. Each rule has a weight inside its group for each horizon (``w7``, ``w30``; each group's weights sum to 1).
   The 7-day weights favour recency (days since last login, 7-day windows); the 30-day weights favour the
   30-day windows and trends.
3. ``linear_h = 100 * sum(group_weight * w_h * r)``. The baseline is an ideal student (every ``r`` = 0,
   score 0), so each rule contributes ``100 * group_weight * w_h * r`` points and the contributions add up
   exactly to the linear score.
4. Two documented floors, because a linear sum of capped terms cannot express "certainly gone":
   - unenrolled from every course (``courses_unenrolled > 0`` and ``courses_enrolled == 0``): at least 95;
   - long silence (days since last activity, else since last login, ``d >= 14``):
     at least ``min(90, 70 + (d - 14) * 20 / 14)`` (14 days -> 70, 21 -> 80 critical, 28+ -> 90).
   The points a floor adds are reported as their own factor, so contributions still sum to the score.
5. ``risk_30d = max(risk_30d, risk_7d)``: dropping off within a month includes dropping off within a week.
6. ``tier = tier_for(risk_7d)``; factors explain ``risk_7d`` (the score the tier and the policy act on).

Missing data. ``None`` (no data to compute the signal, e.g. no quiz taken, no trend before two weeks of
history) scores ``MISSING = 0.3``: neutral-to-slightly-risky, since silence about a behaviour is weak
evidence of its absence. Count windows shorter than the student's history (a student first seen 2 days ago
has only 2 days of "last 7 days") are rates over the days actually observed, and are blended towards
``MISSING`` by how much of the window was observed: ``r' = c * r + (1 - c) * MISSING``, ``c = days / window``.
So a brand-new student lands near 30 (low) whatever their first hour looked like, with a low confidence.

Rules (signal: sub-score ``r``; w7 / w30 within the group):

login 25%
  days_since_last_login       d / 14 (0 -> 0, >= 14 -> 1); None: days since last activity / 14, else MISSING  0.6 / 0.4
  login_days_7d               1 - login days per week / 4 (4+ days a week -> 0), blended            0.3 / 0
  logins_30d                  1 - logins per week / 4, blended                                       0   / 0.4
  login_trend                 -trend (falling -> up to 1; rising -> 0); no login this week -> 1      0.1 / 0.2
session 20%
  sessions_7d                 1 - sessions per week / 3 (none in 7 days -> 1), blended               0.4 / 0.1
  sessions_30d                1 - sessions per week / 3, blended                                     0   / 0.3
  avg_session_minutes_7d      1 - minutes / 15                                                       0.15 / 0.1
  minutes_on_platform_7d      1 - minutes per week / 60, blended                                     0.3 / 0
  minutes_on_platform_30d     1 - minutes per week / 60, blended                                     0   / 0.3
  session_minutes_trend       -trend; no minutes this week -> 1                                      0.15 / 0.2
progress 20%
  lessons_completed_7d        1 - lessons per week / 3, blended                                      0.5 / 0.1
  lessons_per_week_30d        1 - lessons per week / 3, blended                                      0.1 / 0.45
  lesson_completion_rate_30d  (0.8 - rate) / 0.6 (80%+ of started lessons finished -> 0, 20% -> 1)   0.15 / 0.2
  lessons_trend               -trend; no lesson this week -> 1                                       0.25 / 0.25
completion 15%
  course_progress_pct         (expected - progress) / 40 points, expected = 100 * tenure days / 120  0.5 / 0.6
  courses_unenrolled          share of courses left (unenrolled / (enrolled + unenrolled))           0.5 / 0.4
streak 10%
  current_streak_days         1 - streak / 7, blended                                                0.3 / 0.2
  streak_broken_recently      1 if broken                                                            0.3 / 0.2
  active_days_7d              1 - active days per week / 4, blended                                  0.4 / 0
  study_consistency_30d       1 - consistency / 0.5 (active half the days -> 0), blended             0   / 0.6
quiz 10%
  avg_quiz_score_pct_30d      (70 - average) / 40 (70%+ -> 0, 50% -> 0.5, 30% or less -> 1)          0.6 / 0.6
  quiz_score_trend            -2 * trend (a 25% drop -> 0.5)                                         0.4 / 0.4

Every ``r`` is clamped to 0..1. Trends are ``(last 7 d - previous 7 d) / max(previous, 1)`` as in the snapshot.

Confidence (data completeness, 0..1)::

    0.4 * min(1, days_observed / 30) + 0.3 * groups_with_data / 6 + 0.3 * min(1, ln(1 + events_total) / ln(201))

A brand-new student with one login: 0 + 0.3/6 + 0.3 * 0.13 = 0.09. A month of steady use: 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from schemas.signals import SIGNAL_GROUP_WEIGHTS, RiskAssessment, RiskFactor, SignalSnapshot, tier_for

MISSING = 0.3
MAX_FACTORS = 5
MIN_FACTOR_POINTS = 0.5  # smaller contributions are noise to a reader, not reasons
UNENROLLED_FLOOR = 95.0
SILENCE_START_DAYS = 14.0
SILENCE_FLOOR_AT_START = 70.0
SILENCE_FLOOR_SLOPE = 20.0 / 14.0  # points per extra silent day: 21 days -> 80
SILENCE_FLOOR_MAX = 90.0
EXPECTED_COURSE_DAYS = 120.0  # a course finished in ~4 months is "on track"
CONFIDENCE_FULL_EVENTS = 200


@dataclass(frozen=True, slots=True)
class _Ctx:
    """How much history the windows really hold."""

    n7: int  # days of the 7-day window the student was observed (1..7)
    n30: int  # same for the 30-day window (1..30)
    first_seen_today: bool
    tenure_days: float  # days since first seen, not capped


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _blend(r: float, observed_days: int, window: int) -> float:
    c = observed_days / window
    return c * _clamp(r) + (1.0 - c) * MISSING


def _per_week(count: float, days: int) -> float:
    return count * 7.0 / days


def _plural(n: float, word: str) -> str:
    k = int(n)
    return f"{k} {word}" if k == 1 else f"{k} {word}s"


def _window(c: _Ctx, window: int) -> str:
    """'in the last 7 days', or how much of it was really observed for a new student."""
    n = c.n7 if window == 7 else c.n30
    if n >= window:
        return f"in the last {window} days"
    return "since first seen today" if c.first_seen_today else f"in the {_plural(n, 'day')} since first seen"


def _of_days(k: int, c: _Ctx) -> str:
    if c.n7 >= 7:
        return f"{k} of the last 7 days"
    return (
        f"{k} of 1 day (first seen today)"
        if c.first_seen_today
        else f"{k} of the {_plural(c.n7, 'day')} since first seen"
    )


def _trend_risk(trend: float | None, this_week: float) -> float:
    if trend is None:
        return MISSING
    if this_week <= 0:
        return 1.0  # nothing this week is the bottom of any trend (also when last week was empty too)
    return _clamp(-trend)


def _trend_text(what: str, trend: float | None, this_week: float, unit: str) -> str:
    """'Lessons per week fell from 6 to 1' where the previous week can be recovered exactly, else a percentage."""
    if trend is None:
        return f"{what} trend unknown (under two weeks of history)"
    if this_week <= 0:
        return f"No {unit} this week or the week before" if trend >= 0 else f"No {unit} this week, down from last week"
    if trend >= 0:
        return f"{what} steady or rising week on week"
    if unit in ("lessons", "logins") and trend > -1.0:
        previous = this_week / (1.0 + trend)  # trend < 0 implies previous >= 1, so the division was by previous
        if abs(previous - round(previous)) < 0.05:
            return f"{what} per week fell from {round(previous)} to {round(this_week)}"
    return f"{what} fell {min(100, round(-trend * 100))}% week on week"


# -- rules: (snapshot, ctx) -> r in 0..1, and the words for it ---------------------------------------------


def _silent_days(s: SignalSnapshot) -> float | None:
    return s.days_since_last_activity if s.days_since_last_activity is not None else s.days_since_last_login


def _r_last_login(s: SignalSnapshot, c: _Ctx) -> float:
    d = s.days_since_last_login if s.days_since_last_login is not None else s.days_since_last_activity
    return MISSING if d is None else _clamp(d / 14.0)


def _d_last_login(s: SignalSnapshot, c: _Ctx) -> str:
    d = s.days_since_last_login
    if d is None:
        if s.days_since_last_activity is None:
            return "No login recorded yet"
        return f"No login recorded; last activity {_plural(s.days_since_last_activity, 'day')} ago"
    return "Logged in today" if d < 1 else f"No login for {_plural(d, 'day')}"


def _r_login_days(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.login_days_7d, c.n7) / 4.0, c.n7, 7)


def _d_login_days(s: SignalSnapshot, c: _Ctx) -> str:
    if s.login_days_7d <= 0:
        return f"No login {_window(c, 7)}"
    return f"Logged in on {_of_days(s.login_days_7d, c)}"


def _r_logins_30d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.logins_30d, c.n30) / 4.0, c.n30, 30)


def _d_logins_30d(s: SignalSnapshot, c: _Ctx) -> str:
    return f"{_plural(s.logins_30d, 'login')} {_window(c, 30)}"


def _r_login_trend(s: SignalSnapshot, c: _Ctx) -> float:
    return _trend_risk(s.login_trend, s.logins_7d)


def _d_login_trend(s: SignalSnapshot, c: _Ctx) -> str:
    return _trend_text("Logins", s.login_trend, s.logins_7d, "logins")


def _r_sessions_7d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.sessions_7d, c.n7) / 3.0, c.n7, 7)


def _d_sessions_7d(s: SignalSnapshot, c: _Ctx) -> str:
    return (
        f"No sessions {_window(c, 7)}" if s.sessions_7d <= 0 else f"{_plural(s.sessions_7d, 'session')} {_window(c, 7)}"
    )


def _r_sessions_30d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.sessions_30d, c.n30) / 3.0, c.n30, 30)


def _d_sessions_30d(s: SignalSnapshot, c: _Ctx) -> str:
    return f"{_plural(s.sessions_30d, 'session')} {_window(c, 30)}"


def _r_avg_session(s: SignalSnapshot, c: _Ctx) -> float:
    m = s.avg_session_minutes_7d
    return MISSING if m is None else _clamp(1.0 - m / 15.0)


def _d_avg_session(s: SignalSnapshot, c: _Ctx) -> str:
    m = s.avg_session_minutes_7d
    return "Session length unknown this week" if m is None else f"Sessions average {m:.0f} minutes"


def _r_minutes_7d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.minutes_on_platform_7d, c.n7) / 60.0, c.n7, 7)


def _d_minutes_7d(s: SignalSnapshot, c: _Ctx) -> str:
    return f"{s.minutes_on_platform_7d:.0f} minutes on the platform {_window(c, 7)}"


def _r_minutes_30d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.minutes_on_platform_30d, c.n30) / 60.0, c.n30, 30)


def _d_minutes_30d(s: SignalSnapshot, c: _Ctx) -> str:
    return f"{s.minutes_on_platform_30d:.0f} minutes on the platform {_window(c, 30)}"


def _r_session_trend(s: SignalSnapshot, c: _Ctx) -> float:
    return _trend_risk(s.session_minutes_trend, s.minutes_on_platform_7d)


def _d_session_trend(s: SignalSnapshot, c: _Ctx) -> str:
    return _trend_text(
        "Time on the platform", s.session_minutes_trend, s.minutes_on_platform_7d, "time on the platform"
    )


def _r_lessons_7d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.lessons_completed_7d, c.n7) / 3.0, c.n7, 7)


def _d_lessons_7d(s: SignalSnapshot, c: _Ctx) -> str:
    if s.lessons_completed_7d <= 0:
        return f"No lessons completed {_window(c, 7)}"
    return f"{_plural(s.lessons_completed_7d, 'lesson')} completed {_window(c, 7)}"


def _lessons_per_week_30d(s: SignalSnapshot, c: _Ctx) -> float:
    # max(): right whether the processor divided by 30 days or by the days observed
    return max(s.lessons_per_week_30d, _per_week(s.lessons_completed_30d, c.n30))


def _r_lessons_30d(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _lessons_per_week_30d(s, c) / 3.0, c.n30, 30)


def _d_lessons_30d(s: SignalSnapshot, c: _Ctx) -> str:
    return f"About {_lessons_per_week_30d(s, c):.1f} lessons a week {_window(c, 30)}"


def _r_completion_rate(s: SignalSnapshot, c: _Ctx) -> float:
    rate = s.lesson_completion_rate_30d
    return MISSING if rate is None else _clamp((0.8 - rate) / 0.6)


def _d_completion_rate(s: SignalSnapshot, c: _Ctx) -> str:
    rate = s.lesson_completion_rate_30d
    if rate is None:
        return "Lesson completion rate unknown"
    return f"Finishes {rate * 100:.0f}% of the lessons they start"


def _r_lessons_trend(s: SignalSnapshot, c: _Ctx) -> float:
    return _trend_risk(s.lessons_trend, s.lessons_completed_7d)


def _d_lessons_trend(s: SignalSnapshot, c: _Ctx) -> str:
    return _trend_text("Lessons", s.lessons_trend, s.lessons_completed_7d, "lessons")


def _expected_progress(c: _Ctx) -> float:
    return min(100.0, 100.0 * c.tenure_days / EXPECTED_COURSE_DAYS)


def _r_course_progress(s: SignalSnapshot, c: _Ctx) -> float:
    p = s.course_progress_pct
    return MISSING if p is None else _clamp((_expected_progress(c) - p) / 40.0)


def _d_course_progress(s: SignalSnapshot, c: _Ctx) -> str:
    p = s.course_progress_pct
    if p is None:
        return "No course progress recorded"
    return (
        f"Course progress {p:.0f}% after {_plural(c.tenure_days, 'day')} (about {_expected_progress(c):.0f}% expected)"
    )


def _unenrolled_from_all(s: SignalSnapshot) -> bool:
    return s.courses_unenrolled > 0 and s.courses_enrolled <= 0


def _r_unenrolled(s: SignalSnapshot, c: _Ctx) -> float:
    total = max(s.courses_enrolled, 0) + max(s.courses_unenrolled, 0)
    return MISSING if total == 0 else _clamp(s.courses_unenrolled / total)


def _d_unenrolled(s: SignalSnapshot, c: _Ctx) -> str:
    if _unenrolled_from_all(s):
        return "Unenrolled from all courses"
    if s.courses_unenrolled > 0:
        return f"Unenrolled from {s.courses_unenrolled} of {s.courses_enrolled + s.courses_unenrolled} courses"
    if s.courses_enrolled <= 0:
        return "Not enrolled in any course"
    return f"Enrolled in {_plural(s.courses_enrolled, 'course')}"


def _r_streak(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - s.current_streak_days / 7.0, c.n7, 7)


def _d_streak(s: SignalSnapshot, c: _Ctx) -> str:
    if s.current_streak_days <= 0:
        return "No current study streak"
    return f"Study streak of {_plural(s.current_streak_days, 'day')}"


def _r_streak_broken(s: SignalSnapshot, c: _Ctx) -> float:
    return 1.0 if s.streak_broken_recently else 0.0


def _d_streak_broken(s: SignalSnapshot, c: _Ctx) -> str:
    if not s.streak_broken_recently:
        return "Study streak intact"
    if s.longest_streak_days > 0:
        return f"Study streak broken recently (longest was {_plural(s.longest_streak_days, 'day')})"
    return "Study streak broken recently"


def _r_active_days(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - _per_week(s.active_days_7d, c.n7) / 4.0, c.n7, 7)


def _d_active_days(s: SignalSnapshot, c: _Ctx) -> str:
    if s.active_days_7d <= 0:
        return f"No activity {_window(c, 7)}"
    return f"Active on {_of_days(s.active_days_7d, c)}"


def _r_consistency(s: SignalSnapshot, c: _Ctx) -> float:
    return _blend(1.0 - s.study_consistency_30d / 0.5, c.n30, 30)


def _d_consistency(s: SignalSnapshot, c: _Ctx) -> str:
    return f"Active on {s.study_consistency_30d * 100:.0f}% of days {_window(c, 30)}"


def _r_quiz_avg(s: SignalSnapshot, c: _Ctx) -> float:
    q = s.avg_quiz_score_pct_30d
    return MISSING if q is None else _clamp((70.0 - q) / 40.0)


def _d_quiz_avg(s: SignalSnapshot, c: _Ctx) -> str:
    q = s.avg_quiz_score_pct_30d
    return "No quiz results in the last 30 days" if q is None else f"Quiz average {q:.0f}%"


def _r_quiz_trend(s: SignalSnapshot, c: _Ctx) -> float:
    t = s.quiz_score_trend
    return MISSING if t is None else _clamp(-2.0 * t)


def _d_quiz_trend(s: SignalSnapshot, c: _Ctx) -> str:
    t = s.quiz_score_trend
    if t is None:
        return "Quiz score trend unknown (under two weeks of quizzes)"
    return "Quiz scores steady or rising" if t >= 0 else f"Quiz scores fell {round(-t * 100)}% week on week"


def _d_silence(s: SignalSnapshot, c: _Ctx) -> str:
    d = _silent_days(s)
    return f"No activity at all for {_plural(d or 0, 'day')}"


_Risk = Callable[[SignalSnapshot, _Ctx], float]
_Describe = Callable[[SignalSnapshot, _Ctx], str]


@dataclass(frozen=True, slots=True)
class Rule:
    """One signal's rule: its sub-score, its weight inside the group per horizon, and its words."""

    signal: str
    group: str
    w7: float
    w30: float
    risk: _Risk
    describe: _Describe


RULES: tuple[Rule, ...] = (
    Rule("days_since_last_login", "login", 0.6, 0.4, _r_last_login, _d_last_login),
    Rule("login_days_7d", "login", 0.3, 0.0, _r_login_days, _d_login_days),
    Rule("logins_30d", "login", 0.0, 0.4, _r_logins_30d, _d_logins_30d),
    Rule("login_trend", "login", 0.1, 0.2, _r_login_trend, _d_login_trend),
    Rule("sessions_7d", "session", 0.4, 0.1, _r_sessions_7d, _d_sessions_7d),
    Rule("sessions_30d", "session", 0.0, 0.3, _r_sessions_30d, _d_sessions_30d),
    Rule("avg_session_minutes_7d", "session", 0.15, 0.1, _r_avg_session, _d_avg_session),
    Rule("minutes_on_platform_7d", "session", 0.3, 0.0, _r_minutes_7d, _d_minutes_7d),
    Rule("minutes_on_platform_30d", "session", 0.0, 0.3, _r_minutes_30d, _d_minutes_30d),
    Rule("session_minutes_trend", "session", 0.15, 0.2, _r_session_trend, _d_session_trend),
    Rule("lessons_completed_7d", "progress", 0.5, 0.1, _r_lessons_7d, _d_lessons_7d),
    Rule("lessons_per_week_30d", "progress", 0.1, 0.45, _r_lessons_30d, _d_lessons_30d),
    Rule("lesson_completion_rate_30d", "progress", 0.15, 0.2, _r_completion_rate, _d_completion_rate),
    Rule("lessons_trend", "progress", 0.25, 0.25, _r_lessons_trend, _d_lessons_trend),
    Rule("course_progress_pct", "completion", 0.5, 0.6, _r_course_progress, _d_course_progress),
    Rule("courses_unenrolled", "completion", 0.5, 0.4, _r_unenrolled, _d_unenrolled),
    Rule("current_streak_days", "streak", 0.3, 0.2, _r_streak, _d_streak),
    Rule("streak_broken_recently", "streak", 0.3, 0.2, _r_streak_broken, _d_streak_broken),
    Rule("active_days_7d", "streak", 0.4, 0.0, _r_active_days, _d_active_days),
    Rule("study_consistency_30d", "streak", 0.0, 0.6, _r_consistency, _d_consistency),
    Rule("avg_quiz_score_pct_30d", "quiz", 0.6, 0.6, _r_quiz_avg, _d_quiz_avg),
    Rule("quiz_score_trend", "quiz", 0.4, 0.4, _r_quiz_trend, _d_quiz_trend),
)

# Points per unit of sub-score, per rule and horizon: 100 * group weight * weight inside the group.
_POINTS: tuple[tuple[float, float], ...] = tuple(
    (100.0 * SIGNAL_GROUP_WEIGHTS[r.group] * r.w7, 100.0 * SIGNAL_GROUP_WEIGHTS[r.group] * r.w30) for r in RULES
)
_SILENCE_RULE = Rule("days_since_last_activity", "login", 0.0, 0.0, lambda s, c: 0.0, _d_silence)
_UNENROLLED_RULE = next(r for r in RULES if r.signal == "courses_unenrolled")


# Float signals; NaN or infinity in any of them is a processor bug, read as "no data" rather than crashing.
_FLOAT_SIGNALS: tuple[tuple[str, float | None], ...] = tuple(
    (name, f.default)
    for name, f in SignalSnapshot.model_fields.items()
    if f.annotation in (float, float | None, "float", "float | None")
)


def _sanitised(s: SignalSnapshot) -> SignalSnapshot:
    bad = {
        name: default
        for name, default in _FLOAT_SIGNALS
        if (v := getattr(s, name)) is not None and not math.isfinite(v)
    }
    return s.model_copy(update=bad) if bad else s


def _context(s: SignalSnapshot) -> _Ctx:
    observed = min(30, max(1, s.days_observed))
    if s.first_seen is not None:
        tenure = max(0.0, (s.as_of - s.first_seen).total_seconds() / 86_400.0)
    else:
        tenure = float(max(0, s.days_observed))
    return _Ctx(n7=min(7, observed), n30=observed, first_seen_today=s.days_observed <= 0, tenure_days=tenure)


def _silence_floor(s: SignalSnapshot) -> float:
    d = _silent_days(s)
    if d is None or d < SILENCE_START_DAYS:
        return 0.0
    return min(SILENCE_FLOOR_MAX, SILENCE_FLOOR_AT_START + (d - SILENCE_START_DAYS) * SILENCE_FLOOR_SLOPE)


def groups_with_data(s: SignalSnapshot) -> int:
    """How many of the six signal groups have any observation behind them (feeds the confidence)."""
    return sum(
        (
            s.logins_30d > 0 or s.days_since_last_login is not None,
            s.sessions_30d > 0 or s.avg_session_minutes_7d is not None or s.minutes_on_platform_30d > 0,
            s.lessons_completed_30d > 0 or s.lesson_completion_rate_30d is not None,
            s.course_progress_pct is not None or s.courses_enrolled > 0 or s.courses_unenrolled > 0,
            s.active_days_30d > 0 or s.longest_streak_days > 0,
            s.quizzes_30d > 0 or s.avg_quiz_score_pct_30d is not None,
        )
    )


def confidence(s: SignalSnapshot) -> float:
    """Data completeness: history length 40%, groups with data 30%, event volume 30% (log-scaled)."""
    history = min(1.0, max(0, s.days_observed) / 30.0)
    groups = groups_with_data(s) / 6.0
    volume = min(1.0, math.log1p(max(0, s.events_total)) / math.log1p(CONFIDENCE_FULL_EVENTS))
    return round(_clamp(0.4 * history + 0.3 * groups + 0.3 * volume), 3)


@dataclass(frozen=True, slots=True)
class _Evaluation:
    risk_7d: float
    risk_30d: float
    contributions: list[tuple[float, Rule]]  # points of risk_7d per rule (floors included), unsorted
    ctx: _Ctx
    snapshot: SignalSnapshot  # as scored (non-finite floats replaced)


def _evaluate(s: SignalSnapshot) -> _Evaluation:
    s = _sanitised(s)
    ctx = _context(s)
    linear_7d = linear_30d = 0.0
    contributions: list[tuple[float, Rule]] = []
    for rule, (p7, p30) in zip(RULES, _POINTS, strict=True):
        r = rule.risk(s, ctx)
        linear_7d += p7 * r
        linear_30d += p30 * r
        if p7 * r > 0.0:
            contributions.append((p7 * r, rule))

    silence = _silence_floor(s)
    unenrolled = UNENROLLED_FLOOR if _unenrolled_from_all(s) else 0.0
    floor = max(silence, unenrolled)
    risk_7d, risk_30d = max(linear_7d, floor), max(linear_30d, floor)
    lift = risk_7d - linear_7d
    if lift > 0.0:
        floor_rule = _UNENROLLED_RULE if unenrolled >= silence else _SILENCE_RULE
        merged = [(p + lift, rule) for p, rule in contributions if rule is floor_rule]
        if merged:
            contributions = [(p, rule) for p, rule in contributions if rule is not floor_rule] + merged
        else:
            contributions.append((lift, floor_rule))
    risk_30d = max(risk_30d, risk_7d)
    return _Evaluation(min(100.0, risk_7d), min(100.0, risk_30d), contributions, ctx, s)


def _factors(ev: _Evaluation, limit: int | None) -> list[RiskFactor]:
    ranked = sorted(ev.contributions, key=lambda pr: (-pr[0], pr[1].signal))
    if limit is not None:
        ranked = [pr for pr in ranked if pr[0] >= MIN_FACTOR_POINTS][:limit]
    return [
        RiskFactor(
            signal=rule.signal,
            group=rule.group,
            description=rule.describe(ev.snapshot, ev.ctx),
            contribution=round(p, 1),
        )
        for p, rule in ranked
    ]


class HeuristicModel:
    """The cold-start ``RiskModel``: the rule table above, no training, no I/O."""

    name: str = "heuristic"
    version: str = "heuristic-1"

    def score(self, snapshot: SignalSnapshot) -> RiskAssessment:
        ev = _evaluate(snapshot)
        risk_7d = round(ev.risk_7d, 1)
        return RiskAssessment(
            risk_7d=risk_7d,
            risk_30d=round(ev.risk_30d, 1),
            tier=tier_for(risk_7d),
            confidence=confidence(snapshot),
            factors=_factors(ev, MAX_FACTORS),
            model_version=self.version,
        )

    def score_many(self, snapshots: Sequence[SignalSnapshot]) -> list[RiskAssessment]:
        return [self.score(s) for s in snapshots]

    def contributions(self, snapshot: SignalSnapshot) -> list[RiskFactor]:
        """Every non-zero contribution to ``risk_7d``, largest first (they sum to the unrounded score)."""
        return _factors(_evaluate(snapshot), None)
