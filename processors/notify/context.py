"""What a notification template sees: the student's signals, the intervention and its reasons, links.

``build_context`` is the one way a context is made, for a real send and for the sample students every template
is rendered against when the catalogue loads (``sample_contexts``), so a template that passes lint has seen the
shapes a send gives it: an engaged student, a brand-new one (most signals unknown) and a lapsed one.

Variables (mappings read as ``x.y`` in a template; using a name this student's context lacks is an error that
names the template, the line and the variable, see ``processors.notify.templates``):

==================  ============================================================================================
``intervention``    id, type, tier, reason (words), risk_7d (int 0-100), deadline (aware, in the student's zone)
``reasons``         the top risk factors in words, largest first (list of str, may be empty)
``factors``         the same as mappings: signal, group, description, contribution
``streak``          current, longest, freezes_held, broken_recently, next_milestone and days_to_next_milestone
                    (None beyond the last milestone), last_milestone (the largest reached, None below 7)
``progress``        course_pct (int or None), courses, lessons_7d, lessons_per_week (1 decimal),
                    assessments_missed, days_to_next_due (whole days, rounded up; None without a calendar)
``activity``        days_since_last (whole days or None), active_days_7d, sessions_7d, minutes_7d (int),
                    quiz_avg_pct (int or None)
``peers``           count, ahead_of_pct: share of the course's students this one out-studied in 7 days, percent
                    (None until the course has enough peers ranked)
``student``         timezone, locale (as asked, before the fallback chain)
``signals``         every ``SignalSnapshot`` field as it is (None where unknown)
``links``           action, unsubscribe, preferences: URLs the delivery layer provides (tracking, signing: its job)
``offer``           discount offers only: code, percent_off, expires_at (aware, in the student's zone)
``channel``         added by the renderer, with ``locale``: the locale of the template chosen
==================  ============================================================================================

Values that may be None are listed as such; a template prints them only under ``{% if x is not none %}``
(printing None is refused, see the renderer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from processors.policy import PolicyConfig
from processors.state import zone_for
from processors.streaks import MILESTONES
from schemas.interventions import InterventionRequest, InterventionType
from schemas.signals import RiskAssessment, RiskFactor, SignalSnapshot, Tier

# Every top-level name a template may use; ``offer`` only in discount offers (the catalogue checks at load).
BASE_VARIABLES: frozenset[str] = frozenset(
    {
        "intervention",
        "reasons",
        "factors",
        "streak",
        "progress",
        "activity",
        "peers",
        "student",
        "signals",
        "links",
        "channel",
        "locale",
    }
)
TYPE_VARIABLES: dict[InterventionType, frozenset[str]] = {InterventionType.discount_offer: frozenset({"offer"})}


def variables_for(intervention_type: InterventionType) -> frozenset[str]:
    """The top-level names a template of this type may use."""
    return BASE_VARIABLES | TYPE_VARIABLES.get(intervention_type, frozenset())


class Vars(dict[str, Any]):
    """A mapping that knows its own path (``signals``, ``factors[0]``), so a missing key is reported by name."""

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self._path = path  # an underscore name: the sandbox never lets a template read it

    @property
    def path(self) -> str:
        return self._path


@dataclass(frozen=True, slots=True)
class Links:
    """URLs a message points to; the delivery layer makes them (signed, tracked), templates only place them."""

    action: str
    unsubscribe: str
    preferences: str


@dataclass(frozen=True, slots=True)
class Offer:
    """A discount offer's code and terms (discount offers only)."""

    code: str
    percent_off: int
    expires_at: datetime


def next_milestone(current: int) -> int | None:
    """The next streak milestone above ``current`` days (None beyond the last one)."""
    return next((m for m in MILESTONES if m > current), None)


def _last_milestone(current: int) -> int | None:
    reached = [m for m in MILESTONES if m <= current]
    return reached[-1] if reached else None


def _whole(value: float | None, up: bool = False) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return max(0, math.ceil(value) if up else math.floor(value))


def _pct(value: float | None) -> int | None:
    return None if value is None or not math.isfinite(value) else round(value)


def _zone(name: str) -> tzinfo:
    return zone_for(name) or UTC


