"""The intervention policy: given a risk assessment and what a student already received, what to do now.

Pure: no clock, no I/O. The caller passes ``now``, the student's time zone and their ``InterventionHistory``
(kept in a table), and stores the history the ``Decision`` returns. The policy itself is configuration
(``PolicyConfig``, JSON in ``deploy/policy/default.json``), not code.

Order of the checks, first match wins; the outcome names are the Prometheus label values:

1. ``not_needed`` - the tier has no interventions (minimal), or something at this tier or higher is already
   scheduled for this student (a deferred or held-out decision whose time has not come): nothing new to do.
2. ``cooldown`` - every intervention type of the tier was used for this student within its cooldown.
   Otherwise the first type of the tier's list that is not cooling down is chosen (so a tier's types alternate).
3. ``capped`` - the student's daily or weekly cap (rolling 24 h / 7 days) is full. An escalation (a tier higher
   than every counted intervention in that window) is not capped when ``escalation_bypasses_caps``: a student
   who turns critical an hour after a gentle reminder still reaches the success team within the deadline.
4. ``held_out`` - the student is in the control group (deterministic, by hashing the user id with a salt).
5. ``deferred`` - it is quiet hours in the student's own zone: act at the end of quiet hours (``send_after``);
   or, for a tier with send-time optimisation, the best slot before the deadline is later than now.
6. ``sent`` - act now.

Send-time optimisation (``send_time_tiers``, default high, medium and low): the caller passes a ``SlotChooser``
(``processors.notify.sendtime.slot_chooser``: the student's activity histogram, blended with their cohort's) and
the request goes at the slot it picks within ``[now, deadline]``: now -> ``send``, later -> ``deferred`` with
``send_after`` = the slot. Quiet hours always win: a slot inside them is moved to their end, whatever the
chooser said. The critical tier is not in the default list: human outreach and a discount offer are urgent, so
they go at once, or at the end of quiet hours, as without a chooser. Without a chooser (or for other tiers),
the policy is what it was: now, or the end of quiet hours.

Cooldowns and caps are checked at the earliest moment the intervention could go out (now, or the end of quiet
hours when it is quiet), not at the optimised slot: so whether it goes, and under which type and id, never
depends on the slot estimate (which reads in-memory cohort state a restart loses); the slot only moves the send
time within the deadline. The history entry is made at the send time (the slot), so caps and cooldowns of
later decisions count it from when it really goes.

Held-out decisions are recorded exactly like sends: they emit a request with ``status="held_out"``, enter the
history at the time the intervention would have gone out, and count for cooldowns and caps. So the control
group's would-be interventions follow the same timeline and frequency as the treated group's real ones,
and uplift (returned within 7 days, treated vs held out) compares like with like.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from processors.experiments.arms import Arms, TypeChoice
from processors.experiments.assignment import Assignment
from schemas.events import Channel
from schemas.interventions import InterventionRequest, InterventionType, RequestStatus
from schemas.signals import RiskAssessment, SignalSnapshot, Tier

DecisionOutcome = Literal["sent", "held_out", "deferred", "capped", "cooldown", "not_needed"]
DECISION_OUTCOMES: tuple[DecisionOutcome, ...] = get_args(DecisionOutcome)

TIERS: tuple[Tier, ...] = get_args(Tier)
TIER_RANK: dict[Tier, int] = {"minimal": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}
DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "deploy" / "policy" / "default.json"
_ID_NAMESPACE = uuid.UUID("5d0c5a8e-6f1e-4f8a-9a55-2b1d3c4e5f60")  # fixed forever: intervention ids derive from it

_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)


# -- configuration ------------------------------------------------------------------------------------------


class TierPolicy(BaseModel):
    """What a tier gets: intervention types in order of preference, channels in order, and a deadline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    intervention_types: list[InterventionType] = Field(default_factory=list)
    channels: list[Channel] = Field(default_factory=list)
    deadline_hours: float = Field(24.0, gt=0, description="act within this long of the (deferred) send time")

    @field_validator("intervention_types", "channels")
    @classmethod
    def _no_duplicates(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicates in {[str(v) for v in value]}")
        return value


class QuietHours(BaseModel):
    """Local wall-clock hours when nothing goes to a student; ``start > end`` wraps midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time = time(21, 0)
    end: time = time(8, 0)

    @field_validator("start", "end")
    @classmethod
    def _wall_clock(cls, value: time) -> time:
        if value.tzinfo is not None:
            raise ValueError("quiet hours are local wall-clock times: give them without a UTC offset")
        return value


class SendTimeConfig(BaseModel):
    """How the activity histogram decays and how a slot is chosen (``processors.notify.sendtime``, which
    re-exports it; it lives here so that ``PolicyConfig`` can carry it without an import cycle). Defaults: see
    the README's measurement (on the simulator these barely matter: its students keep their hours)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_days: float = Field(28.0, gt=0, description="an observation this old weighs half")
    min_observations: float = Field(
        8.0, ge=0, description="the cohort counts as this many observations (active hours) of the student"
    )
    hour_pooling: float = Field(
        1.0, ge=0, description="weight of the same hour on other weekdays, per unit of the bucket's own"
    )
    tie_tolerance: float = Field(0.05, ge=0, lt=1, description="earliest slot within this share of the best wins")
    cohort_min_hours: float = Field(
        50.0, ge=0, description="a cohort aggregate with fewer (decayed) active hours is not used: the next wider is"
    )


def _default_tiers() -> dict[Tier, TierPolicy]:
    t, c = InterventionType, Channel
    return {
        "critical": TierPolicy(
            intervention_types=[t.human_outreach, t.discount_offer], channels=[c.email, c.sms, c.push], deadline_hours=4
        ),
        "high": TierPolicy(
            intervention_types=[t.personalised_content, t.streak_warning], channels=[c.push, c.email, c.in_app]
        ),
        "medium": TierPolicy(
            intervention_types=[t.achievement_notification, t.peer_comparison], channels=[c.in_app, c.push]
        ),
        "low": TierPolicy(
            intervention_types=[t.gentle_reminder, t.milestone_celebration], channels=[c.in_app, c.email]
        ),
        "minimal": TierPolicy(),
    }


def _default_send_time_tiers() -> list[Tier]:
    return ["high", "medium", "low"]


class PolicyConfig(BaseModel):
    """The whole intervention policy. ``PolicyConfig()`` equals ``deploy/policy/default.json`` (a test checks)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: dict[Tier, TierPolicy] = Field(default_factory=_default_tiers)
    default_cooldown_hours: float = Field(48.0, ge=0, description="per student and intervention type")
    cooldown_hours: dict[InterventionType, float] = Field(
        default_factory=lambda: {InterventionType.discount_offer: 168.0},
        description="per-type overrides of default_cooldown_hours",
    )
    max_per_day: int = Field(1, ge=1, description="per student, rolling 24 h")
    max_per_week: int = Field(3, ge=1, description="per student, rolling 7 days")
    escalation_bypasses_caps: bool = True
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours, description="null: no quiet hours")
    default_timezone: str = Field("UTC", description="used when the student's zone is unknown")
    holdout_share: float = Field(0.10, ge=0, le=1)
    holdout_salt: str = Field("engage-holdout-v1", min_length=1, description="change it and every group reshuffles")
    history_max_entries: int = Field(32, ge=1)
    reason_factors: int = Field(3, ge=1, description="how many top factors the reason quotes")
    send_time_tiers: list[Tier] = Field(
        default_factory=_default_send_time_tiers,
        description="tiers sent at the student's best slot before the deadline (the others: now or after quiet hours)",
    )
    send_time: SendTimeConfig = Field(default_factory=SendTimeConfig)

    @model_validator(mode="after")
    def _complete(self) -> PolicyConfig:
        missing = [tier for tier in TIERS if tier not in self.tiers]
        if missing:
            raise ValueError(f"tiers: every tier needs an entry (an empty one disables it); missing {missing}")
        if any(h < 0 for h in self.cooldown_hours.values()):
            raise ValueError("cooldown_hours: hours cannot be negative")
        if _zone_or_none(self.default_timezone) is None:
            raise ValueError(f"default_timezone: unknown time zone {self.default_timezone!r}")
        return self

    def cooldown(self, intervention_type: InterventionType) -> timedelta:
        return timedelta(hours=self.cooldown_hours.get(intervention_type, self.default_cooldown_hours))

    def retention(self) -> timedelta:
        """How long history entries matter: the longest of the week cap and every cooldown."""
        longest = max([self.default_cooldown_hours, *self.cooldown_hours.values()])
        return max(_WEEK, timedelta(hours=longest))


def policy_from_file(path: str | Path = DEFAULT_POLICY_PATH) -> PolicyConfig:
    """Load and validate a policy JSON file (unknown keys are refused, so a typo cannot be silently ignored)."""
    return PolicyConfig.model_validate_json(Path(path).read_text(encoding="utf-8"))


# -- history ------------------------------------------------------------------------------------------------

EntryStatus = Literal["sent", "held_out", "deferred"]
_ENTRY_STATUS: dict[RequestStatus, EntryStatus] = {"send": "sent", "held_out": "held_out", "deferred": "deferred"}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One intervention that counts for cooldowns and caps; ``at`` is when it goes (or would go) out."""

    intervention_id: str
    intervention_type: InterventionType
    tier: Tier
    at: datetime
    status: EntryStatus

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.intervention_id,
            "type": self.intervention_type.value,
            "tier": self.tier,
            "at": self.at.isoformat(),
            "status": self.status,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry:
        tier, status = data["tier"], data["status"]
        if tier not in TIER_RANK or status not in get_args(EntryStatus):
            raise ValueError(f"history entry: bad tier or status in {dict(data)!r}")
        at = datetime.fromisoformat(data["at"])
        if at.tzinfo is None:
            raise ValueError(f"history entry: 'at' needs a UTC offset: {data['at']!r}")
        return cls(str(data["id"]), InterventionType(data["type"]), tier, at, status)


@dataclass(frozen=True, slots=True)
class InterventionHistory:
    """A student's recent interventions, oldest first, bounded by age and count; stored as plain JSON."""

    entries: tuple[HistoryEntry, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "entries": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> InterventionHistory:
        if not data:
            return cls()
        return cls(tuple(HistoryEntry.from_dict(e) for e in data.get("entries", ())))

    def with_entry(self, entry: HistoryEntry, now: datetime, config: PolicyConfig) -> InterventionHistory:
        """A new history with ``entry`` added and entries older than the config's retention dropped."""
        horizon = now - config.retention()
        kept = [e for e in self.entries if e.at > horizon]
        kept.append(entry)
        kept.sort(key=lambda e: e.at)
        return InterventionHistory(tuple(kept[-config.history_max_entries :]))


# -- the decision -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's answer. ``request`` is what goes on the interventions topic (None when suppressed)."""

    outcome: DecisionOutcome
    history: InterventionHistory  # store this; the same object as the input when nothing was recorded
    request: InterventionRequest | None = None
    detail: str = ""
    choice: TypeChoice | None = None  # what chose the type, when experiments and the bandit were asked
    shaped: tuple[Assignment, ...] = ()  # the experiments' assignments that shaped the request (its exposures)

    @property
    def send_after(self) -> datetime | None:
        return self.request.send_after if self.request is not None else None


def in_holdout(config: PolicyConfig, user_id: str) -> bool:
    """Deterministic control-group membership: SHA-256 of salt and user id, read as a number in [0, 1)."""
    if config.holdout_share <= 0:
        return False
    if config.holdout_share >= 1:
        return True
    digest = hashlib.sha256(f"{config.holdout_salt}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < config.holdout_share


@lru_cache(maxsize=1024)
def _zone_or_none(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def quiet_hours_end(quiet: QuietHours | None, now: datetime, zone: ZoneInfo) -> datetime | None:
    """If ``now`` is inside quiet hours in ``zone``, the instant (UTC) they end; else None. DST-correct."""
    if quiet is None or quiet.start == quiet.end:
        return None
    local = now.astimezone(zone)
    t = local.time()
    inside = (quiet.start <= t < quiet.end) if quiet.start < quiet.end else (t >= quiet.start or t < quiet.end)
    if not inside:
        return None
    day = local.date() if t < quiet.end else local.date() + _DAY
    end_local = datetime.combine(day, quiet.end, tzinfo=zone)  # a wall time in a DST gap resolves after the gap
    end = end_local.astimezone(UTC)
    if end <= now:  # inside a repeated (fall-back) hour: the second occurrence of the wall time
        end = end_local.replace(fold=1).astimezone(UTC)
    return end


def _cooling(config: PolicyConfig, history: InterventionHistory, kind: InterventionType, at: datetime) -> bool:
    since = at - config.cooldown(kind)
    return any(e.intervention_type == kind and e.at > since for e in history.entries)


def _cap_reason(config: PolicyConfig, history: InterventionHistory, tier: Tier, at: datetime) -> str | None:
    for window, limit, label in ((_DAY, config.max_per_day, "24 h"), (_WEEK, config.max_per_week, "7 days")):
        counted = [e for e in history.entries if e.at > at - window]
        if len(counted) < limit:
            continue
        if config.escalation_bypasses_caps and TIER_RANK[tier] > max(TIER_RANK[e.tier] for e in counted):
            continue
        return f"{len(counted)} interventions in the last {label} (cap {limit})"
    return None


# (now, deadline, quiet hours, zone) -> when to send, in [now, deadline] unless quiet hours push it later.
SlotChooser = Callable[[datetime, datetime, QuietHours | None, ZoneInfo], datetime]


def _send_time(
    config: PolicyConfig, chooser: SlotChooser | None, tier: Tier, now: datetime, earliest: datetime,
    deadline: datetime, zone: ZoneInfo,
) -> datetime:  # fmt: skip
    """When the request goes: ``earliest`` (now or the end of quiet hours) unless the tier is optimised; then the
    chooser's slot, never before now and never inside quiet hours (they win over any chooser)."""
    if chooser is None or tier not in config.send_time_tiers:
        return earliest
    slot = max(chooser(now, deadline, config.quiet_hours, zone).astimezone(UTC), now)
    return quiet_hours_end(config.quiet_hours, slot, zone) or slot


def _ordered(channels: list[Channel], preferred: Channel | None) -> list[Channel]:
    """The tier's channels, the student's preferred one first when the tier uses it (the rest keep their order)."""
    if preferred is None or preferred not in channels or channels[0] == preferred:
        return list(channels)
    return [preferred, *(c for c in channels if c != preferred)]


def intervention_id(user_id: str, kind: InterventionType, triggered_by_event_time: datetime) -> str:
    """Deterministic, so a replayed decision (worker restart) carries the same id and can be deduplicated."""
    instant = triggered_by_event_time.astimezone(UTC).isoformat()
    return str(uuid.uuid5(_ID_NAMESPACE, f"{user_id}\x1f{kind.value}\x1f{instant}"))


def _reason(assessment: RiskAssessment, limit: int) -> str:
    words = [f.description for f in assessment.factors[:limit]]
    return "; ".join(words) if words else f"Risk {assessment.risk_7d:.0f}/100 ({assessment.tier})"


def decide(
    config: PolicyConfig,
    user_id: str,
    assessment: RiskAssessment,
    history: InterventionHistory,
    now: datetime,
    timezone: str,
    *,
    triggered_by_event_time: datetime | None = None,
    send_time: SlotChooser | None = None,
    signals: SignalSnapshot | None = None,
    locale: str | None = None,
    arms: Arms | None = None,
    profile_bucket: str | None = None,
    strategies: Mapping[str, SlotChooser | None] | None = None,
    preferred_channel: Channel | None = None,
) -> Decision:
    """Apply the policy (see the module docstring for the order of checks). ``now`` must be timezone-aware.

    ``send_time`` picks the slot for the tiers in ``config.send_time_tiers``; ``signals`` (the snapshot the
    assessment was made on) and ``locale`` are carried in the request for the notification service to render
    from, with the assessment's factors and the zone the decision was made in.

    ``arms`` (experiments and the bandit, ``processors.experiments.arms``) choose the type among those allowed now
    and the send-time strategy, for students outside the policy's control group; ``strategies`` maps a strategy to
    its chooser (a strategy it lacks uses ``send_time``); ``profile_bucket`` is the bandit's context below the
    tier. The returned ``Decision`` says what chose them, for the caller's exposures and bandit windows.
    ``preferred_channel`` (the profile's: the channel the student opens most) goes first among the tier's
    channels; the others stay as fallbacks in the tier's order."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    tier = assessment.tier
    tier_policy = config.tiers[tier]
    if not tier_policy.intervention_types:
        return Decision("not_needed", history, detail=f"no interventions for tier {tier}")
    rank = TIER_RANK[tier]
    if any(e.at > now and TIER_RANK[e.tier] >= rank for e in history.entries):
        return Decision("not_needed", history, detail="an intervention at this tier or higher is already scheduled")

    zone = _zone_or_none(timezone) or _zone_or_none(config.default_timezone) or ZoneInfo("UTC")
    quiet_end = quiet_hours_end(config.quiet_hours, now, zone)
    at = quiet_end or now  # the earliest it can go: caps and cooldowns are checked there (module docstring)

    kinds = [k for k in tier_policy.intervention_types if not _cooling(config, history, k, at)]
    if not kinds:
        return Decision("cooldown", history, detail=f"every {tier} intervention is cooling down")
    cap = _cap_reason(config, history, tier, at)
    if cap is not None:
        return Decision("capped", history, detail=cap)

    held_out = in_holdout(config, user_id)
    event_time = triggered_by_event_time or now
    choice = strategy = None
    if arms is not None and not held_out:
        decision_id = f"{user_id}\x1f{event_time.astimezone(UTC).isoformat()}"
        choice = arms.intervention_type(user_id, tier, kinds, profile_bucket, decision_id)
        if tier in config.send_time_tiers:  # other tiers go at once: a strategy would change nothing
            strategy = arms.send_time_strategy(user_id, tier)
            if strategies is not None and strategy.strategy in strategies:
                send_time = strategies[strategy.strategy]
    kind = choice.kind if choice is not None else kinds[0]
    template = arms.template(user_id, tier, kind) if arms is not None and not held_out else None
    deadline = at + timedelta(hours=tier_policy.deadline_hours)
    send_at = _send_time(config, send_time, tier, now, at, deadline, zone)
    send_after = send_at if send_at > now else None
    status: RequestStatus = "held_out" if held_out else "deferred" if send_after else "send"
    shaped: list[Assignment] = []
    if choice is not None and choice.assignment is not None:
        shaped.append(choice.assignment)
    if strategy is not None and strategy.assignment is not None:
        shaped.append(strategy.assignment)
    if template is not None:
        shaped.append(template)
    request = InterventionRequest(
        # The policy's own choice names the decision, whatever chose the type: a decision replayed after a crash
        # keeps its id even if the bandit's posteriors moved in between (the notification service sends an id once).
        intervention_id=intervention_id(user_id, kinds[0], event_time),
        user_id=user_id,
        created_at=now,
        status=status,
        send_after=send_after,
        tier=tier,
        intervention_type=kind,
        channels=_ordered(tier_policy.channels, preferred_channel),
        reason=_reason(assessment, config.reason_factors),
        deadline=deadline,
        risk_7d=assessment.risk_7d,
        confidence=assessment.confidence,
        model_version=assessment.model_version,
        triggered_by_event_time=event_time,
        signals=signals,
        factors=list(assessment.factors),
        timezone=zone.key,
        locale=locale,
        chosen_by=choice.chosen_by if choice is not None else "policy",
        arms={a.experiment.key: a.variant.id for a in shaped if a.variant is not None},
    )
    entry = HistoryEntry(request.intervention_id, kind, tier, send_at, _ENTRY_STATUS[status])
    outcome: DecisionOutcome = "sent" if status == "send" else status
    return Decision(outcome, history.with_entry(entry, now, config), request, choice=choice, shaped=tuple(shaped))
