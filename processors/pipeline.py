"""One student's record and the two things that happen to it: a batch of events arrives, or it is re-scored.

This is the whole per-user logic of the stream processors, as plain functions over a ``UserRecord``; the Faust
agents only load the record from their table, call these, store it back and send what they return.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from models.base import RiskModel
from processors.cohort import CourseCohorts
from processors.experiments.arms import MAX_PENDING, Arms, Closed, Pending, close_windows, xp_rules_assignment
from processors.experiments.assignment import exposure
from processors.gamification.engine import GameOutcome, GameState, play
from processors.gamification.rules import GameRules
from processors.notify.sendtime import CohortActivity, slot_chooser
from processors.policy import Decision, InterventionHistory, PolicyConfig, SlotChooser, decide
from processors.profile import (
    ProfileCohorts,
    TriggerStats,
    build_profile,
    cohort_values,
    local_day,
    preferred_channel,
)
from processors.signals import HALF_LIFE_DAYS, ApplyResult, apply_events, current_course, snapshot
from processors.state import UserState
from schemas.courses import CourseCalendar
from schemas.experiments import ArmOutcome, Exposure
from schemas.interventions import InterventionRequest, InterventionType
from schemas.profile import Profile
from schemas.risk import RiskUpdate, Trigger
from schemas.signals import RiskAssessment, SignalSnapshot, Tier

OWED_KEY = "owed"  # the record field a restore looks for in the raw bytes before decoding a record
_OFFSET_MARK = b'"offset":'


@dataclass(slots=True)
class UserRecord:
    """Everything the worker keeps per student: one table entry, one changelog write per batch."""

    state: UserState
    history: InterventionHistory = field(default_factory=InterventionHistory)
    score_seq: int = 0
    tier: Tier | None = None
    scored_at: float = 0.0  # wall clock (epoch seconds) of the last risk update
    clock_at: float = 0.0  # the engine's clock at that update (event time in replays): when silence is due
    last_assessment: dict[str, Any] | None = None
    last_intervention: dict[str, Any] | None = None
    # Offset of the last events-topic message folded in (a student's messages are all in one partition, in
    # order): a message at or below it is a Kafka re-delivery (after a crash or a rebalance) and is skipped whole.
    source_offset: int = -1
    # A re-score owed for folded events while the debounce window runs: (as_of, triggered_by_event_time,
    # received_at) as epoch seconds. Kept in the record, so a crash or a rebalance before the re-score ran does
    # not lose it: whoever owns the partition next finds it after restoring the table (``owed_request``).
    owed: tuple[float, float | None, float | None] | None = None
    # Outputs of the batches not yet committed, [topic, key, value] (milestones, interventions, dead letters):
    # a record can reach Kafka before the outputs sent beside it, so whoever restores the record while its
    # batch is still uncommitted sends them again (ids make that idempotent). Each is [topic, key, value, offset of
    # the batch it came from] (records from before: no offset) and is dropped once that batch is committed.
    outbox: list[list[Any]] = field(default_factory=list)
    game: GameState = field(default_factory=GameState)  # XP, level, achievements (processors.gamification)
    # Interventions sent by trigger group and what came of them (processors.profile), and the student's local day
    # (ordinal) of the last profile emitted: the next is due on the first re-score of a later local day.
    triggers: TriggerStats = field(default_factory=TriggerStats)
    profile_day: int = 0
    # Bandit-chosen interventions whose 7-day window is still open (processors.experiments.arms.Pending).
    arms: list[Pending] = field(default_factory=list)
    # XP-rules experiments the student was exposed to (one exposure each: the first XP their variant priced).
    xp_exposed: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``to_bytes`` encodes)."""
        d: dict[str, Any] = {
            "v": 1,
            "state": self.state.to_dict(),
            "history": self.history.to_dict(),
            "seq": self.score_seq,
            "tier": self.tier,
            "scored_at": self.scored_at,
            "clock_at": self.clock_at,
            "assessment": self.last_assessment,
            "intervention": self.last_intervention,
            "offset": self.source_offset,
        }
        if self.owed is not None:
            d[OWED_KEY] = list(self.owed)
        if self.outbox:
            d["outbox"] = self.outbox
        if not self.game.is_empty():
            d["game"] = self.game.to_dict()
        if not self.triggers.is_empty():
            d["triggers"] = self.triggers.to_dict()
        if self.profile_day:
            d["profile_day"] = self.profile_day
        if self.arms:
            d["arms"] = [p.to_list() for p in self.arms]
        if self.xp_exposed:
            d["xp_exposed"] = self.xp_exposed
        return d

    @classmethod
    def from_bytes(cls, raw: bytes) -> UserRecord:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserRecord:
        return cls(
            state=UserState.from_dict(d["state"]),
            history=InterventionHistory.from_dict(d.get("history")),
            score_seq=int(d.get("seq", 0)),
            tier=d.get("tier"),
            scored_at=float(d.get("scored_at", 0.0)),
            clock_at=float(d.get("clock_at", 0.0)),
            last_assessment=d.get("assessment"),
            last_intervention=d.get("intervention"),
            source_offset=int(d.get("offset", -1)),
            owed=tuple(d[OWED_KEY]) if d.get(OWED_KEY) else None,
            outbox=d.get("outbox") or [],
            game=GameState.from_dict(d.get("game")),  # absent in records written before gamification
            triggers=TriggerStats.from_dict(d.get("triggers")),  # absent before the profile, or while empty
            profile_day=int(d.get("profile_day", 0)),
            arms=[Pending.from_list(row) for row in d.get("arms", ())],
            xp_exposed=[str(k) for k in d.get("xp_exposed", ())],
        )

    @staticmethod
    def offset_in(raw: bytes) -> int:
        """``source_offset`` read from the encoded record without decoding it (a restore scans every record).

        The record's own key is the last ``"offset":`` in the bytes: it comes after every nested part, and the
        same text inside a string (an outbox entry) has its quotes escaped."""
        at = raw.rfind(_OFFSET_MARK)
        if at < 0:
            return -1
        start = at + len(_OFFSET_MARK)
        end = raw.find(b",", start)
        return int(raw[start : end if end >= 0 else len(raw)].rstrip(b"}"))

    @classmethod
    def load(cls, raw: bytes | None, user_id: str) -> UserRecord:
        return cls.from_bytes(raw) if raw else cls(state=UserState(user_id=user_id))


