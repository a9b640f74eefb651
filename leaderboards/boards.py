"""Leaderboards in memory: one ``Board`` per (board, period), and ``Boards``, which applies students' standings.

Ranking (documented for the API and the snapshots): higher XP first; students with equal XP share a rank
("competition" ranking: 1, 2, 2, 4, where a rank is 1 + the number of students with strictly more XP) and are
listed by user id, ascending (plain string order), so the same boards always give the same answer. A student with
0 XP is not on a board.

A board is a ``SortedList`` of ``(-xp, user_id)`` beside a dict user -> xp: a change is two O(log n) edits, a
rank one bisection, the top N a slice. (Measured against a plain list kept sorted with ``bisect``, whose edits
move half the list each time, and against ClickHouse: see ``engage bench leaderboard``.)

Periods: a standing carries, per scope (global, and each course), the all-time total, the XP of one UTC day and
of one ISO week (UTC, "2026-W49"). Each replaces the student's score on *that* period's board only. ``Boards``
keeps the newest day and week any standing carried (its data clock) and the one before each (yesterday, last
week); when a newer day or week appears, boards of older ones are dropped, so memory stays bounded. A standing
for a period older than the two kept is applied to the all-time board but not to the dropped period's (reported
in ``Applied.skipped``, not silently lost), and, given ``today``, one more than a day ahead of it is refused for
its periods (a wrong clock upstream must not drop today's boards).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal, NamedTuple

from sortedcontainers import SortedList

from processors.gamification.weeks import iso_week, week_monday
from schemas.gamification import BoardXp, Standing

GLOBAL = "global"
ALL = "all"
COURSE_PREFIX = "course:"
PeriodKind = Literal["all", "day", "week"]


class Entry(NamedTuple):
    rank: int
    user_id: str
    xp: int


@dataclass(frozen=True)
class Position:
    """A student on one board, with up to ``neighbours`` students either side (best first)."""

    rank: int
    user_id: str
    xp: int
    students: int
    above: list[Entry]
    below: list[Entry]


class NotOnBoard(LookupError):
    pass


class UnknownBoard(LookupError):
    pass


class InvalidStanding(ValueError):
    pass


# --- periods -------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def previous_day(day: str) -> str:
    return (date.fromisoformat(day) - timedelta(days=1)).isoformat()


@lru_cache(maxsize=512)
def previous_week(week: str) -> str:
    return iso_week(week_monday(week) - timedelta(days=7))


def period_kind(period: str) -> PeriodKind:
    if period == ALL:
        return "all"
    return "week" if "-W" in period else "day"


def resolve_period(text: str, today: date) -> str:
    """An API period -> a board period: all, today, yesterday, this-week, last-week, a UTC date or an ISO week."""
    named = {
        "all": ALL,
        "today": today.isoformat(),
        "yesterday": (today - timedelta(days=1)).isoformat(),
        "this-week": iso_week(today),
        "last-week": iso_week(today - timedelta(days=7)),
    }
    if text in named:
        return named[text]
    if "-W" in text:
        week_monday(text)
        return text
    try:
        return date.fromisoformat(text).isoformat() if len(text) == 10 else _bad_period(text)
    except ValueError:
        return _bad_period(text)


def _bad_period(text: str) -> str:
    raise ValueError(
        f"period {text!r} is not one of all, today, yesterday, this-week, last-week, a UTC date (2026-12-05) "
        "or an ISO week (2026-W49)"
    )


def course_board(course_id: str) -> str:
    return f"{COURSE_PREFIX}{course_id}"


# --- one board -----------------------------------------------------------------------------------------------------


class Board:
    """One leaderboard (a board in one period): students by XP, ties by user id (see the module's docstring).

    While a ``Boards`` is bulk loading (a rebuild), scores go to the dict only and ``seal`` sorts them once:
    one sort of n entries instead of n insertions.
    """

    __slots__ = ("_order", "_xp")

    def __init__(self, *, sealed: bool = True) -> None:
        self._xp: dict[str, int] = {}
        self._order: SortedList | None = SortedList() if sealed else None

    def __len__(self) -> int:
        return len(self._xp)

    def set(self, user_id: str, xp: int) -> None:
        """Replace the student's score; 0 removes them from the board."""
        if xp < 0:
            raise ValueError(f"XP of {user_id!r} is negative ({xp})")
        old = self._xp.get(user_id)
        if old == xp or (old is None and xp == 0):
            return
        order = self._order
        if old is not None and order is not None:
            order.remove((-old, user_id))
        if xp == 0:
            del self._xp[user_id]
            return
        self._xp[user_id] = xp
        if order is not None:
            order.add((-xp, user_id))

    def seal(self) -> None:
        if self._order is None:
            self._order = SortedList((-xp, user) for user, xp in self._xp.items())

    def xp(self, user_id: str) -> int | None:
        return self._xp.get(user_id)

    def _sorted(self) -> SortedList:
        if self._order is None:
            raise RuntimeError("the board is being loaded; seal it before reading ranks")
        return self._order

    def rank_of(self, xp: int) -> int:
        """The rank a score has: 1 + the number of students with more XP."""
        return int(self._sorted().bisect_left((-xp, ""))) + 1

    def top(self, n: int) -> list[Entry]:
        return self._ranked(0, n)

    def position(self, user_id: str, neighbours: int = 0) -> Position:
        xp = self._xp.get(user_id)
        if xp is None:
            raise NotOnBoard(user_id)
        order = self._sorted()
        index = int(order.index((-xp, user_id)))
        first = max(0, index - neighbours)
        window = self._ranked(first, index + neighbours + 1 - first)
        me = window[index - first]
        return Position(me.rank, user_id, xp, len(order), window[: index - first], window[index - first + 1 :])

    def _ranked(self, start: int, count: int) -> list[Entry]:
        """Entries ``start`` .. ``start + count - 1`` with their ranks (the first one's by bisection)."""
        order = self._sorted()
        rows: list[Entry] = []
        prev_xp, prev_rank = -1, 0
        for i, (neg, user) in enumerate(order.islice(start, start + count), start):
            xp = -neg
            if xp != prev_xp:
                prev_rank = self.rank_of(xp) if i == start and start else i + 1
                prev_xp = xp
            rows.append(Entry(prev_rank, user, xp))
        return rows


EMPTY = Board()


# --- all boards ----------------------------------------------------------------------------------------------------


Skip = tuple[str, str, str]  # (reason, board, period)


@dataclass(frozen=True)
class Applied:
    """What a standing did: ``stale`` (its seq not newer than the one held: nothing changed), else ``applied``;
    ``skipped`` names the period boards it could not go on, as (reason, board, period): reason ``late`` (a
    period older than the ones kept) or ``future`` (more than a day ahead of ``today``)."""

    outcome: Literal["applied", "stale"]
    skipped: tuple[Skip, ...] = ()


@dataclass
class Boards:
    """Every board: ("global" | "course:<id>") x ("all" | a kept day | a kept week)."""

    bulk: bool = False  # a rebuild: new boards are sorted once, at ``seal``
    _boards: dict[str, dict[str, Board]] = field(default_factory=dict)
    _held: dict[str, tuple[int, tuple[str, ...]]] = field(default_factory=dict)  # user -> (seq, course ids)
    newest_day: str | None = None
    newest_week: str | None = None

    # --- changes --------------------------------------------------------------------------------------------
    def apply(self, standing: Standing, today: date | None = None) -> Applied:
        user = standing.user_id
        held = self._held.get(user)
        if held is not None and standing.seq <= held[0]:
            return Applied("stale")
        scopes = [(GLOBAL, standing.global_xp)]
        scopes += [(course_board(c), xp) for c, xp in standing.courses.items()]
        for scope, xp in scopes:
            try:
                week_monday(xp.week)
            except ValueError as exc:
                raise InvalidStanding(f"standing {standing.seq} of {user!r}: {scope} week: {exc}") from None
        skipped: list[Skip] = []
        for scope, xp in scopes:
            self._apply_scope(user, scope, xp, today, skipped)
        courses = tuple(sorted(sys.intern(c) for c in standing.courses))
        if held is not None:
            for gone in set(held[1]) - set(courses):
                self._remove_from_scope(course_board(gone), user)
        self._held[user] = (standing.seq, courses)
        return Applied("applied", tuple(skipped))

    def forget(self, user_id: str) -> bool:
        """Remove a student from every board (an erasure: the topic's tombstone); False if not held."""
        held = self._held.pop(user_id, None)
        if held is None:
            return False
        for scope in (GLOBAL, *(course_board(c) for c in held[1])):
            self._remove_from_scope(scope, user_id)
        return True

    def seal(self) -> None:
        """End a bulk load: sort every board once; from now on changes keep them sorted."""
        for periods in self._boards.values():
            for board in periods.values():
                board.seal()
        self.bulk = False

    def _apply_scope(self, user: str, scope: str, xp: BoardXp, today: date | None, skipped: list[Skip]) -> None:
        self._set(scope, ALL, user, xp.total)
        day = xp.day.isoformat()
        for period, score, reason in (
            (day, xp.day_xp, self._admit_day(day, today)),
            (xp.week, xp.week_xp, self._admit_week(xp.week, today)),
        ):
            if reason is None:
                self._set(scope, period, user, score)
            else:
                skipped.append((reason, scope, period))

    def _set(self, scope: str, period: str, user: str, xp: int) -> None:
        """The student's score on one board, created when needed, dropped when it empties."""
        if xp:
            self._board(scope, period).set(user, xp)
            return
        periods = self._boards.get(scope)
        board = None if periods is None else periods.get(period)
        if periods is not None and board is not None:
            board.set(user, 0)
            if not board:
                del periods[period]
                if not periods:
                    del self._boards[scope]

    def _board(self, scope: str, period: str) -> Board:
        periods = self._boards.setdefault(scope, {})
        board = periods.get(period)
        if board is None:
            board = periods[period] = Board(sealed=not self.bulk)
        return board

    def _remove_from_scope(self, scope: str, user: str) -> None:
        periods = self._boards.get(scope)
        if periods is None:
            return
        for period, board in list(periods.items()):
            board.set(user, 0)
            if not board:
                del periods[period]
        if not periods:
            del self._boards[scope]

    def _admit_day(self, day: str, today: date | None) -> str | None:
        if today is not None and day > (today + timedelta(days=1)).isoformat():
            return "future"
        if self.newest_day is None or day > self.newest_day:
            self.newest_day = day
            self._drop("day", {day, previous_day(day)})
            return None
        return None if day >= previous_day(self.newest_day) else "late"

    def _admit_week(self, week: str, today: date | None) -> str | None:
        if today is not None and week > iso_week(today + timedelta(days=1)):
            return "future"
        if self.newest_week is None or week > self.newest_week:
            self.newest_week = week
            self._drop("week", {week, previous_week(week)})
            return None
        return None if week >= previous_week(self.newest_week) else "late"

    def _drop(self, kind: PeriodKind, kept: set[str]) -> None:
        for scope, periods in list(self._boards.items()):
            for period in [p for p in periods if period_kind(p) == kind and p not in kept]:
                del periods[period]
            if not periods:
                del self._boards[scope]

    # --- reading --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Students held (with a standing), on a board or not."""
        return len(self._held)

    def seq(self, user_id: str) -> int | None:
        held = self._held.get(user_id)
        return None if held is None else held[0]

    def kept_periods(self) -> list[str]:
        """All-time ("all") and the kept days and weeks, newest first."""
        kept = [ALL]
        if self.newest_day is not None:
            kept += [self.newest_day, previous_day(self.newest_day)]
        if self.newest_week is not None:
            kept += [self.newest_week, previous_week(self.newest_week)]
        return kept

    def current_periods(self) -> list[str]:
        """All-time ("all"), the newest day and the newest week: what snapshots are taken of."""
        return [p for p in (ALL, self.newest_day, self.newest_week) if p is not None]

    def scopes(self) -> list[str]:
        return sorted(self._boards)

    def lookup(self, scope: str, period: str) -> Board:
        """The board, empty if the period is kept but nobody has XP in it; UnknownBoard saying why otherwise."""
        periods = self._boards.get(scope)
        if periods is None:
            if scope != GLOBAL and not scope.startswith(COURSE_PREFIX):
                raise UnknownBoard(f"board {scope!r} is neither 'global' nor 'course:<course id>'")
            raise UnknownBoard(f"no leaderboard {scope!r}: no student has XP on it")
        board = periods.get(period)
        if board is not None:
            return board
        if period not in self.kept_periods():
            raise UnknownBoard(
                f"period {period} of {scope!r} is not kept: the service keeps {', '.join(self.kept_periods())}"
            )
        return EMPTY

    def boards(self) -> Iterator[tuple[str, str, Board]]:
        for scope, periods in self._boards.items():
            for period, board in periods.items():
                yield scope, period, board

    def counts(self) -> dict[tuple[str, str], int]:
        """Students on boards by (global | courses, all | day | previous_day | week | previous_week), for metrics
        (course boards summed: labels stay a bounded set)."""
        names = {ALL: "all"}
        if self.newest_day is not None:
            names |= {self.newest_day: "day", previous_day(self.newest_day): "previous_day"}
        if self.newest_week is not None:
            names |= {self.newest_week: "week", previous_week(self.newest_week): "previous_week"}
        out = {(s, p): 0 for s in (GLOBAL, "courses") for p in ("all", "day", "previous_day", "week", "previous_week")}
        for scope, period, board in self.boards():
            key = (GLOBAL if scope == GLOBAL else "courses", names.get(period, "all"))
            out[key] += len(board)
        return out


def load(standings: Iterable[Standing]) -> Boards:
    """Boards from many standings at once (tests, benchmarks): a bulk load, sealed."""
    boards = Boards(bulk=True)
    for standing in standings:
        boards.apply(standing)
    boards.seal()
    return boards
