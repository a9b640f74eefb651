"""Which intervention type and send-time strategy a decision uses: an experiment's variant, the bandit, or the policy.

The policy (``processors.policy.decide``) first finds the types it allows now (the tier's list, minus those cooling
down) and whether the student is in its own control group (held out: nothing is sent, so nothing here applies).
For the others, in this order:

1. **Global holdout** (``deploy/policy/experiments.json``): no experiment and no bandit touch the student; the
   policy's first allowed type, sent at the student's best slot (``sto``). This is the baseline every experiment's
   and the bandit's students can be compared with.
2. **An intervention-type experiment** that holds the student (tier, layer slot, coverage): its variant's type if
   the policy allows it now. If the variant's type is cooling down (or not the tier's), the policy chooses as
   without the experiment and no exposure is recorded: the student did not meet the variant this time.
3. **The bandit**, when on: Thompson sampling among the allowed types, in the context (tier, the student's
   learned trigger) - ``processors.experiments.bandit``; seeded by the decision, so a replayed decision picks the
   same type.
4. The policy's first allowed type.

Send time: a send-time experiment that holds the student sets the strategy (``sto``, ``cohort_only``,
``immediate``); otherwise ``sto``. Template: a template experiment whose control is the chosen type's template set
replaces it by its variant's set (``template_set``: what the notification service renders). Exposures are made by
the caller from the assignments returned here, only for requests that go out.

Bandit windows: each bandit-chosen intervention waits in the student's record (``Pending``) until the student is
active after it (a success) or ``window`` passes without that (a failure); ``close_windows`` says which closed.
Pure: no clock, no I/O; the bandit state is read, never written (the worker's learner writes it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from processors.experiments.assignment import Assignment, Reason, assign_surface, in_holdout
from processors.experiments.bandit import BanditConfig, BanditState, Context, choose, decision_rng, record
from processors.experiments.config import ExperimentsConfig
from processors.gamification.rules import GameRules
from schemas.experiments import ArmOutcome, Surface
from schemas.interventions import RETURN_WINDOW_SECONDS, ChosenBy, InterventionType

DEFAULT_STRATEGY = "sto"


@dataclass(frozen=True, slots=True)
class TypeChoice:
    """The type a decision sends, what chose it, and what to record: the experiment's assignment (an exposure) or
    the bandit's context (a pending window)."""

    kind: InterventionType
    chosen_by: ChosenBy
    assignment: Assignment | None = None
    context: Context | None = None


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    strategy: str
    assignment: Assignment | None = None  # set when an experiment's variant chose the strategy


@dataclass(slots=True)
class Arms:
    """The experiments in force and the bandit's posteriors (None: the bandit is off)."""

    experiments: ExperimentsConfig
    bandit: BanditState | None = None
    bandit_config: BanditConfig = field(default_factory=BanditConfig)
    seed: int = 0
    # The XP rules of the running xp_rules experiments' variants, by the file a variant names (loaded by the
    # caller: ``processors.gamification.rules.rules_from_file``). A variant whose file is absent is not applied.
    xp_rules: Mapping[str, GameRules] = field(default_factory=dict)

    def held_out(self, user_id: str) -> bool:
        return in_holdout(self.experiments.holdout, user_id)

    def intervention_type(
        self,
        user_id: str,
        tier: str,
        allowed: Sequence[InterventionType],
        profile: str | None,
        decision_id: str,
    ) -> TypeChoice:
        """The type among ``allowed`` (the policy's order, non-empty) for this decision; see the module docstring."""
        if not allowed:
            raise ValueError("no intervention type allowed: the policy must not ask")
        default = TypeChoice(allowed[0], "policy")
        if self.held_out(user_id):
            return default
        assignment = assign_surface(self.experiments, Surface.intervention_type, user_id, tier)
        if assignment is not None and assignment.reason is Reason.assigned and assignment.variant is not None:
            wanted = assignment.variant.intervention_type
            kind = next((k for k in allowed if k.value == wanted), None)
            return TypeChoice(kind, "experiment", assignment) if kind is not None else default
        if self.bandit is None:
            return default
        context = Context(tier, profile)
        choice = choose(
            self.bandit,
            self.bandit_config,
            allowed_arms=[k.value for k in allowed],
            context=context,
            rng=decision_rng(self.seed, decision_id),
            held_out=False,
        )
        assert choice is not None  # only a held-out decision gets none
        return TypeChoice(InterventionType(choice.arm), "bandit", context=context)

    def send_time_strategy(self, user_id: str, tier: str) -> StrategyChoice:
        if self.held_out(user_id):
            return StrategyChoice(DEFAULT_STRATEGY)
        assignment = assign_surface(self.experiments, Surface.send_time_strategy, user_id, tier)
        if assignment is None or assignment.reason is not Reason.assigned or assignment.variant is None:
            return StrategyChoice(DEFAULT_STRATEGY)
        strategy = assignment.variant.send_time_strategy or DEFAULT_STRATEGY
        return StrategyChoice(strategy, assignment)

    def template(self, user_id: str, tier: str, kind: InterventionType) -> Assignment | None:
        """A template experiment's assignment for a request of ``kind``: one whose control renders ``kind``'s
        template set (its variants replace that set); None when none holds the student."""
        if self.held_out(user_id):
            return None
        for experiment in self.experiments.running(Surface.template):
            if experiment.control.template != kind.value:
                continue
            assignment = assign_surface(self.experiments, Surface.template, user_id, tier)
            if assignment is not None and assignment.reason is Reason.assigned and assignment.experiment is experiment:
                return assignment
        return None