def ingest(
    record: UserRecord,
    user_id: str,
    events: list[dict[str, Any]],
    activity: CohortActivity | None = None,
    not_after: float = math.inf,
) -> ApplyResult:
    """Fold a batch of one user's events into the record (signals, streaks, activity histogram, dedupe by event
    id); the active hours newly counted also go to the student's cohort in ``activity``. Events later than
    ``not_after`` (epoch seconds) are refused as from the future (``apply_events``)."""
    half_life = activity.config.half_life_days if activity is not None else HALF_LIFE_DAYS
    result = apply_events(record.state, user_id, events, half_life, not_after)
    record.state = result.state
    triggers = record.triggers
    for intervention_id, clicked in result.responses:
        triggers.respond(intervention_id, clicked)
    if triggers.awaiting and result.new_events and record.state.last_activity is not None:
        triggers.active(record.state.last_activity)
    if activity is not None and result.active_hours:
        activity.add(current_course(record.state), result.active_hours)
    return result


def ingest_and_play(
    record: UserRecord,
    user_id: str,
    events: list[dict[str, Any]],
    activity: CohortActivity | None,
    rules: GameRules | None,
    arms: Arms | None = None,
    not_after: float = math.inf,
) -> tuple[ApplyResult, GameOutcome | None]:
    """``ingest``, then the gamification rules on exactly the events it accepted (None: gamification off).

    ``arms``: a running XP-rules experiment that holds the student prices with its variant's rules instead; the
    first time it awards XP the outcome carries the exposure (once per student and experiment)."""
    before = record.state.streak.current.last_active
    result = ingest(record, user_id, events, activity, not_after)
    if rules is None or not (result.accepted or result.milestones):
        return result, None
    chosen = xp_rules_assignment(arms, user_id, record.tier) if arms is not None and arms.xp_rules else None
    if chosen is not None:
        rules = chosen[1]
    first = record.state.first_seen
    outcome = play(
        record.game,
        rules,
        user_id,
        result.accepted,
        record.state.streak,
        result.milestones,
        before,
        datetime.fromtimestamp(first, UTC) if first is not None else None,
    )
    if chosen is not None and outcome.award_rows and chosen[0].experiment.key not in record.xp_exposed:
        assignment = chosen[0]
        record.xp_exposed.append(assignment.experiment.key)
        at = result.newest or datetime.now(UTC)
        outcome.exposures.append(exposure(assignment, at, context={"tier": record.tier or "unknown"}))
    return result, outcome


@dataclass(frozen=True, slots=True)
class ScoreRequest:
    """Why and as of when to re-score one student."""

    user_id: str
    as_of: datetime
    trigger: Trigger
    triggered_by_event_time: datetime | None = None
    received_at: datetime | None = None


def owe_score(record: UserRecord, request: ScoreRequest) -> None:
    """Note in the record that ``request`` is waiting for the debounce window (see ``UserRecord.owed``)."""
    record.owed = (
        request.as_of.timestamp(),
        request.triggered_by_event_time.timestamp() if request.triggered_by_event_time else None,
        request.received_at.timestamp() if request.received_at else None,
    )