def build_context(
    request: InterventionRequest,
    snapshot: SignalSnapshot,
    links: Links,
    *,
    factors: Sequence[RiskFactor] = (),
    offer: Offer | None = None,
    locale: str = "en",
) -> dict[str, Any]:
    """The variables of one message to one student (see the module docstring). No I/O, no clock.

    ``factors`` are the risk factors of the assessment behind the request, when the caller has them (the record
    keeps the last assessment); without them ``reasons`` are the request's ``reason`` split back into its parts.
    """
    zone = _zone(snapshot.timezone)
    s = snapshot
    streak_next = next_milestone(s.current_streak_days)
    reasons = [f.description for f in factors] if factors else [r for r in request.reason.split("; ") if r]
    context: dict[str, Any] = {
        "intervention": Vars(
            "intervention",
            {
                "id": request.intervention_id,
                "type": request.intervention_type.value,
                "tier": request.tier,
                "reason": request.reason,
                "risk_7d": round(request.risk_7d),
                "deadline": request.deadline.astimezone(zone),
            },
        ),
        "reasons": reasons,
        "factors": [Vars(f"factors[{i}]", f.model_dump()) for i, f in enumerate(factors)],
        "streak": Vars(
            "streak",
            {
                "current": s.current_streak_days,
                "longest": s.longest_streak_days,
                "freezes_held": s.streak_freezes_held,
                "broken_recently": s.streak_broken_recently,
                "next_milestone": streak_next,
                "days_to_next_milestone": streak_next - s.current_streak_days if streak_next is not None else None,
                "last_milestone": _last_milestone(s.current_streak_days),
            },
        ),
        "progress": Vars(
            "progress",
            {
                "course_pct": _pct(s.course_progress_pct),
                "courses": s.courses_enrolled,
                "lessons_7d": s.lessons_completed_7d,
                "lessons_per_week": round(s.lessons_per_week_30d, 1),
                "assessments_missed": s.assessments_missed,
                "days_to_next_due": _whole(s.days_to_next_due, up=True),
            },
        ),
        "activity": Vars(
            "activity",
            {
                "days_since_last": _whole(s.days_since_last_activity),
                "active_days_7d": s.active_days_7d,
                "sessions_7d": s.sessions_7d,
                "minutes_7d": round(s.minutes_on_platform_7d),
                "quiz_avg_pct": _pct(s.avg_quiz_score_pct_30d),
            },
        ),
        "peers": Vars(
            "peers",
            {
                "count": s.course_peers,
                "ahead_of_pct": _pct(
                    s.course_activity_rank_7d * 100 if s.course_activity_rank_7d is not None else None
                ),
            },
        ),
        "student": Vars("student", {"timezone": s.timezone, "locale": locale}),
        "signals": Vars("signals", s.model_dump()),
        "links": Vars(
            "links", {"action": links.action, "unsubscribe": links.unsubscribe, "preferences": links.preferences}
        ),
    }
    if offer is not None:
        context["offer"] = Vars(
            "offer",
            {"code": offer.code, "percent_off": offer.percent_off, "expires_at": offer.expires_at.astimezone(zone)},
        )
    return context


# -- sample students: what every template is rendered against at load ----------------------------------------

SAMPLE_AS_OF = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)  # a Wednesday
SAMPLE_LINKS = Links(
    action="https://app.example/continue?t=sample",
    unsubscribe="https://app.example/unsubscribe?t=sample",
    preferences="https://app.example/settings/notifications",
)
SAMPLE_FACTORS: tuple[RiskFactor, ...] = (
    RiskFactor(signal="days_since_last_login", group="login", description="No login for 4 days", contribution=18.0),
    RiskFactor(
        signal="lessons_trend", group="progress", description="Lessons per week fell from 6 to 2", contribution=9.5
    ),
    RiskFactor(signal="avg_quiz_score_pct_30d", group="quiz", description="Quiz average 58%", contribution=4.0),
)


def _engaged(as_of: datetime) -> SignalSnapshot:
    """A regular student twelve days into a streak (two days from the 14-day milestone), ranked in a course."""
    return SignalSnapshot(
        user_id="sample-engaged",
        as_of=as_of,
        timezone="Europe/Berlin",
        first_seen=as_of - timedelta(days=40),
        last_event_time=as_of - timedelta(hours=20),
        events_total=1_240,
        logins_7d=6,
        logins_30d=24,
        login_days_7d=6,
        days_since_last_login=0.8,
        login_trend=-0.1,
        sessions_7d=8,
        sessions_30d=31,
        avg_session_minutes_7d=34.5,
        minutes_on_platform_7d=276.0,
        minutes_on_platform_30d=1_020.0,
        lessons_completed_7d=5,
        lessons_completed_30d=21,
        lessons_per_week_30d=4.9,
        lesson_completion_rate_30d=0.84,
        course_progress_pct=62.5,
        courses_enrolled=2,
        current_streak_days=12,
        longest_streak_days=19,
        streak_freezes_held=1,
        active_days_7d=6,
        active_days_30d=24,
        study_consistency_30d=0.8,
        quizzes_30d=4,
        avg_quiz_score_pct_30d=78.2,
        course_day=33.0,
        assessments_due=2,
        days_to_next_due=2.4,
        course_submissions=2,
        course_avg_score_pct=74.0,
        course_peers=180,
        course_activity_rank_7d=0.71,
        course_activity_rank_30d=0.66,
        course_submitted_rank=0.5,
        course_score_rank=0.62,
        days_since_last_activity=0.8,
        content_views_30d=55,
        notifications_opened_30d=3,
        notifications_delivered_30d=7,
        days_observed=30,
    )


