"""A Thompson-sampling bandit that picks an intervention type (or a template id) per decision. No I/O.

Arms are plain strings. The caller passes, per decision, the arms the policy allows for the student's tier
(``processors.policy``: ``PolicyConfig.tiers[tier].intervention_types``, or a type's template ids); the bandit
never picks anything else.

Posteriors: one Beta per context x arm, kept as counts of successes and failures on top of a ``Beta(prior)``.
Contexts form a chain, from the widest to the narrowest:

- ``*``: every decision (the only level when ``contextual`` is off);
- ``<tier>``: the student's risk tier;
- ``<tier>/<profile>``: the tier and a profile bucket the caller names (for example the student's learned top
  motivation trigger, or ``"unknown"``). ``profile=None`` stops the chain at the tier.

Back-off (how a context with little data borrows from the wider ones): the posterior of a level is its own
counts on top of a prior made from the level above, and that prior carries at most ``backoff_strength``
pseudo-observations: ``Beta(a0 + k*m, b0 + k*(1 - m))`` where ``m`` is the wider level's posterior mean and
``k = min(its evidence, backoff_strength)``. The wider level's counts exclude the narrower one's (all levels
see every outcome, so the tier minus the bucket is "the other students of this tier"): no outcome is counted
twice. So an empty context samples around its tier's mean, a little wider than the tier itself (exploration
where it is cheap), and its own data outweighs the tier's as soon as it has more than ``backoff_strength``
outcomes. The default (5) is small on purpose: ``engage bench bandit`` found stronger back-off (20, 100) slightly
worse (+0.05 to +0.2 pp regret per decision), because a bucket exists precisely where its best arm differs from
the tier's, so the tier is a biased guide; 5 was as good as none (0) while a new or evicted bucket still starts
from the tier's experience instead of a flat prior.

Reward: ``returned_within_7d`` is a success, ``not_returned_within_7d`` a failure (the notification service
emits one of them for every intervention once its 7-day window closes, held-out ones included). Opens and
clicks are deliberately not rewards: they measure the message, not the student coming back (a teasing template
wins on opens and may lose on returns), opens are unreliable (mail privacy proxies open everything, in-app
messages are "opened" by being shown), and they differ by channel, which the arm is not. ``reward_of`` maps an
``OutcomeKind`` to ``True`` / ``False`` / ``None`` (not a reward).

Reproducibility: ``choose`` takes a ``random.Random``; ``decision_rng(seed, decision_id)`` builds one from the
decision id (the intervention id), so replaying a decision on the same state picks the same arm.

Holdout: decided by the caller (``processors.policy.in_holdout``, the same global holdout every experiment
respects). ``choose(..., held_out=True)`` returns ``None`` without drawing: a held-out student is never assigned an
arm, and their outcomes must not be recorded as any arm's (they measure the no-intervention baseline).

Bound: at most ``max_contexts`` contexts (the least recently updated ``<tier>/<profile>`` ones are evicted first;
their outcomes stay in the tier and global counts) and ``max_arms`` arms per context (one more is refused).

Decay: none by default. ``decay(state, factor)`` multiplies every count by ``factor``; a caller that wants a
bandit to follow drifting preferences calls it once per period (0.98 a day keeps a ~50-day memory).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.interventions import OutcomeKind

STATE_VERSION = 1
GLOBAL = "*"
SEPARATOR = "/"
MAX_LABEL = 64  # characters of a tier, a profile bucket or an arm


class BanditConfig(BaseModel):
    """The bandit's knobs; the defaults are what ``engage bench bandit`` measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prior_successes: float = Field(1.0, gt=0, description="Beta prior alpha of every arm (1, 1: uniform)")
    prior_failures: float = Field(1.0, gt=0, description="Beta prior beta of every arm")
    contextual: bool = Field(True, description="posteriors per tier and per tier/profile, backing off to wider ones")
    backoff_strength: float = Field(
        5.0, ge=0, description="at most this many pseudo-observations a context inherits from the wider one"
    )
    max_contexts: int = Field(4096, ge=1, description="bound of the state; least recently updated buckets go first")
    max_arms: int = Field(64, ge=1, description="arms per context; one more is refused")