def owed_request(record: UserRecord, user_id: str) -> ScoreRequest | None:
    """The re-score the record is owed, or None."""
    if record.owed is None:
        return None
    as_of, event_time, received_at = record.owed
    return ScoreRequest(
        user_id,
        datetime.fromtimestamp(as_of, UTC),
        "events",
        datetime.fromtimestamp(event_time, UTC) if event_time is not None else None,
        datetime.fromtimestamp(received_at, UTC) if received_at is not None else None,
    )


def policy_decision(
    record: UserRecord,
    user_id: str,
    assessment: RiskAssessment,
    snap: SignalSnapshot,
    policy: PolicyConfig,
    now: datetime,
    triggered_by_event_time: datetime,
    activity: CohortActivity | None = None,
    arms: Arms | None = None,
) -> Decision:
    """The policy's decision on a score, sent at the student's best slot (``processors.notify.sendtime``) for the
    tiers that use one; the request carries the snapshot, factors, zone and locale it was decided on. The worker
    and ``engage bench sendtime`` both decide here. ``arms``: experiments and the bandit choose the type and the
    send-time strategy (``processors.experiments.arms``), the bandit in the student's leading trigger group."""
    state = record.state
    course = current_course(state)
    chooser = slot_chooser(state.activity, activity, course, policy.send_time)
    strategies: dict[str, SlotChooser | None] = {
        "sto": chooser,
        "cohort_only": slot_chooser(None, activity, course, policy.send_time),
        "immediate": None,
    }
    return decide(
        policy,
        user_id,
        assessment,
        record.history,
        now,
        snap.timezone,
        triggered_by_event_time=triggered_by_event_time,
        send_time=chooser,
        signals=snap,
        locale=state.locale,
        arms=arms,
        profile_bucket=record.triggers.leading_group() if arms is not None else None,
        strategies=strategies,
        preferred_channel=preferred_channel(state.prefs),
    )


def request_context(
    record: UserRecord, now: datetime, calendars: Mapping[str, CourseCalendar] | None
) -> dict[str, Any]:
    """What a request made outside the policy (the API's manual trigger) carries for the notification service:
    the student's signals now, the last assessment's factors, their zone and locale (``InterventionRequest``)."""
    factors = RiskAssessment.model_validate(record.last_assessment).factors if record.last_assessment else []
    state = record.state
    return {
        "signals": snapshot(state, now, calendars),
        "factors": factors,
        "timezone": state.tz if state.tz_named else None,  # an IANA name from the events, not a bare offset
        "locale": state.locale,
    }


def student_profile(
    record: UserRecord,
    user_id: str,
    snap: SignalSnapshot,
    profiles: ProfileCohorts,
    activity: CohortActivity | None,
    config: PolicyConfig,
    calendars: Mapping[str, CourseCalendar] | None,
    observe: bool = True,
) -> Profile:
    """The student's profile as of the snapshot (``processors.profile``), with their course's cohort as the prior;
    ``observe``: also count the student in that cohort (the daily profile does; the API's live read does not)."""
    course = current_course(record.state)
    prior = profiles.prior(course)
    cohort_hours = activity.profile(course, snap.as_of.timestamp()) if activity is not None else None
    profile = build_profile(
        user_id, record.state, snap, record.triggers, prior, cohort_hours, config.send_time, calendars
    )
    if observe:
        profiles.observe(course, cohort_values(record.state, snap, record.triggers))
    return profile


@dataclass(slots=True)
class ScoreOutcome:
    update: RiskUpdate
    decision: Decision
    profile: Profile | None = None  # the day's profile, on the first re-score of each of the student's local days
    exposures: list[Exposure] = field(default_factory=list)  # the experiments that shaped the request
    arm_outcomes: list[ArmOutcome] = field(default_factory=list)  # bandit windows this score closed

    @property
    def intervention(self) -> InterventionRequest | None:
        return self.decision.request