def _new(as_of: datetime) -> SignalSnapshot:
    """A student seen for the first time today: nearly every optional signal unknown, no streak, no peers."""
    return SignalSnapshot(
        user_id="sample-new",
        as_of=as_of,
        timezone="America/Sao_Paulo",
        first_seen=as_of - timedelta(hours=2),
        last_event_time=as_of - timedelta(hours=2),
        events_total=3,
        logins_7d=1,
        logins_30d=1,
        login_days_7d=1,
        days_since_last_login=0.1,
        sessions_7d=1,
        sessions_30d=1,
        current_streak_days=1,
        longest_streak_days=1,
        active_days_7d=1,
        active_days_30d=1,
        study_consistency_30d=1.0,
        days_since_last_activity=0.1,
        days_observed=1,
    )


def _lapsed(as_of: datetime) -> SignalSnapshot:
    """A student silent for nine days whose streak broke, with weak quizzes and a missed assessment."""
    return SignalSnapshot(
        user_id="sample-lapsed",
        as_of=as_of,
        timezone="Asia/Kolkata",
        first_seen=as_of - timedelta(days=60),
        last_event_time=as_of - timedelta(days=9),
        events_total=410,
        logins_30d=5,
        days_since_last_login=9.3,
        login_trend=-1.0,
        sessions_30d=6,
        minutes_on_platform_30d=140.0,
        lessons_completed_30d=3,
        lessons_per_week_30d=0.7,
        lesson_completion_rate_30d=0.5,
        lessons_trend=-1.0,
        course_progress_pct=18.0,
        courses_enrolled=1,
        courses_unenrolled=1,
        current_streak_days=0,
        longest_streak_days=8,
        streak_broken_recently=True,
        active_days_30d=5,
        study_consistency_30d=0.17,
        quizzes_30d=2,
        avg_quiz_score_pct_30d=41.0,
        assessments_due=3,
        assessments_missed=1,
        assessment_weight_missed_pct=25.0,
        days_since_missed_due=4.0,
        course_peers=90,
        course_activity_rank_7d=0.0,
        days_since_last_activity=9.3,
        content_views_30d=9,
        notifications_delivered_30d=5,
        days_observed=30,
    )


SAMPLE_STUDENTS = {"engaged": _engaged, "new": _new, "lapsed": _lapsed}
_SAMPLE_RISK: dict[Tier, float] = {"critical": 88.0, "high": 71.0, "medium": 52.0, "low": 31.0}


def tier_of(intervention_type: InterventionType, policy: PolicyConfig | None = None) -> Tier:
    """The tier whose list holds this type in the policy (the default policy if none); medium if none does."""
    policy = policy or PolicyConfig()
    return next((t for t, tp in policy.tiers.items() if intervention_type in tp.intervention_types), "medium")


def preview_request(
    intervention_type: InterventionType,
    snapshot: SignalSnapshot,
    policy: PolicyConfig | None = None,
    assessment: RiskAssessment | None = None,
) -> InterventionRequest:
    """A request of this type for this student, as the policy would word it at ``snapshot.as_of``: the tier that
    holds the type, its channels and deadline, the reason from ``assessment``'s top factors (or the samples')."""
    policy = policy or PolicyConfig()
    tier = tier_of(intervention_type, policy)
    tier_policy = policy.tiers[tier]
    factors = assessment.factors if assessment is not None else SAMPLE_FACTORS
    reason = "; ".join(f.description for f in factors[: policy.reason_factors]) or "Risk unknown"
    return InterventionRequest(
        intervention_id=f"preview-{intervention_type.value}-{snapshot.user_id}",
        user_id=snapshot.user_id,
        created_at=snapshot.as_of,
        status="send",
        tier=tier,
        intervention_type=intervention_type,
        channels=list(tier_policy.channels),
        reason=reason,
        deadline=snapshot.as_of + timedelta(hours=tier_policy.deadline_hours),
        risk_7d=assessment.risk_7d if assessment is not None else _SAMPLE_RISK.get(tier, 10.0),
        confidence=assessment.confidence if assessment is not None else 1.0,
        model_version=assessment.model_version if assessment is not None else "sample",
        triggered_by_event_time=snapshot.as_of,
    )


def sample_offer(as_of: datetime = SAMPLE_AS_OF) -> Offer:
    return Offer(code="SAMPLE-7Q2K-R9", percent_off=20, expires_at=as_of + timedelta(days=7))


def sample_context(
    intervention_type: InterventionType, sample: str = "engaged", locale: str = "en", policy: PolicyConfig | None = None
) -> dict[str, Any]:
    """The context of one sample student (``engaged``, ``new`` or ``lapsed``) for a message of this type."""
    snap = SAMPLE_STUDENTS[sample](SAMPLE_AS_OF)
    request = preview_request(intervention_type, snap, policy)
    factors = SAMPLE_FACTORS if sample != "new" else ()
    offer = sample_offer() if intervention_type == InterventionType.discount_offer else None
    return build_context(request, snap, SAMPLE_LINKS, factors=factors, offer=offer, locale=locale)


def sample_contexts(
    intervention_type: InterventionType, locale: str = "en", policy: PolicyConfig | None = None
) -> dict[str, dict[str, Any]]:
    """One context per sample student (engaged, new, lapsed) for a message of this type."""
    return {name: sample_context(intervention_type, name, locale, policy) for name in SAMPLE_STUDENTS}
