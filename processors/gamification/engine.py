"""Apply the gamification rules to a batch of a student's new events: XP, level-ups, unlocks, celebrations.

``play`` runs in the worker's fold right after the signals (``processors.pipeline.ingest``), on the events the
signals accepted (duplicates and re-delivered messages never reach it), and keeps its state in the student's
record. So the exactness the signals have holds here too: a re-delivered message, a client retry or a worker
killed mid-batch never awards twice and never loses an award, and every id is deterministic.

Rules a reader should know:
- Daily caps count in the student's local day. An event more than ``CAP_DAYS`` local days older than the
  newest day seen before it (in arrival order, whatever the batches) earns no capped XP (its day's counter
  is gone, and awarding it could exceed the cap).
- The streak multiplier is that of the student's streak on the event's local day, as known when the event
  arrives; an award is never re-priced later.
- Leaderboard XP counts in UTC days and ISO weeks (UTC): one period boundary for every student on a board.
- ``in_a_row`` runs and comebacks follow arrival order (a comeback is a new active day after a gap among the days
  known when it arrives: a late event that fills the gap afterwards does not take it back); everything else does
  not depend on the order events arrive in, as long as no event arrives more than a day late.
- Outputs are built as JSON-ready rows and dicts in the contracts' field order, not models (no validation: ~100k
  awards and ~65k level-ups, unlocks and celebrations per million events, from values the engine has checked);
  ``GameOutcome``'s properties build the models, and ``tests/unit`` validates them against the contracts.
- Achievements unlock once per student (their ids are remembered); a rule added later starts counting from
  the events it sees (``engage gamification backfill`` unlocks what the warehouse's history already earned).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from processors.gamification.levels import level_for
from processors.gamification.rules import (
    ACTIVE,
    AllOfAchievement,
    ComebackAchievement,
    Condition,
    CountAchievement,
    EventFilter,
    GameRules,
    InARowAchievement,
    LevelAchievement,
    StreakAchievement,
    WithinAchievement,
    is_active_type,
    unlock_ids,
)
from processors.gamification.weeks import iso_week
from processors.streaks import ACTIVE_EVENT_TYPES, StreakState
from schemas.experiments import Exposure
from schemas.gamification import (
    GAMIFICATION_SCHEMA_VERSION,
    AchievementUnlocked,
    Celebration,
    CelebrationKind,
    LevelUp,
    Standing,
    XpAward,
    XpAwardBatch,
    level_up_id,
    unlock_id,
)
from schemas.streaks import StreakMilestone

CAP_DAYS = 8  # local days of daily-cap counters kept before the newest day
GLOBAL = ""  # the scope key of the global boards in ``GameState.boards``
EventAchievement = CountAchievement | InARowAchievement | WithinAchievement  # judged event by event


@dataclass(slots=True)
class GameState:
    """One student's gamification state (kept in their record; a few hundred bytes of JSON)."""

    xp: int = 0
    level: int = 1
    seq: int = 0  # standings sent
    latest_day: int = 0  # newest local day ordinal an event was awarded on
    caps: dict[str, int] = field(default_factory=dict)  # f"{rule}|{local day}" -> awards that day
    counts: dict[str, int] = field(default_factory=dict)  # count / in_a_row achievement rule -> events / run
    within: dict[str, dict[int, int]] = field(default_factory=dict)  # within rule -> local day -> matching events
    unlocked: dict[str, float] = field(default_factory=dict)  # unlock id -> event time (epoch s)
    once: dict[str, list[str]] = field(default_factory=dict)  # once-per-course rule -> courses awarded
    # scope ('' global, else a course id) -> [total, UTC day ordinal, that day's XP, ISO week, that week's XP,
    # the ISO week before it, that week's XP] (the last two once a week rolled over; records from before: 5 items)
    boards: dict[str, list[Any]] = field(default_factory=dict)

    def is_empty(self) -> bool:
        """Nothing earned or counted yet (the record then leaves the key out)."""
        return not (self.xp or self.caps or self.counts or self.within or self.unlocked or self.once or self.boards)

    def to_dict(self) -> dict[str, Any]:
        return {
            "xp": self.xp,
            "level": self.level,
            "seq": self.seq,
            "day": self.latest_day,
            "caps": self.caps,
            "counts": self.counts,
            "within": {k: [[d, n] for d, n in v.items()] for k, v in self.within.items()},
            "unlocked": self.unlocked,
            "once": self.once,
            "boards": self.boards,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GameState:
        if not d:
            return cls()
        return cls(
            xp=int(d["xp"]),
            level=int(d["level"]),
            seq=int(d["seq"]),
            latest_day=int(d["day"]),
            caps=dict(d["caps"]),
            counts=dict(d["counts"]),
            within={k: {int(day): int(n) for day, n in v} for k, v in d["within"].items()},
            unlocked=dict(d["unlocked"]),
            once={k: list(v) for k, v in d.get("once", {}).items()},
            boards={k: list(v) for k, v in d["boards"].items()},
        )

    def courses_by_xp(self) -> list[str]:
        """The courses the student earned XP in, most XP first."""
        return sorted((c for c in self.boards if c != GLOBAL), key=lambda c: (-self.boards[c][0], c))

    def standing_row(self, user_id: str) -> dict[str, Any]:
        """The student's ``Standing`` as a JSON-ready dict (the worker encodes it with orjson)."""
        boards = {scope: _board_row(v) for scope, v in self.boards.items()}
        empty = {"total": 0, "day": date(1970, 1, 1), "day_xp": 0, "week": "1970-W01", "week_xp": 0}
        return {
            "schema_version": GAMIFICATION_SCHEMA_VERSION,
            "user_id": user_id,
            "level": self.level,
            "global_xp": boards.pop(GLOBAL, empty),
            "courses": boards,
            "seq": self.seq,
        }

    def standing(self, user_id: str) -> Standing:
        return Standing.model_validate(self.standing_row(user_id))


def _board_row(v: list[Any]) -> dict[str, Any]:
    row = {"total": v[0], "day": date.fromordinal(v[1]), "day_xp": v[2], "week": v[3], "week_xp": v[4]}
    if len(v) > 5 and v[5] is not None:
        row["previous_week"], row["previous_week_xp"] = v[5], v[6]
    return row


@dataclass(slots=True)
class GameOutcome:
    """What one batch earned; ``standing`` is set when the student's XP changed.

    Awards (about one for every three events) are kept as batch rows (``schemas.gamification.AWARD_FIELDS``) and
    sent as one ``XpAwardBatch`` (``award_batch``); level-ups, unlocks, celebrations and the standing as JSON-ready
    dicts in their contract's field order: the worker's hot path, where building a pydantic model or a message per
    award cost more than the rest of the fold. ``awards``, ``level_ups``, ``unlocks``, ``celebrations`` and
    ``standing`` build the contract models (tests and the backfill read those)."""

    user_id: str = ""
    rules_version: int = 0
    award_rows: list[tuple[Any, ...]] = field(default_factory=list)
    level_up_rows: list[dict[str, Any]] = field(default_factory=list)  # ``LevelUp``
    unlock_rows: list[dict[str, Any]] = field(default_factory=list)  # ``AchievementUnlocked``
    celebration_rows: list[dict[str, Any]] = field(default_factory=list)  # ``Celebration``
    exposures: list[Exposure] = field(default_factory=list)  # an XP-rules experiment's variant priced these events
    standing_row: dict[str, Any] | None = None

    def award_batch(self) -> dict[str, Any] | None:
        """The batch's awards as one ``XpAwardBatch`` message, JSON-ready (orjson encodes dates and times); None
        when nothing was awarded."""
        if not self.award_rows:
            return None
        return {
            "schema_version": GAMIFICATION_SCHEMA_VERSION,
            "user_id": self.user_id,
            "rules_version": self.rules_version,
            "awards": self.award_rows,
        }

    @property
    def awards(self) -> list[XpAward]:
        batch = self.award_batch()
        return XpAwardBatch.model_validate(batch).expand() if batch is not None else []

    @property
    def level_ups(self) -> list[LevelUp]:
        return [LevelUp.model_validate(r) for r in self.level_up_rows]

    @property
    def unlocks(self) -> list[AchievementUnlocked]:
        return [AchievementUnlocked.model_validate(r) for r in self.unlock_rows]

    @property
    def celebrations(self) -> list[Celebration]:
        return [Celebration.model_validate(r) for r in self.celebration_rows]

    @property
    def standing(self) -> Standing | None:
        return Standing.model_validate(self.standing_row) if self.standing_row is not None else None


class NewEvent(NamedTuple):
    """An event the signals accepted, with its local day (ordinal, in the student's zone): the signals' own
    ``(event, time, local day)`` tuples are passed as they are."""

    event: dict[str, Any]
    at: datetime
    local_day: int


def _number(ev: dict[str, Any], name: str) -> float | None:
    payload = ev.get("payload")
    if not isinstance(payload, dict):
        return None
    if name == "score_pct":
        score, top = payload.get("score"), payload.get("max_score")
        if isinstance(score, int | float) and isinstance(top, int | float) and top > 0:
            return 100.0 * score / top
        return None
    value = payload.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def matches(f: EventFilter, ev: dict[str, Any]) -> bool:
    kind = ev.get("event_type")
    if f.event_type == ACTIVE:
        if not is_active_type(kind):
            return False
    elif kind != f.event_type:
        return False
    return _holds(f.when, ev)


def _holds(when: tuple[Condition, ...], ev: dict[str, Any]) -> bool:
    for c in when:
        x = _number(ev, c.field)
        if x is None or not c.holds(x):
            return False
    return True


def _types(f: EventFilter) -> frozenset[str]:
    """The event types a filter can match."""
    return ACTIVE_EVENT_TYPES if f.event_type == ACTIVE else frozenset({f.event_type})


Tiers = tuple[tuple[int, str], ...]  # (tier, unlock id), lowest tier first
# An XP rule as the per-event loop reads it (locals from one unpacking, not attribute lookups on the model):
# id, conditions, XP, daily cap (None: none), once per course, streak multiplier applies.
XpStep = tuple[str, tuple[Condition, ...], int, int | None, bool, bool]

_COUNT, _ROW, _WITHIN = 0, 1, 2
_STREAK, _COMEBACK, _LEVEL = 0, 1, 2
# A streak, comeback or level achievement as the end of a batch checks it: kind, id, after_days / level, tiers.
BatchStep = tuple[int, str, int, "Tiers"]


@dataclass(frozen=True, slots=True)
class _AchievementStep:
    """A count, in_a_row or within achievement as an event of one type meets it: the conditions under which an
    event of that type counts (None: it never does), or breaks the run (in_a_row only), and the tiers."""

    kind: int  # _COUNT, _ROW or _WITHIN
    rule: EventAchievement
    counts: tuple[Condition, ...] | None
    breaks: tuple[Condition, ...] | None
    tiers: Tiers


@dataclass(frozen=True, slots=True)
class _Plan:
    """The rules indexed by event type for the per-event loop, the batch-level achievements and the unlock names,
    made once per rules object.

    Each event is checked only against the XP rules and the count / in_a_row / within achievements that can match
    its type (in the file's order): most events match one or two of a dozen rules, and the type test is done here
    once instead of for every event.
    """

    # event type -> (its XP rules, its achievements, whether it makes a day active): one lookup per event
    per_type: dict[str, tuple[tuple[XpStep, ...] | None, tuple[_AchievementStep, ...] | None, bool]]
    batch: tuple[BatchStep, ...]  # streak, comeback and level achievements, in the file's order
    all_of: tuple[tuple[str, tuple[str, ...]], ...]  # all_of achievements: id, the ids it requires
    names: dict[str, tuple[str, str]]

    @classmethod
    def of(cls, rules: GameRules) -> _Plan:
        xp: dict[str, list[XpStep]] = {}
        for rule in rules.xp:
            xp_step = (rule.id, rule.match.when, rule.xp, rule.daily_cap, rule.once_per_course, rule.streak_multiplier)
            for t in _types(rule.match):
                xp.setdefault(t, []).append(xp_step)
        tiers: dict[str, Tiers] = {}
        for a in rules.achievements:
            if isinstance(a, CountAchievement | InARowAchievement | StreakAchievement):
                tiers[a.id] = tuple(zip(a.tiers, unlock_ids(a), strict=True))
        per_type: dict[str, list[_AchievementStep]] = {}
        for a in rules.achievements:
            if isinstance(a, CountAchievement | WithinAchievement):
                kind = _COUNT if isinstance(a, CountAchievement) else _WITHIN
                for t in _types(a.match):
                    per_type.setdefault(t, []).append(
                        _AchievementStep(kind, a, a.match.when, None, tiers.get(a.id, ()))
                    )
            elif isinstance(a, InARowAchievement):
                counts, breaks = _types(a.match), _types(a.breaks)
                for t in counts | breaks:
                    step = _AchievementStep(_ROW, a, a.match.when if t in counts else None,
                                            a.breaks.when if t in breaks else None, tiers[a.id])  # fmt: skip
                    per_type.setdefault(t, []).append(step)
        batch: list[BatchStep] = []
        for a in rules.achievements:
            if isinstance(a, StreakAchievement):
                batch.append((_STREAK, a.id, 0, tiers[a.id]))
            elif isinstance(a, ComebackAchievement):
                batch.append((_COMEBACK, a.id, a.after_days, ()))
            elif isinstance(a, LevelAchievement):
                batch.append((_LEVEL, a.id, a.level, ()))
        xp_steps = {t: tuple(v) for t, v in xp.items()}
        achievement_steps = {t: tuple(v) for t, v in per_type.items()}
        return cls(
            {
                t: (xp_steps.get(t), achievement_steps.get(t), t in ACTIVE_EVENT_TYPES)
                for t in {*xp_steps, *achievement_steps, *ACTIVE_EVENT_TYPES}
            },
            tuple(batch),
            tuple((a.id, a.requires) for a in rules.achievements if isinstance(a, AllOfAchievement)),
            rules.achievement_names(),
        )


_PLANS: dict[int, tuple[GameRules, _Plan]] = {}


def _plan(rules: GameRules) -> _Plan:
    """The plan of ``rules`` (a worker holds one rules object until a reload, so this is a dict lookup)."""
    hit = _PLANS.get(id(rules))
    if hit is not None and hit[0] is rules:
        return hit[1]
    if len(_PLANS) >= 8:  # old rules objects after reloads
        _PLANS.clear()
    plan = _Plan.of(rules)
    _PLANS[id(rules)] = (rules, plan)  # holds ``rules``, so its id is not reused while cached
    return plan


@lru_cache(maxsize=4096)
def _week_of(day: int) -> str:
    return iso_week(date.fromordinal(day))


def _add_to_board(boards: dict[str, list[Any]], scope: str, xp: int, day: int) -> None:
    """Add ``xp`` earned on UTC ``day`` (ordinal). The result does not depend on the order days are added in (a
    board keeps the newest day's and week's XP, and the week before's), so a batch adds its XP once per scope and
    day.

    The week before is kept because the leagues close a week some minutes after it ends (the grace): a student
    who earns XP on Monday before the close rolls their standing into the new week, and the leaderboard service,
    rebuilt from the standings in between, would not know their XP of the week being closed."""
    b = boards.get(scope)
    week = _week_of(day)
    if b is None:
        boards[scope] = [xp, day, xp, week, xp]
        return
    b[0] += xp
    if day > b[1]:
        b[1], b[2] = day, xp
    elif day == b[1]:
        b[2] += xp
    if week > b[3]:  # 'YYYY-Www' sorts as time does
        before = _week_of(day - 7)
        previous = [b[3], b[4]] if b[3] == before else [None, 0]
        b[3:] = [week, xp, *previous]
    elif week == b[3]:
        b[4] += xp
    elif len(b) > 5 and week == b[5]:  # a late award in the week before
        b[6] += xp


class _Batch:
    """One call of ``play``: the state, the rules and what has been earned so far."""

    def __init__(self, game: GameState, rules: GameRules, user_id: str, first_seen: datetime | None) -> None:
        self.game, self.rules, self.user_id, self.first_seen = game, rules, user_id, first_seen
        self.out = GameOutcome(user_id, rules.version)
        self.plan = _plan(rules)
        self.names = self.plan.names
        self.board_xp: dict[tuple[str, int], int] = {}  # (scope, UTC day ordinal) -> XP, added to boards at the end
        self._dates: dict[int, date] = {}

    def award(self, rule_id: str, source: str, base: int, mult: float, at: datetime, day: int, course: str) -> None:
        xp = int(base * mult + 0.5)
        if xp <= 0:
            return
        g = self.game
        g.xp += xp
        utc_day = at.astimezone(UTC).toordinal()
        board_xp = self.board_xp
        key = (GLOBAL, utc_day)
        board_xp[key] = board_xp.get(key, 0) + xp
        if course:
            key = (course, utc_day)
            board_xp[key] = board_xp.get(key, 0) + xp
        local = self._dates.get(day)
        if local is None:
            local = self._dates[day] = date.fromordinal(day)
        self.out.award_rows.append((rule_id, source, course, xp, base, round(mult, 4), g.xp, local, at))

    def settle_boards(self) -> None:
        for (scope, day), xp in self.board_xp.items():
            _add_to_board(self.game.boards, scope, xp, day)

    def unlock(self, uid: str, at: datetime) -> None:
        g = self.game
        if uid in g.unlocked:
            return
        g.unlocked[uid] = at.timestamp()
        name, description = self.names.get(uid, (uid, uid))
        full_id = unlock_id(self.user_id, uid)
        self.out.unlock_rows.append(
            {"schema_version": GAMIFICATION_SCHEMA_VERSION, "unlock_id": full_id, "user_id": self.user_id,
             "achievement_id": uid, "name": name, "description": description, "rules_version": self.rules.version,
             "event_time": at, "first_seen": self.first_seen, "backfilled": False}
        )  # fmt: skip
        self.celebrate(CelebrationKind.achievement, full_id, f"Achievement unlocked: {name}", description, at)

    def celebrate(self, kind: CelebrationKind, source_id: str, title: str, body: str, at: datetime) -> None:
        self.out.celebration_rows.append(
            {"schema_version": GAMIFICATION_SCHEMA_VERSION, "celebration_id": f"{kind.value}:{source_id}",
             "user_id": self.user_id, "kind": kind, "source_id": source_id, "title": title, "body": body,
             "event_time": at}
        )  # fmt: skip


def play(
    game: GameState,
    rules: GameRules,
    user_id: str,
    events: Sequence[tuple[dict[str, Any], datetime, int]],
    streak: StreakState,
    milestones: Sequence[StreakMilestone] = (),
    last_active_before: int = 0,
    first_seen: datetime | None = None,
) -> GameOutcome:
    """Fold the batch's new events (``NewEvent``s or the signals' same tuples, in arrival order) into ``game``
    (updated in place); what they earned.

    ``streak`` is the student's streak state after the batch was folded; ``milestones`` the streak milestones
    the batch reached; ``last_active_before`` the last active local day before the batch (0: none), for
    comebacks; ``first_seen`` the student's first event, carried by unlocks for time-to-unlock analysis.
    """
    if not events and not milestones:
        return GameOutcome(user_id, rules.version)
    b = _Batch(game, rules, user_id, first_seen)
    xp_before, multiplier = game.xp, rules.streak_multiplier
    multipliers: dict[int, float] = {}  # local day -> the streak multiplier on it
    if multiplier is not None:
        multipliers = {d: multiplier.at(n) for d, n in streak.current_on({day for _, _, day in events}).items()}
    last_at: datetime | None = None
    active_days: set[int] = set()
    latest = latest_before = game.latest_day
    per_type = b.plan.per_type
    caps, once = game.caps, game.once
    # The batch's daily-cap counters by local day and rule, read from ``caps`` once per (day, rule) and written
    # back at the end (no key string per event and rule).
    day_caps: dict[int, dict[str, int]] = {}
    today: dict[str, int] | None
    for e, at, day in events:
        if last_at is None or at > last_at:
            last_at = at
        # The newest day seen before this event, in arrival order (not the batch's newest: how messages are
        # gathered into batches must not decide whether an event is too late to earn capped XP).
        if day > latest:
            latest = day
        # what the event's type can earn (``_Plan``); the signals accepted only events whose type is a string
        step = per_type.get(e.get("event_type", ""))
        if step is None:
            continue
        candidates, achievements, active = step
        if active:
            active_days.add(day)
        if candidates:
            oldest_capped = latest - CAP_DAYS
            today = None  # the day's counters in ``day_caps``, looked up once per event
            c = e.get("course_id")
            course = c if isinstance(c, str) else ""
            for rule_id, when, xp, cap, once_per_course, multiplied in candidates:
                if when and not _holds(when, e):
                    continue
                if once_per_course and (not course or course in once.get(rule_id, ())):
                    continue
                if cap is not None:
                    if day < oldest_capped:
                        continue
                    if today is None:
                        today = day_caps.get(day)
                        if today is None:
                            today = day_caps[day] = {}
                    n = today.get(rule_id)
                    if n is None:
                        n = caps.get(f"{rule_id}|{day}", 0)
                    if n >= cap:
                        today[rule_id] = n
                        continue
                    today[rule_id] = n + 1
                if once_per_course:
                    once.setdefault(rule_id, []).append(course)
                mult = multipliers[day] if multiplied and multiplier is not None else 1.0
                b.award(rule_id, str(e.get("event_id")), xp, mult, at, day, course)
        if achievements:
            _event_achievements(b, e, at, day, achievements)
    game.latest_day = latest
    for m in milestones:
        bonus = rules.streak_milestone_xp.get(m.milestone_days, 0)
        b.award(f"streak.{m.milestone_days}", f"streak:{m.milestone_id}", bonus, 1.0, m.event_time,
                m.reached_on.toordinal(), "")  # fmt: skip
        b.celebrate(
            CelebrationKind.streak_milestone,
            m.milestone_id,
            f"{m.milestone_days}-day streak!",
            f"You have studied {m.streak_days} days in a row.",
            m.event_time,
        )
    for day, counters in day_caps.items():
        for rule_id, n in counters.items():
            if n:
                caps[f"{rule_id}|{day}"] = n
    if last_at is None:
        last_at = max(m.event_time for m in milestones)
    b.settle_boards()
    _batch_achievements(b, sorted(active_days), streak, last_active_before, last_at)
    if game.latest_day != latest_before:  # else no counter became too old (new ones are never too old)
        oldest_capped = game.latest_day - CAP_DAYS
        game.caps = {k: n for k, n in caps.items() if int(k.rsplit("|", 1)[1]) >= oldest_capped}
    if game.xp != xp_before:
        game.seq += 1
        b.out.standing_row = game.standing_row(user_id)
    return b.out


def _event_achievements(
    b: _Batch, e: dict[str, Any], at: datetime, day: int, steps: tuple[_AchievementStep, ...]
) -> None:
    """The count, in_a_row and within achievements that can match the event's type (``_Plan``)."""
    g = b.game
    for step in steps:
        counts = step.counts
        counted = counts is not None and (not counts or _holds(counts, e))
        if step.kind == _WITHIN:
            if counted and step.rule.id not in g.unlocked:
                _within(b, step.rule, day, at)  # type: ignore[arg-type]
        elif counted:
            rule_id = step.rule.id
            n = g.counts[rule_id] = g.counts.get(rule_id, 0) + 1
            _tiers(b, step.tiers, n, at)
        elif step.kind == _ROW and step.breaks is not None and (not step.breaks or _holds(step.breaks, e)):
            g.counts[step.rule.id] = 0


def _within(b: _Batch, a: WithinAchievement, day: int, at: datetime) -> None:
    """One more matching event on local ``day`` for a within achievement: unlock it if some window of ``a.days``
    days around it now holds ``a.count`` events."""
    g = b.game
    days = g.within.setdefault(a.id, {})
    n = a.days
    before = days.get(day, 0)
    days[day] = before + 1
    reached = False
    if sum(days.values()) >= a.count:  # else no window can hold enough (most calls)
        # every window of n days that contains this day, sliding over the 2n - 1 days around it
        around = [days.get(d, 0) for d in range(day - n + 1, day + n)]
        window = sum(around[:n])
        reached = window >= a.count
        for k in range(n - 1):
            if reached:
                break
            window += around[k + n] - around[k]
            reached = window >= a.count
    if reached:
        b.unlock(a.id, at)
        del g.within[a.id]
    elif not before:  # a new day: days too old to share a window with any day still likely to arrive
        keep_from = max(days) - a.days - CAP_DAYS
        for d in [d for d in days if d < keep_from]:
            del days[d]


def _tiers(b: _Batch, tiers: Tiers, n: int, at: datetime) -> None:
    unlocked = b.game.unlocked
    for tier, uid in tiers:
        if n < tier:
            break
        if uid not in unlocked:
            b.unlock(uid, at)


def _batch_achievements(
    b: _Batch, active_days: list[int], streak: StreakState, last_active_before: int, at: datetime
) -> None:
    g, rules = b.game, b.rules
    level = level_for(g.xp, rules.levels)
    for new_level in range(g.level + 1, level + 1):
        up_id = level_up_id(b.user_id, new_level)
        b.out.level_up_rows.append(
            {"schema_version": GAMIFICATION_SCHEMA_VERSION, "level_up_id": up_id, "user_id": b.user_id,
             "level": new_level, "total_xp": g.xp, "event_time": at}
        )  # fmt: skip
        b.celebrate(CelebrationKind.level_up, up_id, f"Level {new_level}!",
                    f"You reached level {new_level} with {g.xp:,} XP.", at)  # fmt: skip
    g.level = max(g.level, level)
    longest = max(streak.current.longest, streak.current.run_len)
    widest, previous = -1, last_active_before  # the longest gap before an active day of the batch (-1: none)
    for d in active_days:
        if d > previous:
            if previous and d - previous - 1 > widest:
                widest = d - previous - 1
            previous = d
    for kind, achievement_id, threshold, tiers in b.plan.batch:
        if kind == _STREAK:
            _tiers(b, tiers, longest, at)
        elif (widest >= threshold) if kind == _COMEBACK else (g.level >= threshold):
            b.unlock(achievement_id, at)
    unlocked, changed = g.unlocked, bool(b.plan.all_of)
    while changed:  # all_of may require another all_of (the rules refuse cycles)
        changed = False
        for achievement_id, requires in b.plan.all_of:
            if achievement_id not in unlocked and all(r in unlocked for r in requires):
                b.unlock(achievement_id, at)
                changed = True


def known_unlocks(rules: GameRules) -> set[str]:
    return {uid for a in rules.achievements for uid in unlock_ids(a)}
