"""The gamification rules file: XP per event, the level curve and the achievements, as configuration.

``deploy/policy/gamification.json`` (beside the intervention policy) is loaded into ``GameRules`` and checked as a
whole before any worker uses it: an unknown event type or field, a negative XP value, a duplicate id, a rule whose
conditions can never hold together, or achievements that require each other in a circle are refused with a
message naming the rule and the field, and a running worker keeps the rules it had (``RulesProvider``).

Matching an event: ``event_type`` is one of the contract's event types, or ``"active"`` for any event that makes
a day active (``processors.streaks.ACTIVE_EVENT_TYPES``); every ``when`` condition compares a numeric payload field
of that type (or ``score_pct``, a quiz's score as a percentage of its maximum) with a number.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from processors.streaks import ACTIVE_EVENT_TYPES
from schemas.events import COURSE_REQUIRED, PAYLOAD_MODELS

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "gamification.json"
ACTIVE = "active"
Op = Literal[">=", ">", "<=", "<", "=="]
RuleId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


def numeric_fields(event_type: str) -> frozenset[str]:
    """The payload fields a condition may test for ``event_type`` (numbers only; ``score_pct`` for quizzes)."""
    if event_type == ACTIVE:
        return frozenset()
    fields = {
        name
        for name, info in PAYLOAD_MODELS[event_type].model_fields.items()
        if any(t in repr(info.annotation) for t in ("float", "int", "Seconds", "Percent", "Count"))
    }
    if event_type == "quiz_submitted":
        fields.add("score_pct")
    return frozenset(fields)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    field: str
    op: Op
    value: float

    def holds(self, x: float) -> bool:
        op = self.op
        if op == ">=":
            return x >= self.value
        if op == ">":
            return x > self.value
        if op == "<=":
            return x <= self.value
        if op == "<":
            return x < self.value
        return x == self.value


class EventFilter(_Strict):
    """Which events a rule counts: a type and conditions on its payload (all must hold)."""

    event_type: str
    when: tuple[Condition, ...] = ()

    def problems(self) -> list[str]:
        """What is wrong with the filter (for the rule's error message); empty when it is sound."""
        known = set(PAYLOAD_MODELS) | {ACTIVE}
        if self.event_type not in known:
            return [f"event_type: unknown event type {self.event_type!r} (known: {', '.join(sorted(known))})"]
        out = []
        allowed = numeric_fields(self.event_type)
        for c in self.when:
            if c.field not in allowed:
                out.append(
                    f"when.field: {c.field!r} is not a numeric field of {self.event_type} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'none'})"
                )
        for name in {c.field for c in self.when}:
            if not _satisfiable([c for c in self.when if c.field == name]):
                out.append(f"when: the conditions on {name!r} contradict each other (no value meets them all)")
        return out


def _satisfiable(conditions: list[Condition]) -> bool:
    """Whether some number meets every condition (an interval that is not empty)."""
    lo, lo_open, hi, hi_open = -math.inf, False, math.inf, False
    for c in conditions:
        if c.op in (">=", ">", "=="):
            open_ = c.op == ">"
            if c.value > lo or (c.value == lo and open_):
                lo, lo_open = c.value, open_
        if c.op in ("<=", "<", "=="):
            open_ = c.op == "<"
            if c.value < hi or (c.value == hi and open_):
                hi, hi_open = c.value, open_
    return lo < hi or (lo == hi and not lo_open and not hi_open)


class XpRule(_Strict):
    """XP for each matching event, at most ``daily_cap`` awards a local day (None: no cap)."""

    id: RuleId
    match: EventFilter
    xp: int = Field(description="XP per award before the streak multiplier")
    daily_cap: int | None = Field(None, description="awards of this rule per student and local day")
    streak_multiplier: bool = Field(True, description="whether the streak multiplier applies")
    once_per_course: bool = Field(False, description="at most one award per course, ever (course completion)")


class StreakMultiplier(_Strict):
    """A streak of ``every_days`` active days adds ``step`` to the multiplier, up to ``max``."""

    every_days: int = Field(7, ge=1)
    step: float = Field(0.1, ge=0)
    max: float = Field(1.5, ge=1)

    def at(self, streak_days: int) -> float:
        return min(self.max, 1.0 + self.step * (streak_days // self.every_days))


class LevelCurve(_Strict):
    """XP needed to reach level L: ``round(base * (L - 1) ** exponent)`` (``processors.gamification.levels``)."""

    base: int = Field(100, ge=1)
    exponent: float = Field(1.5, ge=1.0, le=4.0)
    max_level: int = Field(100, ge=2, le=1000)


class _Achievement(_Strict):
    id: RuleId
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(min_length=1, max_length=300)


class CountAchievement(_Achievement):
    """Matching events, all time, reach each tier (a tier of 1 is a 'first time')."""

    kind: Literal["count"]
    match: EventFilter
    tiers: tuple[int, ...] = Field(min_length=1)


class StreakAchievement(_Achievement):
    """A streak (PRODUCT.md §3 rules, freezes included) reaches each tier of active days."""

    kind: Literal["streak"]
    tiers: tuple[int, ...] = Field(min_length=1)


class InARowAchievement(_Achievement):
    """``match`` events in a row, in the order they arrive, without a ``breaks`` event between (e.g. quizzes
    passed, broken by a quiz failed)."""

    kind: Literal["in_a_row"]
    match: EventFilter
    breaks: EventFilter
    tiers: tuple[int, ...] = Field(min_length=1)


class WithinAchievement(_Achievement):
    """``count`` matching events within ``days`` consecutive local days."""

    kind: Literal["within"]
    match: EventFilter
    count: int = Field(ge=1)
    days: int = Field(ge=1, le=31)


class ComebackAchievement(_Achievement):
    """Active again after ``after_days`` or more days without activity."""

    kind: Literal["comeback"]
    after_days: int = Field(ge=1, le=365)


class LevelAchievement(_Achievement):
    kind: Literal["level"]
    level: int = Field(ge=2)


class AllOfAchievement(_Achievement):
    """Every listed achievement unlocked (ids as unlocked: a tier of a tiered one is '{id}.{tier}')."""

    kind: Literal["all_of"]
    requires: tuple[str, ...] = Field(min_length=1)


Achievement = Annotated[
    CountAchievement
    | StreakAchievement
    | InARowAchievement
    | WithinAchievement
    | ComebackAchievement
    | LevelAchievement
    | AllOfAchievement,
    Field(discriminator="kind"),
]


def unlock_ids(a: Achievement) -> list[str]:
    """The achievement ids a rule can unlock: '{id}.{tier}' for each tier of a tiered rule, else its id."""
    tiers = getattr(a, "tiers", None)
    if tiers is not None and len(tiers) > 1:
        return [f"{a.id}.{t}" for t in tiers]
    return [a.id]


class GameRules(_Strict):
    """The whole rules file. ``version`` goes into every award and unlock, so analysts can tell rule sets apart."""

    version: int = Field(ge=1)
    xp: tuple[XpRule, ...] = ()
    streak_multiplier: StreakMultiplier | None = Field(default_factory=StreakMultiplier)
    streak_milestone_xp: dict[int, int] = Field(
        default_factory=dict, description="bonus XP when a streak run reaches 7, 14, 30, 100 or 365 days"
    )
    levels: LevelCurve = Field(default_factory=LevelCurve)
    achievements: tuple[Achievement, ...] = ()

    @model_validator(mode="after")
    def _sound(self) -> GameRules:
        problems: list[str] = []
        seen: set[str] = set()
        for i, r in enumerate(self.xp):
            where = f"xp[{i}] ({r.id})"
            if r.id in seen:
                problems.append(f"{where}: id: duplicate XP rule id {r.id!r}")
            seen.add(r.id)
            if r.xp < 0:
                problems.append(f"{where}: xp: XP cannot be negative ({r.xp})")
            if r.daily_cap is not None and r.daily_cap < 1:
                problems.append(f"{where}: daily_cap: must be at least 1 (leave it out for no cap)")
            problems += [f"{where}: match.{p}" for p in r.match.problems()]
            if r.once_per_course and r.match.event_type not in COURSE_REQUIRED:
                problems.append(f"{where}: once_per_course: {r.match.event_type} events carry no course_id")
        for days, xp in self.streak_milestone_xp.items():
            if xp < 0:
                problems.append(f"streak_milestone_xp[{days}]: XP cannot be negative ({xp})")
        ids: dict[str, str] = {}
        for i, a in enumerate(self.achievements):
            where = f"achievements[{i}] ({a.id})"
            for uid in unlock_ids(a):
                if uid in ids:
                    problems.append(f"{where}: id: duplicate achievement id {uid!r} (also {ids[uid]})")
                ids[uid] = where
            tiers = getattr(a, "tiers", None)
            if tiers is not None and (any(t < 1 for t in tiers) or list(tiers) != sorted(set(tiers))):
                problems.append(f"{where}: tiers: must be positive and strictly increasing, got {list(tiers)}")
            for name in ("match", "breaks"):
                f = getattr(a, name, None)
                if f is not None:
                    problems += [f"{where}: {name}.{p}" for p in f.problems()]
            if isinstance(a, InARowAchievement) and a.match == a.breaks:
                problems.append(f"{where}: breaks: the same filter as match, so no run could ever grow")
            if isinstance(a, LevelAchievement) and a.level > self.levels.max_level:
                problems.append(f"{where}: level: {a.level} is above levels.max_level ({self.levels.max_level})")
        for i, a in enumerate(self.achievements):
            if isinstance(a, AllOfAchievement):
                for needed in a.requires:
                    if needed not in ids:
                        problems.append(f"achievements[{i}] ({a.id}): requires: unknown achievement {needed!r}")
        cycle = _cycle(self.achievements)
        if cycle:
            problems.append(f"achievements: requires forms a cycle: {' -> '.join(cycle)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def achievement_names(self) -> dict[str, tuple[str, str]]:
        """Unlock id -> (name, description); a tier's name says the tier."""
        out = {}
        for a in self.achievements:
            tiers = getattr(a, "tiers", None)
            for uid in unlock_ids(a):
                name = a.name
                if tiers is not None and len(tiers) > 1:
                    name = f"{a.name} ({uid.rsplit('.', 1)[1]})"
                out[uid] = (name, a.description)
        return out


def _cycle(achievements: tuple[Achievement, ...]) -> list[str]:
    """A circle of all_of requirements (ids in order, the first repeated at the end), or []."""
    edges = {a.id: list(a.requires) for a in achievements if isinstance(a, AllOfAchievement)}
    state: dict[str, int] = {}  # 1 visiting, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in edges.get(node, ()):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for node in edges:
        if state.get(node) is None and (found := visit(node)):
            return found
    return []


class RulesError(ValueError):
    """A rules file that cannot be used, with every problem named."""


def parse_rules(text: str, source: str = "rules") -> GameRules:
    try:
        return GameRules.model_validate_json(text)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(file)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise RulesError(f"{source}: {details}") from None


def rules_from_file(path: str | Path = DEFAULT_RULES_PATH) -> GameRules:
    p = Path(path)
    return parse_rules(p.read_text(encoding="utf-8"), str(p))


def is_active_type(event_type: Any) -> bool:
    return event_type in ACTIVE_EVENT_TYPES
