"""What every student's numbers must be, computed from the sent events alone, without the pipeline's code.

The chaos verifier compares the live system against these. They are written from the rules in PRODUCT.md §3
(and ``processors.signals`` / ``processors.streaks`` docstrings) as a plain day-by-day walk, not by calling the
processors, so a bug in either shows up as a difference. Pure: no I/O.

Gamification (PRODUCT.md §7, the rules in ``processors.gamification.engine``'s docstring) is walked the same way,
from the rules file alone (``GameRules`` is only read as data): XP, level and the unlocked achievements per student.
Where the engine follows arrival order, this walk takes the send order as the arrival order, which holds when
a student's events reach Kafka in the order sent. That is what these assume, and where a sender cannot promise it,
``unordered`` names the events that may arrive in any order among themselves (the chaos feed sends a student's
batches of one day over several connections at once); a result that could then come out either way is listed in
``Expected.unsure`` and the verifier skips that one check for that student, and counts the skip:
- the streak multiplier is the streak on the event's local day as known when it arrives: here, over the active
  days sent up to it (a day sent later but earlier in time cannot raise it). Unsure when the lowest and highest
  streak an unordered group allows give two multipliers; then XP, level and level achievements are unsure.
- ``in_a_row`` runs go in send order; unsure when a group holds both a run's event and a breaking one.
- a comeback is a gap of ``after_days`` between consecutive active days; reordered, a later day can arrive before
  the one filling the gap and open a gap that the sent days do not have: unsure then.
- an event more than ``CAP_DAYS`` local days older than the newest sent before it earns no capped XP; this
  assumes no batch a client sends spans more than that (the newest day is the engine's per batch). Groups
  spanning more than two local days make XP unsure outright (milestones of runs merged by a late day).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from processors.gamification.rules import (
    AllOfAchievement,
    ComebackAchievement,
    CountAchievement,
    EventFilter,
    GameRules,
    InARowAchievement,
    LevelAchievement,
    LevelCurve,
    StreakAchievement,
    StreakMultiplier,
    WithinAchievement,
)

ACTIVE_TYPES = frozenset(
    {"login", "session_started", "lesson_started", "lesson_completed", "course_progress", "quiz_submitted",
     "content_viewed"}
)  # fmt: skip
MILESTONES = (7, 14, 30, 100, 365)
FREEZE_EVERY = 7
MAX_FREEZES = 2
WINDOW_DAYS = 30
CAP_DAYS = 8  # local days a capped rule still pays for behind the newest day (the engine's CAP_DAYS)
XP = "xp"  # the name ``Expected.unsure`` gives the XP total (and with it the level and level achievements)


@dataclass
class Expected:
    """One student's numbers as the sent events define them (as of ``today`` in the student's zone)."""

    events: int = 0  # distinct event ids
    logins: int = 0  # 'login' events
    sessions: int = 0  # 'session_started' events
    lessons_completed: int = 0
    quizzes: int = 0  # 'quiz_submitted' with a positive max_score
    active_days_30d: int = 0  # local days
    current_streak: int = 0
    longest_streak: int = 0
    milestones: tuple[int, ...] = ()  # streak milestones reached, sorted: once per run, so 7 may appear twice
    utc_active_days: int = 0  # UTC days with an active event (what the daily activity table groups by)
    local_active: set[int] = field(default_factory=set, repr=False)  # local day ordinals
    xp: int = 0
    level: int = 1
    achievements: tuple[str, ...] = ()  # unlock ids ('{id}.{tier}' for a tier of a tiered rule), sorted
    unsure: frozenset[str] = frozenset()  # XP and unlock ids an unordered arrival could change (see the docstring)


@dataclass(frozen=True)
class StreakWalk:
    current: int
    longest: int
    milestones: tuple[int, ...]  # every milestone every run reached, sorted


def walk_streak(active: set[int], today: int) -> StreakWalk:
    """Streaks from the set of active local days (ordinals), walking every day up to ``today``.

    A run counts active days; every 7th consecutive active day earns a freeze (at most 2 held, a day a freeze
    covers restarts the count); each missed day spends one; a missed day with none left ends the run. Today
    is never missed. Milestones count once per run.
    """
    run = consecutive = freezes = longest = 0
    alive = False
    reached: list[int] = []
    for day in range(min(active), today + 1) if active else ():
        if day in active:
            if not alive:
                run = consecutive = freezes = 0
                alive = True
            run += 1
            consecutive += 1
            if consecutive % FREEZE_EVERY == 0:
                freezes = min(MAX_FREEZES, freezes + 1)
            if run in MILESTONES:
                reached.append(run)
            longest = max(longest, run)
        elif day < today and alive:
            if freezes:
                freezes -= 1
                consecutive = 0
            else:
                alive = False
    return StreakWalk(run if alive else 0, longest, tuple(sorted(reached)))


def expected_by_user(
    events: Iterable[Mapping[str, Any]],
    now: datetime,
    rules: GameRules | None = None,
    unordered: Iterable[Iterable[str]] = (),
) -> dict[str, Expected]:
    """Per student: the numbers the events define. Repeated event ids count once (the first one sent).

    ``events`` in the order they were sent; with ``rules``, the gamification too, taking ``unordered`` (groups of
    event ids that may arrive in any order among themselves) into account as the module docstring says."""
    group_of = {event_id: g for g, ids in enumerate(unordered) for event_id in ids}
    seen: set[str] = set()
    by_user: dict[str, Expected] = {}
    zones: dict[str, ZoneInfo] = {}
    utc_days: dict[str, set[date]] = {}
    sent: dict[str, list[Sent]] = {}
    for ev in events:
        event_id = str(ev["event_id"])
        if event_id in seen:
            continue
        seen.add(event_id)
        user = str(ev["user_id"])
        exp = by_user.setdefault(user, Expected())
        exp.events += 1
        kind = ev["event_type"]
        exp.logins += kind == "login"
        exp.sessions += kind == "session_started"
        exp.lessons_completed += kind == "lesson_completed"
        if kind == "quiz_submitted" and float((ev.get("payload") or {}).get("max_score") or 0) > 0:
            exp.quizzes += 1
        at = datetime.fromisoformat(str(ev["event_time"]))
        zone = zones.setdefault(user, ZoneInfo(str(ev.get("timezone") or "UTC")))
        day = at.astimezone(zone).date().toordinal()
        if kind in ACTIVE_TYPES:
            exp.local_active.add(day)
            utc_days.setdefault(user, set()).add(at.astimezone(UTC).date())
        if rules is not None:
            sent.setdefault(user, []).append(Sent(ev, day, group_of.get(event_id, -1)))
    for user, exp in by_user.items():
        today = now.astimezone(zones.get(user, ZoneInfo("UTC"))).date().toordinal()
        walk = walk_streak(exp.local_active, today)
        exp.current_streak, exp.longest_streak, exp.milestones = walk.current, walk.longest, walk.milestones
        exp.active_days_30d = sum(1 for d in exp.local_active if today - WINDOW_DAYS < d <= today)
        exp.utc_active_days = len(utc_days.get(user, ()))
        if rules is not None:
            game = play_reference(sent[user], rules)
            exp.xp, exp.level, exp.achievements, exp.unsure = game.xp, game.level, game.achievements, game.unsure
    return by_user


# --- gamification ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One accepted event of a student, in send order: its local day and its unordered group (-1: none)."""

    event: Mapping[str, Any]
    day: int
    group: int = -1

    @property
    def active(self) -> bool:
        return self.event.get("event_type") in ACTIVE_TYPES


