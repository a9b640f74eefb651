"""Weekly leagues (Duolingo-style), the rules without I/O: tiers, grouping, ranking, promotion and demotion.

- **Weeks** are ISO weeks in UTC, as on the weekly leaderboards; a week closes ``grace`` after the next Monday
  00:00 UTC (room for late standings). Only the week just ended is closed: a service away for a whole week does
  not close the one before (its standings have mostly been overwritten by newer weeks').
- **Who plays**: every student with global XP in the week (``week_xp > 0``). A student without XP that week is
  in no group and gets no result: they keep their tier (no demotion for a week away), and join again the next
  week they earn XP.
- **Tiers** (``TIERS``, lowest first): a student's tier in a week is the ``next_tier`` of their newest result of an
  earlier week; a student with none starts in the lowest.
- **Groups**: a tier's players in a week are ordered by ``placement_key`` (the first 8 bytes of BLAKE2b of
  ``{week}|{user_id}``, ties by user id) and cut into ``group_count`` contiguous slices of (almost) equal size:
  ``round(players / group_size)`` groups (at least one), so groups hold ~2/3 to ~3/2 of ``group_size``. The order
  depends only on the week and the user ids, so every process holding the same standings makes the same groups,
  whatever order it read them in; the key changes every week, so neighbours change too. While a week runs, a new
  player shifts the cuts a little (the group shown mid-week is provisional); the groups at the close are final.
- **Ranking** in a group: week XP, highest first; equal XP ordered by the placement key (not by user id, which
  would favour the same ids every week), then user id. Ranks are positions 1..n, no shared ranks: a rank decides
  a promotion.
- **Moves** at the close: the top ``promote`` and the bottom ``demote`` of a group of ``group_size``; a smaller
  group moves proportionally fewer (``ceil(promote * n / group_size)`` up, ``floor(demote * n / group_size)``
  down, never more than ``promote`` / ``demote``, and never one student both ways). Nobody goes above the top
  tier or below the lowest: they stay.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

from processors.gamification.weeks import iso_week, week_monday
from schemas.gamification import LeagueOutcome, LeagueResult, LeagueTier, league_result_id

TIERS: tuple[LeagueTier, ...] = tuple(LeagueTier)
LOWEST, HIGHEST = TIERS[0], TIERS[-1]
Zone = Literal["promotion", "safe", "demotion"]


@dataclass(frozen=True)
class LeagueRules:
    group_size: int = 30
    promote: int = 7
    demote: int = 5

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"league group size must be at least 2, got {self.group_size}")
        if self.promote < 0 or self.demote < 0:
            raise ValueError(f"league promote ({self.promote}) and demote ({self.demote}) cannot be negative")
        if self.promote + self.demote >= self.group_size:
            raise ValueError(
                f"league promote ({self.promote}) + demote ({self.demote}) must be less than the group size "
                f"({self.group_size})"
            )


class LastResult(NamedTuple):
    """What the tiers need of a student's newest result: the week, the tier played in, the tier after."""

    week: str
    tier: LeagueTier
    next_tier: LeagueTier


class Ranked(NamedTuple):
    rank: int
    user_id: str
    week_xp: int


@dataclass(frozen=True)
class Group:
    group_id: str
    week: str
    tier: LeagueTier
    standings: tuple[Ranked, ...]  # ranked (``rank_group``)


# --- weeks ---------------------------------------------------------------------------------------------------------


def week_ends(week: str) -> datetime:
    """The moment the week ends: the next Monday 00:00 UTC."""
    return datetime.combine(week_monday(week) + timedelta(days=7), datetime.min.time(), UTC)


def closes_at(week: str, grace_seconds: float) -> datetime:
    return week_ends(week) + timedelta(seconds=grace_seconds)


def days_left(week: str, now: datetime) -> int:
    """Whole days until the week ends, counting a started day (Sunday afternoon: 1; after the end: 0)."""
    return max(0, math.ceil((week_ends(week) - now).total_seconds() / 86_400))


def weeks_to_close(open_weeks: Iterable[str], closed_through: str | None, now: datetime, grace: float) -> list[str]:
    """The weeks to close at ``now``, oldest first: past their close, newer than the newest closed one, and not
    older than the week before ``now``'s (see the module's docstring)."""
    previous = iso_week(now.date() - timedelta(days=7))
    return sorted(
        w
        for w in set(open_weeks)
        if w >= previous and (closed_through is None or w > closed_through) and closes_at(w, grace) <= now
    )


# --- tiers ---------------------------------------------------------------------------------------------------------


def tier_up(tier: LeagueTier) -> LeagueTier:
    return TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]


def tier_down(tier: LeagueTier) -> LeagueTier:
    return TIERS[max(TIERS.index(tier) - 1, 0)]


def tier_in(week: str, last: LastResult | None) -> LeagueTier:
    """The tier a student plays ``week`` in, from their newest result (None: a new student, the lowest tier)."""
    if last is None:
        return LOWEST
    if last.week < week:
        return last.next_tier
    if last.week == week:
        return last.tier
    raise ValueError(f"the newest result is of {last.week}, after {week}: the tier in {week} is not known from it")


