"""Per-user engagement signals: the snapshot the processors keep current and the scorer reads.

The six groups and their cold-start weights come from PRODUCT.md §2: login behaviour 25%, session
engagement 20%, progress velocity 20%, completion 15%, streak and consistency 10%, quiz performance 10%.
Trends compare the last 7 days with the 7 days before (``None`` where there is no data to compare).
All windows are in event time, counted in the student's own days.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SIGNAL_GROUP_WEIGHTS: dict[str, float] = {
    "login": 0.25,
    "session": 0.20,
    "progress": 0.20,
    "completion": 0.15,
    "streak": 0.10,
    "quiz": 0.10,
}


class SignalSnapshot(BaseModel):
    """Everything the engine knows about one student's engagement at ``as_of`` (event time)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    user_id: str
    as_of: AwareDatetime
    timezone: str = "UTC"
    first_seen: AwareDatetime | None = None
    last_event_time: AwareDatetime | None = None
    events_total: int = 0

    # login behaviour (25%)
    logins_7d: int = 0
    logins_30d: int = 0
    login_days_7d: int = 0
    days_since_last_login: float | None = None
    login_trend: float | None = Field(None, description="(last 7 d - previous 7 d) / max(previous, 1)")

    # session engagement (20%)
    sessions_7d: int = 0
    sessions_30d: int = 0
    avg_session_minutes_7d: float | None = None
    session_minutes_trend: float | None = None
    minutes_on_platform_7d: float = 0.0
    minutes_on_platform_30d: float = 0.0

    # progress velocity (20%)
    lessons_completed_7d: int = 0
    lessons_completed_30d: int = 0
    lessons_per_week_30d: float = 0.0
    lesson_completion_rate_30d: float | None = Field(None, description="completed / started, 0..1")
    lessons_trend: float | None = None

    # completion (15%)
    course_progress_pct: float | None = Field(None, description="mean latest progress over enrolled courses")
    courses_enrolled: int = 0
    courses_unenrolled: int = 0

    # streak and consistency (10%)
    current_streak_days: int = 0
    longest_streak_days: int = 0
    streak_freezes_held: int = 0
    streak_freezes_used: int = Field(0, description="missed days of the current run a freeze covered, so far")
    streak_broken_recently: bool = False
    active_days_7d: int = 0
    active_days_30d: int = 0
    study_consistency_30d: float = Field(0.0, description="active days / days observed, over the last 30 days")

    # quiz performance (10%)
    quizzes_30d: int = 0
    avg_quiz_score_pct_30d: float | None = None
    quiz_score_trend: float | None = None

    # course calendar (schemas.courses; None where no calendar of the student's courses is known)
    course_day: float | None = Field(None, description="days since the start of the earliest-starting current course")
    assessments_due: int = Field(0, description="assessments of current courses whose due date is over")
    assessments_missed: int = Field(0, description="of those, not submitted")
    assessment_weight_missed_pct: float | None = Field(None, description="weight missed / weight due, percent")
    days_since_missed_due: float | None = None
    days_to_next_due: float | None = None
    enrolled_days_before_start: float | None = Field(
        None, description="days from enrolling in that course to its start; negative: enrolled after the start"
    )

    course_submissions: int = Field(0, description="assessments submitted in current courses, all time")
    course_avg_score_pct: float | None = Field(None, description="their average score, percent, all time")

    # Standing in the course (processors.cohort): percentile ranks among the students of the same course,
    # 0 = least, 0.5 = the median student, 1 = most; None until enough peers were scored.
    course_peers: int = Field(0, description="students of the course the ranks compare with")
    course_activity_rank_7d: float | None = Field(None, description="rank of minutes on the platform, last 7 days")
    course_activity_rank_30d: float | None = Field(None, description="rank of minutes on the platform, last 30 days")
    course_submitted_rank: float | None = Field(None, description="rank of the share of past-due work submitted")
    course_score_rank: float | None = Field(None, description="rank of course_avg_score_pct")

    # context
    days_since_last_activity: float | None = None
    content_views_30d: int = 0
    notifications_opened_30d: int = 0
    notifications_delivered_30d: int = 0
    days_observed: int = Field(0, description="days since first seen, capped at 30: how complete the windows are")


class RiskFactor(BaseModel):
    """One reason behind a score, in words, with its share of the risk."""

    model_config = ConfigDict(extra="forbid")

    signal: str
    group: str
    description: str
    contribution: float = Field(description="points of the 0-100 risk this factor adds (negative lowers it)")


Tier = Literal["critical", "high", "medium", "low", "minimal"]


def tier_for(score: float) -> Tier:
    """PRODUCT.md §4: critical 80-100, high 60-80, medium 40-60, low 20-40, minimal below 20."""
    if score >= 80:
        return "critical"
    if score >= 60:
        return "high"
    if score >= 40:
        return "medium"
    if score >= 20:
        return "low"
    return "minimal"


class RiskAssessment(BaseModel):
    """A model's answer for one student: risk of dropping off within 7 and 30 days, and why."""

    model_config = ConfigDict(extra="forbid")

    risk_7d: float = Field(ge=0, le=100)
    risk_30d: float = Field(ge=0, le=100)
    tier: Tier
    confidence: float = Field(ge=0, le=1, description="from data completeness")
    factors: list[RiskFactor] = Field(default_factory=list, description="top contributing factors, largest first")
    model_version: str