@dataclass(frozen=True, slots=True)
class Context:
    """Where a decision is made: the student's risk tier and, optionally, a profile bucket named by the caller."""

    tier: str
    profile: str | None = None

    def __post_init__(self) -> None:
        _check_label("tier", self.tier)
        if self.profile is not None:
            _check_label("profile bucket", self.profile)

    def keys(self, contextual: bool) -> tuple[str, ...]:
        """The context chain, widest first."""
        if not contextual:
            return (GLOBAL,)
        if self.profile is None:
            return (GLOBAL, self.tier)
        return (GLOBAL, self.tier, f"{self.tier}{SEPARATOR}{self.profile}")


def _check_label(what: str, value: str) -> None:
    if not value or len(value) > MAX_LABEL or SEPARATOR in value or value == GLOBAL:
        raise ValueError(
            f"{what} {value!r} is not a label: 1 to {MAX_LABEL} characters, without {SEPARATOR!r}, not {GLOBAL!r}"
        )


@dataclass(slots=True)
class _Counts:
    arms: dict[str, list[float]] = field(default_factory=dict)  # arm -> [successes, failures]
    touched: int = 0  # the state's tick at the last update, for eviction


@dataclass(slots=True)
class BanditState:
    """Counts per context x arm; JSON via ``to_dict`` / ``from_dict``. Mutated in place by ``record`` and ``decay``."""

    contexts: dict[str, _Counts] = field(default_factory=dict)
    tick: int = 0

    def counts(self, key: str, arm: str) -> tuple[float, float]:
        entry = self.contexts.get(key)
        if entry is None:
            return 0.0, 0.0
        s, f = entry.arms.get(arm, (0.0, 0.0))
        return s, f

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "tick": self.tick,
            "contexts": {
                key: {"touched": c.touched, "arms": {arm: [s, f] for arm, (s, f) in c.arms.items()}}
                for key, c in self.contexts.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], config: BanditConfig | None = None) -> BanditState:
        """Rebuild a state; a malformed document or one over ``config``'s bounds is refused with the reason."""
        config = config or BanditConfig()
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"bandit state version {data.get('version')!r} is not {STATE_VERSION}")
        tick = data.get("tick")
        raw = data.get("contexts")
        if not isinstance(tick, int) or tick < 0 or not isinstance(raw, Mapping):
            raise ValueError("bandit state needs a non-negative int 'tick' and a 'contexts' object")
        if len(raw) > config.max_contexts:
            raise ValueError(f"bandit state holds {len(raw)} contexts, more than max_contexts={config.max_contexts}")
        state = cls(tick=tick)
        for key, entry in raw.items():
            arms = entry.get("arms") if isinstance(entry, Mapping) else None
            touched = entry.get("touched") if isinstance(entry, Mapping) else None
            if not isinstance(arms, Mapping) or not isinstance(touched, int):
                raise ValueError(f"bandit context {key!r} needs 'arms' and an int 'touched'")
            if len(arms) > config.max_arms:
                raise ValueError(f"bandit context {key!r} has {len(arms)} arms, more than max_arms={config.max_arms}")
            counts = _Counts(touched=touched)
            for arm, pair in arms.items():
                if (
                    not isinstance(pair, Sequence)
                    or len(pair) != 2
                    or not all(isinstance(x, int | float) and x >= 0 for x in pair)
                ):
                    raise ValueError(f"bandit context {key!r} arm {arm!r}: counts must be [successes, failures] >= 0")
                counts.arms[arm] = [float(pair[0]), float(pair[1])]
            state.contexts[key] = counts
        return state


@dataclass(frozen=True, slots=True)
class Choice:
    """The arm picked, the context it was picked in, and per allowed arm the draw and the posterior mean."""

    arm: str
    context_key: str
    draws: dict[str, float]
    means: dict[str, float]