def rescore(
    records: Sequence[UserRecord],
    requests: Sequence[ScoreRequest],
    model: RiskModel,
    policy: PolicyConfig,
    now: datetime,
    policy_now: datetime | None = None,
    calendars: Mapping[str, CourseCalendar] | None = None,
    cohorts: CourseCohorts | None = None,
    activity: CohortActivity | None = None,
    profiles: ProfileCohorts | None = None,
    arms: Arms | None = None,
) -> list[ScoreOutcome]:
    """Score several students in one model call, apply the intervention policy, update their records.

    ``now`` is the wall clock (``scored_at``); ``policy_now`` is the engine's clock for caps, cooldowns and quiet
    hours — the same wall clock live, the event clock when history is replayed faster than real time.
    ``calendars`` are the known course calendars (course id -> calendar) for the calendar signals;
    ``cohorts`` the course cohorts the students are ranked in (and recorded into); ``activity`` the cohorts'
    activity profiles, the send-time fallback for students with few observations of their own; ``arms`` the
    experiments and the bandit (None: the policy alone chooses).
    """
    snapshots: list[SignalSnapshot] = [
        snapshot(r.state, q.as_of, calendars, cohorts) for r, q in zip(records, requests, strict=True)
    ]
    assessments = model.score_many(snapshots)
    outcomes = []
    for record, request, snap, assessment in zip(records, requests, snapshots, assessments, strict=True):
        outcome = _record_score(record, request, snap, assessment, policy, now, policy_now or now, activity, arms)
        if profiles is not None:
            day = local_day(record.state, request.as_of)
            if day > record.profile_day:
                outcome.profile = student_profile(record, request.user_id, snap, profiles, activity, policy, calendars)
                record.profile_day = day
        outcomes.append(outcome)
    return outcomes


def _record_score(
    record: UserRecord,
    request: ScoreRequest,
    snap: SignalSnapshot,
    assessment: RiskAssessment,
    policy: PolicyConfig,
    now: datetime,
    policy_now: datetime,
    activity: CohortActivity | None = None,
    arms: Arms | None = None,
) -> ScoreOutcome:
    record.score_seq += 1
    record.owed = None  # any score pays what was owed: it sees every event folded so far
    update = RiskUpdate(
        update_id=f"{request.user_id}:{record.score_seq}",
        user_id=request.user_id,
        scored_at=now,
        as_of=request.as_of,
        trigger=request.trigger,
        triggered_by_event_time=request.triggered_by_event_time,
        received_at=request.received_at,
        risk_7d=assessment.risk_7d,
        risk_30d=assessment.risk_30d,
        tier=assessment.tier,
        previous_tier=record.tier,
        confidence=assessment.confidence,
        factors=assessment.factors,
        model_version=assessment.model_version,
        signals=snap,
    )
    decision = policy_decision(
        record, request.user_id, assessment, snap, policy, policy_now, request.triggered_by_event_time or request.as_of,
        activity, arms,
    )  # fmt: skip
    record.history = decision.history
    record.tier = assessment.tier
    record.scored_at = now.timestamp()
    record.clock_at = policy_now.timestamp()
    record.last_assessment = assessment.model_dump(mode="json")
    sent = decision.request
    if sent is not None:
        record.last_intervention = sent.model_dump(mode="json")
        if sent.status != "held_out":  # the control group is sent nothing: no exposure to learn from
            at = (sent.send_after or sent.created_at).timestamp()
            record.triggers.sent(sent.intervention_id, sent.intervention_type, at)
    outcome = ScoreOutcome(update, decision)
    _arms_bookkeeping(record, request.user_id, decision, policy_now, outcome)
    return outcome


def _arms_bookkeeping(
    record: UserRecord, user_id: str, decision: Decision, now: datetime, outcome: ScoreOutcome
) -> None:
    """Close the bandit windows this score decides (the student came back, or the window ran out), open one for a
    bandit-chosen request, and make the exposures of the experiments that shaped a request that goes out."""
    if record.arms:
        last = record.state.last_activity
        record.arms, closed = close_windows(record.arms, last, now.timestamp())
        outcome.arm_outcomes = [_arm_outcome(user_id, c) for c in closed]
    sent = decision.request
    if sent is None or sent.status == "held_out":
        return
    choice = decision.choice
    if choice is not None and choice.chosen_by == "bandit" and choice.context is not None:
        at = (sent.send_after or sent.created_at).timestamp()
        where = choice.context
        record.arms.append(Pending(sent.intervention_id, sent.intervention_type.value, where.tier,
                                   where.profile or "", at))  # fmt: skip
        del record.arms[:-MAX_PENDING]
    known = {"tier": sent.tier, "chosen_by": sent.chosen_by}
    outcome.exposures = [exposure(a, sent.created_at, sent.intervention_id, known) for a in decision.shaped]


def _arm_outcome(user_id: str, closed: Closed) -> ArmOutcome:
    p = closed.pending
    return ArmOutcome(
        intervention_id=p.intervention_id,
        user_id=user_id,
        arm=InterventionType(p.arm),
        tier=cast(Tier, p.tier),
        profile=p.profile,
        success=closed.success,
        sent_at=datetime.fromtimestamp(p.sent_at, UTC),
        at=datetime.fromtimestamp(closed.at, UTC),
    )


def outbox_offset(output: list[Any], record: UserRecord) -> int:
    """The offset of the batch an outbox output came from; the record's last batch for outputs kept before
    outputs carried it (what the whole outbox was settled by then)."""
    return int(output[3]) if len(output) > 3 else record.source_offset
