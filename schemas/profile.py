"""The personalisation profile: what a student's behaviour says they respond to (PRODUCT.md §8).

Behaviour-based on purpose ("learning styles" have no evidence as a basis for teaching): which content formats
the student opens and finishes, when they study, how fast they go and how hard they find it, and which kinds of
intervention they open, click and come back after. Every value carries its evidence (how many observations it
rests on), and every rate is a Bayesian posterior (mean and a 90 % credible interval), pulled toward the
student's cohort while the evidence is thin (``processors.profile`` says how).

Served live by ``GET /v1/users/{id}/profile``; one message per student and local day on the ``profiles``
topic, warehoused in ``user_profiles_daily`` (one row per student and day).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Channel, ContentFormat
from schemas.interventions import InterventionType

PROFILE_SCHEMA_VERSION: Literal[1] = 1


class TriggerGroup(StrEnum):
    """What moves a student, grouped from the intervention types that carry it."""

    competition = "competition"  # standing against peers: peer comparison (and leaderboards)
    achievement = "achievement"  # badges, levels and milestones
    social = "social"  # a person: the success team's outreach
    reminders = "reminders"  # a nudge back to the work: reminders, streak warnings, content suggestions


# Each intervention type's group. A discount offer is a price incentive, not a motivation trigger: its outcomes
# are not counted in any group. A streak warning says "come back today or lose it": it is read as a reminder
# (it is sent to high-risk students to bring them back, like a reminder), not as an achievement celebrated.
TRIGGER_OF: dict[InterventionType, TriggerGroup | None] = {
    InterventionType.peer_comparison: TriggerGroup.competition,
    InterventionType.achievement_notification: TriggerGroup.achievement,
    InterventionType.milestone_celebration: TriggerGroup.achievement,
    InterventionType.human_outreach: TriggerGroup.social,
    InterventionType.gentle_reminder: TriggerGroup.reminders,
    InterventionType.streak_warning: TriggerGroup.reminders,
    InterventionType.personalised_content: TriggerGroup.reminders,
    InterventionType.discount_offer: None,
}
TRIGGER_GROUPS: tuple[TriggerGroup, ...] = tuple(TriggerGroup)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Estimate(_Frozen):
    """A rate or share in [0, 1]: the posterior mean and its 90 % credible interval, on ``evidence`` observations
    of the student's own (0: the cohort's prior alone)."""

    mean: float = Field(ge=0, le=1)
    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    evidence: float = Field(ge=0, description="the student's own observations behind it")


class FormatAffinity(_Frozen):
    share: Estimate = Field(description="share of the student's content views in this format")
    completion: Estimate = Field(description="mean completion of those views")


class Formats(_Frozen):
    video: FormatAffinity
    audio: FormatAffinity
    text: FormatAffinity
    interactive: FormatAffinity


class StudyTime(_Frozen):
    """When the student is active, in their own zone: the send-time histogram blended with the cohort's."""

    best_hours: list[int] = Field(description="local hours of the day, most active first (top 3)")
    best_slots: list[list[int]] = Field(description="[weekday (0 = Monday), local hour], most active first (top 3)")
    best_hour_share: float = Field(ge=0, le=1, description="share of the estimated activity in the best hour")
    evidence: float = Field(ge=0, description="active local hours observed (decayed)")
    student_share: float = Field(ge=0, le=1, description="how much of the estimate is the student's own")


class Pace(_Frozen):
    lessons_per_week: float = Field(ge=0, description="lessons completed per week over the last 30 days")
    vs_plan: float | None = Field(
        None, description="course progress / the share of the course calendar elapsed (1 = on plan)"
    )
    vs_cohort: float | None = Field(None, description="lessons per week / the cohort's mean (1 = typical)")
    evidence: int = Field(ge=0, description="lessons completed in the last 30 days")


class Difficulty(_Frozen):
    avg_score_pct: float | None = Field(None, description="mean quiz score in the last 30 days, percent")
    cohort_score_pct: float | None = None
    retry_share: Estimate = Field(description="share of quiz submissions that were a second or later attempt")
    cohort_retry_share: float | None = None
    level: Literal["easy", "typical", "hard", "unknown"] = Field(
        description="easy: scores above the cohort and few retries; hard: below it or many retries"
    )
    evidence: int = Field(ge=0, description="quiz submissions seen")


class Trigger(_Frozen):
    exposures: int = Field(ge=0, description="interventions of this group sent to the student")
    opened: Estimate
    clicked: Estimate
    returned: Estimate = Field(description="active again within 7 days of the send")


class Triggers(_Frozen):
    competition: Trigger
    achievement: Trigger
    social: Trigger
    reminders: Trigger


class ChannelAffinity(_Frozen):
    delivered: int = Field(ge=0, description="notifications delivered on this channel (delivery reports)")
    opened: Estimate = Field(description="share of them the student opened; Beta(1, 1) prior, the student's own")


class Channels(_Frozen):
    email: ChannelAffinity
    push: ChannelAffinity
    in_app: ChannelAffinity
    sms: ChannelAffinity


class Profile(_Frozen):
    """One student's profile as of ``as_of``; ``day`` is the student's local date (one row per student and day)."""

    schema_version: Literal[1] = PROFILE_SCHEMA_VERSION
    profile_id: str = Field(min_length=1, description="user id and local day: a re-sent profile replaces its row")
    user_id: str = Field(min_length=1)
    day: date
    as_of: AwareDatetime
    timezone: str
    formats: Formats
    preferred_format: ContentFormat | None = Field(
        None, description="the format with the highest posterior share, once the student has viewed any content"
    )
    format_views: int = Field(ge=0, description="content views behind the format affinities")
    study_time: StudyTime
    pace: Pace
    difficulty: Difficulty
    triggers: Triggers
    preferred_trigger: TriggerGroup | None = Field(
        None, description="the group with the highest posterior open rate, once any intervention was sent"
    )
    channels: Channels
    preferred_channel: Channel | None = Field(
        None, description="the channel the student opens most (3 deliveries on it at least): tried first for them"
    )
    unattributed_responses: int = Field(
        0, ge=0, description="opens and clicks naming an intervention the worker did not send (not guessed)"
    )
    prior_strength: float = Field(description="how many observations the cohort's prior counts as (formats)")