def decision_rng(seed: int, decision_id: str) -> random.Random:
    """A generator for one decision: the same seed and decision id give the same draws on every machine."""
    digest = hashlib.blake2b(f"{seed}\x1f{decision_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def posterior(state: BanditState, config: BanditConfig, context: Context, arm: str) -> tuple[float, float]:
    """Beta(alpha, beta) of ``arm`` at the narrowest level of ``context``, backed off to the wider levels."""
    keys = context.keys(config.contextual)
    raw = [state.counts(key, arm) for key in keys]
    a0, b0 = config.prior_successes, config.prior_failures
    alpha, beta = a0, b0
    for i, (s, f) in enumerate(raw):
        if i + 1 < len(raw):  # this level's own outcomes, without those the narrower level holds
            s, f = max(0.0, s - raw[i + 1][0]), max(0.0, f - raw[i + 1][1])
        if i > 0:  # the prior of this level: the wider level's posterior, worth at most backoff_strength outcomes
            mean = alpha / (alpha + beta)
            k = min(alpha + beta - a0 - b0, config.backoff_strength)
            alpha, beta = a0 + k * mean, b0 + k * (1 - mean)
        alpha, beta = alpha + s, beta + f
    return alpha, beta


def choose(
    state: BanditState,
    config: BanditConfig,
    *,
    allowed_arms: Sequence[str],
    context: Context,
    rng: random.Random,
    held_out: bool,
) -> Choice | None:
    """Thompson sampling among ``allowed_arms``: one draw per arm from its posterior, the highest wins (ties go to
    the earlier arm). ``None`` for a held-out student, without touching ``rng``."""
    if not allowed_arms:
        raise ValueError(f"no arms allowed for tier {context.tier!r}: the caller must not ask the bandit")
    if len(set(allowed_arms)) != len(allowed_arms):
        raise ValueError(f"allowed arms repeat: {list(allowed_arms)}")
    for arm in allowed_arms:
        _check_label("arm", arm)
    if held_out:
        return None
    draws: dict[str, float] = {}
    means: dict[str, float] = {}
    for arm in allowed_arms:
        alpha, beta = posterior(state, config, context, arm)
        draws[arm] = rng.betavariate(alpha, beta)
        means[arm] = alpha / (alpha + beta)
    best = max(allowed_arms, key=lambda arm: draws[arm])  # max keeps the first of equal draws
    return Choice(arm=best, context_key=context.keys(config.contextual)[-1], draws=draws, means=means)


def record(state: BanditState, config: BanditConfig, *, context: Context, arm: str, success: bool) -> None:
    """Count one outcome of ``arm`` at every level of ``context`` (its window closed: returned or not)."""
    _check_label("arm", arm)
    state.tick += 1
    for key in context.keys(config.contextual):
        entry = state.contexts.get(key)
        if entry is None:
            _make_room(state, config, key)
            entry = state.contexts[key] = _Counts()
        pair = entry.arms.get(arm)
        if pair is None:
            if len(entry.arms) >= config.max_arms:
                raise ValueError(f"context {key!r} already has max_arms={config.max_arms} arms; {arm!r} refused")
            pair = entry.arms[arm] = [0.0, 0.0]
        pair[0 if success else 1] += 1.0
        entry.touched = state.tick


def _make_room(state: BanditState, config: BanditConfig, new_key: str) -> None:
    if len(state.contexts) < config.max_contexts:
        return
    buckets = [key for key in state.contexts if SEPARATOR in key]
    if not buckets:
        raise ValueError(
            f"bandit state is full (max_contexts={config.max_contexts}) with tiers alone; cannot add {new_key!r}"
        )
    del state.contexts[min(buckets, key=lambda key: state.contexts[key].touched)]


def decay(state: BanditState, factor: float) -> None:
    """Multiply every count by ``factor`` (0 < factor <= 1): older outcomes weigh less. Optional; not used by
    default."""
    if not 0 < factor <= 1:
        raise ValueError(f"decay factor must be in (0, 1], got {factor}")
    for entry in state.contexts.values():
        for pair in entry.arms.values():
            pair[0] *= factor
            pair[1] *= factor


def reward_of(outcome: OutcomeKind | str) -> bool | None:
    """The bandit's reward for an outcome: returned -> True, not returned -> False, anything else -> None."""
    kind = OutcomeKind(outcome)
    if kind is OutcomeKind.returned_within_7d:
        return True
    if kind is OutcomeKind.not_returned_within_7d:
        return False
    return None