# --- groups --------------------------------------------------------------------------------------------------------


def placement_key(user_id: str, week: str) -> int:
    """A stable 64-bit number per (week, student): the order a tier's players are cut into groups in."""
    return int.from_bytes(hashlib.blake2b(f"{week}|{user_id}".encode(), digest_size=8).digest(), "big")


def group_count(players: int, group_size: int) -> int:
    """``round(players / group_size)`` (halves up), at least 1 when anyone plays."""
    if players <= 0:
        return 0
    return max(1, (players + group_size // 2) // group_size)


def group_bounds(players: int, group_size: int) -> list[tuple[int, int]]:
    """[start, end) of each group in the placement order: contiguous, sizes differing by at most one."""
    n = group_count(players, group_size)
    return [(i * players // n, (i + 1) * players // n) for i in range(n)]


def group_index(position: int, players: int, group_size: int) -> int:
    """The group (0-based) of the player at ``position`` (0-based) in the placement order: ``group_bounds``'
    arithmetic inverted, so one student's group is found without cutting the whole tier."""
    if not 0 <= position < players:
        raise ValueError(f"position {position} is outside 0..{players - 1}")
    n = group_count(players, group_size)
    return ((position + 1) * n + players - 1) // players - 1


def group_id(week: str, tier: LeagueTier, index: int) -> str:
    """``{week}:{tier}:{n}``, n from 1."""
    return f"{week}:{tier.value}:{index + 1}"


def rank_group(members: Iterable[tuple[str, int]], week: str) -> tuple[Ranked, ...]:
    """(user id, week XP) -> ranked: XP descending, then the placement key, then user id."""
    order = sorted(members, key=lambda m: (-m[1], placement_key(m[0], week), m[0]))
    return tuple(Ranked(i, user, xp) for i, (user, xp) in enumerate(order, 1))


def place(week: str, players: Mapping[str, tuple[LeagueTier, int]], rules: LeagueRules) -> list[Group]:
    """Every group of the week: ``players`` maps user id -> (tier in that week, week XP); students with no XP are
    left out. Groups listed by tier, then number."""
    by_tier: dict[LeagueTier, list[tuple[int, str]]] = {}
    for user, (tier, xp) in players.items():
        if xp > 0:
            by_tier.setdefault(tier, []).append((placement_key(user, week), user))
    groups: list[Group] = []
    for tier in TIERS:
        order = sorted(by_tier.get(tier, []))
        for i, (start, end) in enumerate(group_bounds(len(order), rules.group_size)):
            members = [(user, players[user][1]) for _key, user in order[start:end]]
            groups.append(Group(group_id(week, tier, i), week, tier, rank_group(members, week)))
    return groups


# --- moves ---------------------------------------------------------------------------------------------------------


def moves(size: int, rules: LeagueRules) -> tuple[int, int]:
    """(promoted, demoted) in a group of ``size``: the full counts at ``group_size`` and above, fewer below."""
    promoted = min(rules.promote, math.ceil(rules.promote * size / rules.group_size), size)
    demoted = min(rules.demote, rules.demote * size // rules.group_size, size - promoted)
    return promoted, demoted


def zone(rank: int, size: int, tier: LeagueTier, rules: LeagueRules) -> Zone:
    """Where a rank would leave the student if the week closed now (the top tier has no promotion zone, the
    lowest no demotion zone)."""
    promoted, demoted = moves(size, rules)
    if rank <= promoted and tier != HIGHEST:
        return "promotion"
    if rank > size - demoted and tier != LOWEST:
        return "demotion"
    return "safe"


def outcome(rank: int, size: int, tier: LeagueTier, rules: LeagueRules) -> tuple[LeagueOutcome, LeagueTier]:
    """(outcome, next tier) of finishing at ``rank`` of ``size`` in ``tier``."""
    match zone(rank, size, tier, rules):
        case "promotion":
            return LeagueOutcome.promoted, tier_up(tier)
        case "demotion":
            return LeagueOutcome.demoted, tier_down(tier)
        case _:
            return LeagueOutcome.stayed, tier


def close_week(
    week: str, week_xp: Mapping[str, int], last: Mapping[str, LastResult], rules: LeagueRules
) -> list[LeagueResult]:
    """The results of a closed week, by user id: ``week_xp`` the players' global XP in it, ``last`` each student's
    newest result before it (absent: a new student)."""
    start = week_monday(week)
    players = {user: (tier_in(week, last.get(user)), xp) for user, xp in week_xp.items()}
    results = []
    for group in place(week, players, rules):
        size = len(group.standings)
        for rank, user, xp in group.standings:
            moved, next_tier = outcome(rank, size, group.tier, rules)
            results.append(
                LeagueResult(
                    league_result_id=league_result_id(user, week),
                    user_id=user,
                    week=week,
                    week_start=start,
                    tier=group.tier,
                    group_id=group.group_id,
                    group_size=size,
                    rank=rank,
                    week_xp=xp,
                    outcome=moved,
                    next_tier=next_tier,
                )
            )
    return sorted(results, key=lambda r: r.user_id)


def last_result(result: LeagueResult) -> LastResult:
    return LastResult(result.week, result.tier, result.next_tier)