@dataclass(frozen=True)
class Game:
    xp: int
    level: int
    achievements: tuple[str, ...]
    unsure: frozenset[str]


def _number(ev: Mapping[str, Any], name: str) -> float | None:
    """A numeric payload field; ``score_pct`` is a quiz's score in percent of its maximum."""
    payload = ev.get("payload")
    if not isinstance(payload, Mapping):
        return None
    if name == "score_pct":
        score, top = _number(ev, "score"), _number(ev, "max_score")
        return 100.0 * score / top if score is not None and top is not None and top > 0 else None
    value = payload.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda x, v: x >= v,
    ">": lambda x, v: x > v,
    "<=": lambda x, v: x <= v,
    "<": lambda x, v: x < v,
    "==": lambda x, v: x == v,
}


def _matches(f: EventFilter, ev: Mapping[str, Any]) -> bool:
    kind = ev.get("event_type")
    if not (kind in ACTIVE_TYPES if f.event_type == "active" else kind == f.event_type):
        return False
    for c in f.when:
        x = _number(ev, c.field)
        if x is None or not _OPS[c.op](x, c.value):
            return False
    return True


def _multiplier(m: StreakMultiplier | None, streak_days: int) -> float:
    """1 plus ``step`` for every ``every_days`` days of streak, at most ``max``."""
    return 1.0 if m is None else min(m.max, 1.0 + m.step * (streak_days // m.every_days))


def _level(xp: int, curve: LevelCurve) -> int:
    """The highest level L whose XP, round(base * (L - 1) ** exponent), has been reached."""
    level = 1
    while level < curve.max_level and xp >= round(curve.base * level**curve.exponent):
        level += 1
    return level


def _tier_ids(rule_id: str, tiers: tuple[int, ...]) -> list[tuple[int, str]]:
    return [(t, f"{rule_id}.{t}" if len(tiers) > 1 else rule_id) for t in tiers]


def _streak_on(days: Iterable[int], day: int) -> int:
    """The streak on local ``day`` from the active days known: ``walk_streak`` over the days up to it."""
    return walk_streak({d for d in days if d <= day}, day).current


def play_reference(events: Sequence[Sent], rules: GameRules) -> Game:
    """One student's XP, level and unlocked achievements from their accepted events (in send order)."""
    xp = 0
    caps: Counter[tuple[str, int]] = Counter()
    once: set[tuple[str, str]] = set()
    known: set[int] = set()  # active days sent so far
    streaks: dict[tuple[int, int], int] = {}  # (day, days known) -> streak on the day (the set only grows)
    newest = 0
    for s in events:
        ev, day = s.event, s.day
        newest = max(newest, day)
        if s.active:
            known.add(day)
        course = ev.get("course_id") if isinstance(ev.get("course_id"), str) else ""
        for rule in rules.xp:
            if not _matches(rule.match, ev):
                continue
            if rule.once_per_course and (not course or (rule.id, str(course)) in once):
                continue
            if rule.daily_cap is not None:
                if day < newest - CAP_DAYS or caps[rule.id, day] >= rule.daily_cap:
                    continue
                caps[rule.id, day] += 1
            if rule.once_per_course:
                once.add((rule.id, str(course)))
            mult = 1.0
            if rules.streak_multiplier is not None and rule.streak_multiplier:
                key = (day, len(known))
                if key not in streaks:
                    streaks[key] = _streak_on(known, day)
                mult = _multiplier(rules.streak_multiplier, streaks[key])
            xp += max(0, int(rule.xp * mult + 0.5))
    walk = walk_streak(known, max(known, default=0))
    xp += sum(rules.streak_milestone_xp.get(m, 0) for m in walk.milestones)
    level = _level(xp, rules.levels)
    unlocked = _achievements(events, rules, known, walk.longest, level)
    return Game(xp, level, tuple(sorted(unlocked)), _unsure(events, rules, unlocked))


def _achievements(events: Sequence[Sent], rules: GameRules, active: set[int], longest: int, level: int) -> set[str]:
    """Each kind from its description in ``processors.gamification.rules``, over the whole history."""
    out: set[str] = set()
    days = sorted(active)
    for a in rules.achievements:
        if isinstance(a, CountAchievement):
            n = sum(1 for s in events if _matches(a.match, s.event))
            out |= {uid for tier, uid in _tier_ids(a.id, a.tiers) if n >= tier}
        elif isinstance(a, StreakAchievement):
            out |= {uid for tier, uid in _tier_ids(a.id, a.tiers) if longest >= tier}
        elif isinstance(a, InARowAchievement):
            run = best = 0
            for s in events:
                if _matches(a.match, s.event):
                    run += 1
                    best = max(best, run)
                elif _matches(a.breaks, s.event):
                    run = 0
            out |= {uid for tier, uid in _tier_ids(a.id, a.tiers) if best >= tier}
        elif isinstance(a, WithinAchievement):
            per_day = Counter(s.day for s in events if _matches(a.match, s.event))
            if any(sum(per_day[d] for d in range(start, start + a.days)) >= a.count for start in per_day):
                out.add(a.id)  # a window that holds count events can start on its first one's day
        elif isinstance(a, ComebackAchievement):
            if any(later - earlier - 1 >= a.after_days for earlier, later in pairwise(days)):
                out.add(a.id)
        elif isinstance(a, LevelAchievement) and level >= a.level:
            out.add(a.id)
    return out | _all_of(rules, out)


def _all_of(rules: GameRules, unlocked: set[str]) -> set[str]:
    """The all_of achievements ``unlocked`` completes (one may require another)."""
    out = set(unlocked)
    grew = True
    while grew:
        grew = False
        for a in rules.achievements:
            if isinstance(a, AllOfAchievement) and a.id not in out and set(a.requires) <= out:
                out.add(a.id)
                grew = True
    return out - unlocked


def _unsure(events: Sequence[Sent], rules: GameRules, unlocked: set[str]) -> frozenset[str]:
    """What an unordered group of events could change (see the module docstring), as ``Expected.unsure``."""
    out: set[str] = set()
    first: dict[int, int] = {}
    for i, s in enumerate(events):
        if s.group >= 0:
            first.setdefault(s.group, i)
    for g, start in first.items():
        before = {s.day for s in events[:start] if s.active}
        members = [s for s in events if s.group == g]
        inside = {s.day for s in members if s.active}
        if max(s.day for s in members) - min(s.day for s in members) > 1:
            out.add(XP)
        for s in members:
            if rules.streak_multiplier is None or not any(
                r.streak_multiplier and _matches(r.match, s.event) for r in rules.xp
            ):
                continue
            low = _streak_on(before | ({s.day} if s.active else set()), s.day)
            high = _streak_on(before | inside, s.day)
            if _multiplier(rules.streak_multiplier, low) != _multiplier(rules.streak_multiplier, high):
                out.add(XP)
        for a in rules.achievements:
            if isinstance(a, InARowAchievement):
                if any(_matches(a.match, s.event) for s in members) and any(
                    _matches(a.breaks, s.event) and not _matches(a.match, s.event) for s in members
                ):
                    out |= {uid for _, uid in _tier_ids(a.id, a.tiers)}
            elif isinstance(a, ComebackAchievement) and a.id not in unlocked:
                previous = [d for d in (max(before, default=0), *inside) if d]
                if any(later - earlier - 1 >= a.after_days for earlier in previous for later in inside):
                    out.add(a.id)
    if XP in out:
        out |= {a.id for a in rules.achievements if isinstance(a, LevelAchievement)}
    grew = True
    while grew:  # an all_of is as unsure as anything it requires
        grew = False
        for a in rules.achievements:
            if isinstance(a, AllOfAchievement) and a.id not in out and out & set(a.requires):
                out.add(a.id)
                grew = True
    return frozenset(out)
