"""The weekly leagues the leaderboard service holds (rules in ``processors.gamification.leagues``).

State, all rebuilt at start from the two compacted topics the consumer reads:
- each student's newest ``LeagueResult`` (the league-results topic): their tier now, and the newest closed week;
- each open week's global XP per student, from the standings (a week is open until it is closed);
- per (open week, tier) the players in placement order (a ``SortedList`` of (placement key, user id)), so a
  student's group is found by position (``group_index``) without cutting the whole tier on every request.

``close_due`` closes the week just ended once the clock is past its close (``weeks_to_close``) and returns the
results to publish; the same standings and tiers give the same results in every process and after a restart,
and a week with any result already on the topic is not closed again - but a rebuilt book finishes it: players of
the newest closed week without a result (a process that died while publishing the close) get theirs at the next
``close_due``, from the same placement (published players at the XP their result says, the others at their
standings'), so the results already out stay as they are. A restart between Monday 00:00 and the
close (the grace) still knows the XP of the week being closed of a student whose standing moved on to the new
week: a standing carries the week before its own (``BoardXp.previous_week``). What a restart cannot know: XP of a
week two or more weeks before a student's newest standing (the standings topic keeps one per student) - a week
that closes within the grace after it ends never needs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sortedcontainers import SortedList

from processors.gamification.leagues import (
    LOWEST,
    TIERS,
    LastResult,
    LeagueRules,
    close_week,
    closes_at,
    days_left,
    group_bounds,
    group_id,
    group_index,
    last_result,
    moves,
    placement_key,
    rank_group,
    tier_in,
    week_ends,
    weeks_to_close,
    zone,
)
from processors.gamification.weeks import iso_week
from schemas.gamification import LeagueResult, LeagueTier, Standing


@dataclass
class LeagueBook:
    rules: LeagueRules
    grace_seconds: float
    bulk: bool = False  # a rebuild: the placement orders are built once, at ``seal``
    results: dict[str, LastResult] = field(default_factory=dict)
    closed_through: str | None = None  # the newest week with a result
    week_xp: dict[str, dict[str, int]] = field(default_factory=dict)  # open week -> user -> global week XP
    _placed: dict[str, dict[str, LeagueTier]] = field(default_factory=dict)  # open week -> user -> tier placed in
    _orders: dict[tuple[str, LeagueTier], SortedList] = field(default_factory=dict)  # of (placement key, user)
    # the newest closed week (``closed_through``): its players' XP as the standings say, and as the results say
    closing_xp: dict[str, int] = field(default_factory=dict)
    closed_xp: dict[str, int] = field(default_factory=dict)
    _finish: bool = False  # set by ``seal``: the next ``close_due`` publishes the results the closed week lacks

    # --- changes --------------------------------------------------------------------------------------------
    def apply_standing(self, standing: Standing) -> bool:
        """The student's global XP in the standing's week, and in the week before while that one is open (being
        closed); False when the standing's week is closed (a late standing)."""
        board = standing.global_xp
        if board.previous_week is not None and board.previous_week_xp > 0:
            self._take(board.previous_week, standing.user_id, board.previous_week_xp)
        return self._take(board.week, standing.user_id, board.week_xp)

    def _take(self, week: str, user: str, xp: int) -> bool:
        """``user``'s XP in ``week``: held for an open week, kept for finishing the newest closed one (older: none);
        False when ``week`` is closed."""
        closed = self.closed_through
        if closed is not None and week <= closed:
            if week == closed and xp > 0:
                self.closing_xp[user] = xp
            return False
        if xp > 0:
            self.week_xp.setdefault(week, {})[user] = xp
            self._place(week, user)
        elif user in self.week_xp.get(week, {}):
            del self.week_xp[week][user]
            self._unplace(week, user)
        return True

    def apply_result(self, result: LeagueResult) -> None:
        """A result read from the topic (this process's or another's): the student's tier from now on."""
        held = self.results.get(result.user_id)
        if held is not None and held.week > result.week:
            return
        self.results[result.user_id] = last_result(result)
        if self.closed_through is None or result.week > self.closed_through:
            self._closed(result.week)
        if result.week == self.closed_through:
            self.closed_xp[result.user_id] = result.week_xp
        for week in self.week_xp:
            if result.user_id in self.week_xp[week]:
                self._place(week, result.user_id)

    def forget(self, user_id: str) -> bool:
        """An erased student leaves every league; True when they had a result (the caller tombstones it)."""
        for week, players in self.week_xp.items():
            if players.pop(user_id, None) is not None:
                self._unplace(week, user_id)
        self.closing_xp.pop(user_id, None)
        self.closed_xp.pop(user_id, None)
        return self.results.pop(user_id, None) is not None

    def seal(self) -> None:
        """End a bulk load: sort each (week, tier)'s players once; the next ``close_due`` finishes the newest
        closed week if a process died publishing it."""
        self.bulk = False
        self._finish = self.closed_through is not None
        self._orders = {}
        for week, placed in self._placed.items():
            by_tier: dict[LeagueTier, list[tuple[int, str]]] = {}
            for user, tier in placed.items():
                by_tier.setdefault(tier, []).append((placement_key(user, week), user))
            for tier, keys in by_tier.items():
                self._orders[(week, tier)] = SortedList(keys)

    def close_due(self, now: datetime) -> list[LeagueResult]:
        """Close the weeks due at ``now`` (at most the one just ended): their results, also applied here. Weeks
        older than the one just ended are dropped unclosed (``weeks_to_close``): they never will be."""
        out: list[LeagueResult] = []
        if self._finish:
            self._finish = False
            out += self._unfinished()
        for week in weeks_to_close(self.week_xp, self.closed_through, now, self.grace_seconds):
            results = close_week(week, self.week_xp[week], self.results, self.rules)
            self._closed(week)
            for result in results:
                self.apply_result(result)
            out += results
        previous = iso_week(now.date() - timedelta(days=7))
        for old in [w for w in self.week_xp if w < previous]:
            self._drop(old)
        return out

    def _unfinished(self) -> list[LeagueResult]:
        """The results the newest closed week lacks: its players with XP and no result, placed as the close placed
        everyone (published players at their result's XP, whose tier in the week the result names)."""
        week = self.closed_through
        missing = set(self.closing_xp) - set(self.closed_xp)
        if week is None or not missing:
            return []
        players = {**self.closing_xp, **self.closed_xp}
        found = [r for r in close_week(week, players, self.results, self.rules) if r.user_id in missing]
        for result in found:
            self.apply_result(result)
        return found

    def _closed(self, week: str) -> None:
        """``week`` has results: it and every older week are closed, their XP no longer needed (but the newest
        closed week's, kept to finish it after a restart)."""
        self.closed_through = week
        self.closing_xp, self.closed_xp = dict(self.week_xp.get(week, {})), {}
        for old in [w for w in self.week_xp if w <= week]:
            self._drop(old)

    def _drop(self, week: str) -> None:
        del self.week_xp[week]
        self._placed.pop(week, None)
        for key in [k for k in self._orders if k[0] == week]:
            del self._orders[key]

    def _place(self, week: str, user: str) -> None:
        tier = tier_in(week, self.results.get(user))
        placed = self._placed.setdefault(week, {})
        old = placed.get(user)
        if old == tier:
            return
        if old is not None:
            self._unplace(week, user)
        placed[user] = tier
        if not self.bulk:
            self._orders.setdefault((week, tier), SortedList()).add((placement_key(user, week), user))

    def _unplace(self, week: str, user: str) -> None:
        tier = self._placed.get(week, {}).pop(user, None)
        if tier is None or self.bulk:
            return
        order = self._orders.get((week, tier))
        if order is not None:
            order.discard((placement_key(user, week), user))
            if not order:
                del self._orders[(week, tier)]

    # --- reading --------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Students with a result (a tier other than the starting one possibly)."""
        return len(self.results)

    def players(self, week: str) -> int:
        return len(self.week_xp.get(week, {}))

    def open_weeks(self) -> list[str]:
        return sorted(self.week_xp)

    def view(self, user_id: str, now: datetime, neighbours: int) -> dict[str, Any]:
        """What ``GET /v1/leagues/users/{id}`` answers: the student's tier this week (UTC), and when they earned XP
        in it their group: rank, zone, the group's standings, ``neighbours`` either side; the last result."""
        week = iso_week(now.date())
        last = self.results.get(user_id)
        tier = tier_in(week, last) if last is None or last.week <= week else last.next_tier
        body: dict[str, Any] = {
            "user_id": user_id,
            "week": week,
            "tier": tier.value,
            "tier_number": TIERS.index(tier) + 1,
            "tiers": len(TIERS),
            "ends_at": week_ends(week).isoformat(),
            "closes_at": closes_at(week, self.grace_seconds).isoformat(),
            "days_left": days_left(week, now),
            # the week before still closing (the grace): this week's tiers, and so groups, are not final yet
            "provisional": any(w < week for w in self.week_xp),
            "last_result": None
            if last is None
            else {"week": last.week, "tier": last.tier.value, "next_tier": last.next_tier.value},
            "placed": False,
        }
        placed = self._placed.get(week, {}).get(user_id)
        order = self._orders.get((week, placed)) if placed is not None else None
        if placed is None or order is None:
            return body
        position = int(order.index((placement_key(user_id, week), user_id)))
        index = group_index(position, len(order), self.rules.group_size)
        start, end = group_bounds(len(order), self.rules.group_size)[index]
        xp = self.week_xp[week]
        standings = rank_group(((u, xp[u]) for _key, u in order.islice(start, end)), week)
        size = len(standings)
        mine = next(r for r in standings if r.user_id == user_id)
        promoted, demoted = moves(size, self.rules)

        def row(rank: int, user: str, points: int) -> dict[str, Any]:
            return {"rank": rank, "user_id": user, "week_xp": points, "zone": zone(rank, size, placed, self.rules)}

        i = mine.rank - 1
        body.update(
            placed=True,
            tier=placed.value,
            tier_number=TIERS.index(placed) + 1,
            group_id=group_id(week, placed, index),
            group_size=size,
            rank=mine.rank,
            week_xp=mine.week_xp,
            zone=zone(mine.rank, size, placed, self.rules),
            promoted=promoted if placed != TIERS[-1] else 0,
            demoted=demoted if placed != LOWEST else 0,
            above=[row(*r) for r in standings[max(0, i - neighbours) : i]],
            below=[row(*r) for r in standings[i + 1 : i + 1 + neighbours]],
            standings=[row(*r) for r in standings],
        )
        return body