def xp_rules_assignment(arms: Arms, user_id: str, tier: str | None) -> tuple[Assignment, GameRules] | None:
    """The running XP-rules experiment's assignment of this student and the rules its variant prices with; None
    when none holds them (the global holdout, another tier, outside coverage) or the variant's rules are not
    loaded. The worker prices the student's events with those rules and records one exposure per experiment."""
    if arms.held_out(user_id):
        return None
    assignment = assign_surface(arms.experiments, Surface.xp_rules, user_id, tier)
    if assignment is None or assignment.reason is not Reason.assigned or assignment.variant is None:
        return None
    name = assignment.variant.xp_rules
    rules = arms.xp_rules.get(name) if name is not None else None
    return (assignment, rules) if rules is not None else None


def template_set(request_arms: Mapping[str, str], kind: InterventionType, experiments: ExperimentsConfig) -> str:
    """The template set a request is rendered from: a template experiment's variant named in the request's
    ``arms``, else its own type's set. The notification service renders it (``notifications.compose``)."""
    for key, variant_id in request_arms.items():
        experiment = experiments.get(key)
        if experiment is None or experiment.surface is not Surface.template:
            continue
        variant = experiment.variant(variant_id)
        if variant is not None and variant.template is not None:
            return variant.template
    return kind.value


# -- bandit windows, kept in the student's record -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pending:
    """A bandit-chosen intervention waiting for its window to close."""

    intervention_id: str
    arm: str
    tier: str
    profile: str  # '' when the context had no profile bucket
    sent_at: float  # epoch seconds: when it went, or is due to go (deferred)

    def to_list(self) -> list[Any]:
        return [self.intervention_id, self.arm, self.tier, self.profile, self.sent_at]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> Pending:
        return cls(str(row[0]), str(row[1]), str(row[2]), str(row[3]), float(row[4]))


@dataclass(frozen=True, slots=True)
class Closed:
    pending: Pending
    success: bool
    at: float  # the return, or the end of the window


MAX_PENDING = 32  # a student gets a few interventions a week: more is a bug upstream, not memory to spend


def close_windows(
    pending: Sequence[Pending], last_activity: float | None, now: float, window: float = RETURN_WINDOW_SECONDS
) -> tuple[list[Pending], list[Closed]]:
    """Split ``pending`` into still open and closed: a success when the student's last activity is after the send
    and within the window, a failure once ``now`` is past the window without that. Checked on every re-score (the
    silence pass re-scores a student who never comes back, so their window closes too)."""
    still: list[Pending] = []
    closed: list[Closed] = []
    for p in pending:
        end = p.sent_at + window
        if last_activity is not None and p.sent_at < last_activity <= end:
            closed.append(Closed(p, True, last_activity))
        elif now > end:
            closed.append(Closed(p, False, end))
        else:
            still.append(p)
    return still, closed


# -- learning: the bandit's posteriors from the outcomes topic ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one outcome message did: ``learned``, ``duplicate`` (its intervention was counted already), or
    ``refused`` with the reason (the caller dead-letters it)."""

    result: str
    reason: str = ""


class Learner:
    """Folds ``ArmOutcome`` messages into a ``BanditState``, once per intervention, refusing what no decision could
    have produced: a message that is not the contract, or an arm the policy does not offer the outcome's tier (an
    outcome of an exposure that never was: counted and refused, never guessed into another arm)."""

    def __init__(
        self,
        state: BanditState,
        config: BanditConfig,
        offered: Mapping[str, Collection[str]],
        remember: int = 200_000,
    ) -> None:
        self.state = state
        self.config = config
        self.offered = offered  # tier -> the intervention types the policy may send it
        self.remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent intervention ids: re-sent copies

    def fold(self, raw: bytes) -> Verdict:
        try:
            outcome = ArmOutcome.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())
            return Verdict("refused", f"not a bandit outcome: {problems}")
        arms = self.offered.get(outcome.tier, ())
        if outcome.arm.value not in arms:
            offered = ", ".join(sorted(arms)) or "nothing"
            return Verdict(
                "refused",
                f"unknown exposure: intervention {outcome.intervention_id!r} names arm {outcome.arm.value!r}, which "
                f"the policy never offers tier {outcome.tier!r} (it offers {offered})",
            )
        if outcome.intervention_id in self._seen:
            return Verdict("duplicate")
        self._seen[outcome.intervention_id] = None
        if len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        context = Context(outcome.tier, outcome.profile or None)
        record(self.state, self.config, context=context, arm=outcome.arm.value, success=outcome.success)
        return Verdict("learned")
