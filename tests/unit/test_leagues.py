"""Weekly leagues' rules (``processors.gamification.leagues``): tiers, groups, ranks, moves, closing a week."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime

import pytest

from config.settings import Settings
from processors.gamification.leagues import (
    HIGHEST,
    LOWEST,
    TIERS,
    LastResult,
    LeagueRules,
    close_week,
    closes_at,
    days_left,
    group_bounds,
    group_count,
    group_index,
    moves,
    outcome,
    place,
    placement_key,
    rank_group,
    tier_down,
    tier_in,
    tier_up,
    week_ends,
    weeks_to_close,
    zone,
)
from processors.gamification.weeks import iso_week, week_monday
from schemas.gamification import LeagueOutcome, LeagueResult, LeagueTier

RULES = LeagueRules(group_size=30, promote=7, demote=5)
WEEK = "2026-W49"  # Monday 2026-11-30 .. Sunday 2026-12-06


def players(n: int, tier: LeagueTier = LOWEST, xp: int = 10) -> dict[str, tuple[LeagueTier, int]]:
    return {f"{tier.value}-{i:03d}": (tier, xp + i) for i in range(n)}


# --- tiers -----------------------------------------------------------------------------------------------------


def test_tiers_run_from_bronze_to_diamond_and_stop_at_both_ends() -> None:
    assert [t.value for t in TIERS][:3] == ["bronze", "silver", "gold"] and len(TIERS) == 10
    assert (LeagueTier.bronze, LeagueTier.diamond) == (LOWEST, HIGHEST)
    assert tier_up(LeagueTier.bronze) == LeagueTier.silver and tier_down(LeagueTier.silver) == LeagueTier.bronze
    assert tier_up(HIGHEST) == HIGHEST and tier_down(LOWEST) == LOWEST


def test_the_tier_in_a_week_comes_from_the_newest_earlier_result() -> None:
    assert tier_in(WEEK, None) == LOWEST  # a new student
    promoted = LastResult("2026-W47", LeagueTier.gold, LeagueTier.sapphire)
    assert tier_in(WEEK, promoted) == LeagueTier.sapphire  # a week away since (W48) changes nothing
    assert tier_in("2026-W47", promoted) == LeagueTier.gold  # the week the result is of
    with pytest.raises(ValueError, match="2026-W47, after 2026-W46"):
        tier_in("2026-W46", promoted)


# --- weeks -----------------------------------------------------------------------------------------------------


def test_weeks_are_iso_weeks_in_utc_and_close_after_the_grace() -> None:
    assert week_monday(WEEK) == date(2026, 11, 30) and iso_week(date(2026, 12, 6)) == WEEK
    assert iso_week(date(2027, 1, 1)) == "2026-W53"  # ISO years have 52 or 53 weeks
    assert week_ends(WEEK) == datetime(2026, 12, 7, tzinfo=UTC)
    assert closes_at(WEEK, 600) == datetime(2026, 12, 7, 0, 10, tzinfo=UTC)
    for bad in ("2026-49", "2026-W54", "W49"):
        with pytest.raises(ValueError, match=r"ISO week|not a week"):
            week_monday(bad)


def test_days_left_counts_a_started_day() -> None:
    assert days_left(WEEK, datetime(2026, 11, 30, 0, 0, tzinfo=UTC)) == 7
    assert days_left(WEEK, datetime(2026, 12, 6, 15, 0, tzinfo=UTC)) == 1
    assert days_left(WEEK, datetime(2026, 12, 7, 0, 5, tzinfo=UTC)) == 0


def test_only_the_week_just_ended_closes_after_its_grace_and_once() -> None:
    before = datetime(2026, 12, 7, 0, 9, 59, tzinfo=UTC)
    after = datetime(2026, 12, 7, 0, 10, tzinfo=UTC)
    assert weeks_to_close([WEEK, "2026-W50"], None, before, 600) == []
    assert weeks_to_close([WEEK, "2026-W50"], None, after, 600) == [WEEK]
    assert weeks_to_close([WEEK], WEEK, after, 600) == []  # already closed
    assert weeks_to_close(["2026-W47", "2026-W48", WEEK], "2026-W47", after, 600) == [WEEK]  # W48: away too long
    assert weeks_to_close([], None, after, 600) == []  # an empty week: nothing


# --- groups ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "groups", "sizes"),
    [(0, 0, set()), (1, 1, {1}), (29, 1, {29}), (30, 1, {30}), (44, 1, {44}), (45, 2, {22, 23}), (60, 2, {30}),
     (89, 3, {29, 30}), (1000, 33, {30, 31})],
)  # fmt: skip
def test_groups_hold_about_the_group_size_evenly(n: int, groups: int, sizes: set[int]) -> None:
    assert group_count(n, 30) == groups
    bounds = group_bounds(n, 30)
    assert {end - start for start, end in bounds} == sizes
    assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]] and (not bounds or bounds[-1][1] == n)
    # the index of a position is the group whose bounds hold it
    for position in range(n):
        index = group_index(position, n, 30)
        assert bounds[index][0] <= position < bounds[index][1]


def test_group_index_refuses_a_position_outside_the_tier() -> None:
    with pytest.raises(ValueError, match="outside"):
        group_index(5, 5, 30)


def test_placement_is_deterministic_whatever_order_the_players_come_in() -> None:
    everyone = {**players(70), **players(40, LeagueTier.gold)}
    items = list(everyone.items())
    random.Random(3).shuffle(items)
    assert place(WEEK, dict(items), RULES) == place(WEEK, everyone, RULES)
    groups = place(WEEK, everyone, RULES)
    assert [g.group_id for g in groups] == ["2026-W49:bronze:1", "2026-W49:bronze:2", "2026-W49:gold:1"]
    assert sorted(len(g.standings) for g in groups) == [35, 35, 40]
    members = Counter(r.user_id for g in groups for r in g.standings)
    assert set(members) == set(everyone) and set(members.values()) == {1}  # every player in exactly one group
    assert all(g.tier == everyone[r.user_id][0] for g in groups for r in g.standings)  # with their own tier


def test_groups_change_from_week_to_week() -> None:
    everyone = players(120)

    def firsts(week: str) -> set[str]:
        return {r.user_id for r in place(week, everyone, RULES)[0].standings}

    assert firsts(WEEK) != firsts("2026-W50")
    assert placement_key("a", WEEK) == placement_key("a", WEEK) != placement_key("a", "2026-W50")


def test_students_without_xp_in_the_week_are_not_placed() -> None:
    everyone = {"a": (LOWEST, 0), "b": (LOWEST, 5)}
    assert [[r.user_id for r in g.standings] for g in place(WEEK, everyone, RULES)] == [["b"]]
    assert place(WEEK, {}, RULES) == []


def test_ranks_are_by_week_xp_with_ties_in_a_fixed_order() -> None:
    members = [("a", 10), ("b", 30), ("c", 10), ("d", 10)]
    ranked = rank_group(members, WEEK)
    assert [r.rank for r in ranked] == [1, 2, 3, 4] and ranked[0].user_id == "b"
    tied = [r.user_id for r in ranked[1:]]
    assert tied == sorted(["a", "c", "d"], key=lambda u: placement_key(u, WEEK))
    assert rank_group(reversed(members), WEEK) == ranked


# --- moves -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [(1, (1, 0)), (2, (1, 0)), (6, (2, 1)), (12, (3, 2)), (20, (5, 3)), (29, (7, 4)), (30, (7, 5)), (44, (7, 5))],
)
def test_a_full_group_moves_seven_up_and_five_down_a_smaller_one_fewer(size: int, expected: tuple[int, int]) -> None:
    assert moves(size, RULES) == expected


def test_nobody_moves_both_ways_even_when_the_rules_nearly_fill_a_group() -> None:
    tight = LeagueRules(group_size=10, promote=6, demote=3)
    for size in range(1, 20):
        up, down = moves(size, tight)
        assert up + down <= size


def test_outcomes_at_the_edges_of_the_zones_and_of_the_tiers() -> None:
    silver = LeagueTier.silver
    assert outcome(7, 30, silver, RULES) == (LeagueOutcome.promoted, LeagueTier.gold)
    assert outcome(8, 30, silver, RULES) == (LeagueOutcome.stayed, silver)
    assert outcome(25, 30, silver, RULES) == (LeagueOutcome.stayed, silver)
    assert outcome(26, 30, silver, RULES) == (LeagueOutcome.demoted, LeagueTier.bronze)
    assert outcome(1, 30, HIGHEST, RULES) == (LeagueOutcome.stayed, HIGHEST)  # nothing above diamond
    assert outcome(30, 30, LOWEST, RULES) == (LeagueOutcome.stayed, LOWEST)  # nothing below bronze
    assert zone(1, 30, HIGHEST, RULES) == "safe" and zone(30, 30, LOWEST, RULES) == "safe"
    assert zone(1, 1, LOWEST, RULES) == "promotion"  # alone in a tier: top of the group


def test_rules_refuse_groups_where_everyone_would_move() -> None:
    with pytest.raises(ValueError, match=r"promote \(20\) \+ demote \(10\) must be less than the group size \(30\)"):
        LeagueRules(30, 20, 10)
    with pytest.raises(ValueError, match="cannot be negative"):
        LeagueRules(30, -1, 5)
    with pytest.raises(ValueError, match="league_promote \\(25\\) \\+ league_demote \\(5\\)"):
        Settings(league_promote=25, league_demote=5)


# --- closing a week --------------------------------------------------------------------------------------------


def test_the_first_week_everyone_plays_bronze_and_the_top_seven_are_promoted() -> None:
    week_xp = {f"s{i:02d}": 100 - i for i in range(30)}  # s00 first ... s29 last
    results = close_week(WEEK, week_xp, {}, RULES)
    assert len(results) == 30 and [r.user_id for r in results] == sorted(week_xp)
    by_user = {r.user_id: r for r in results}
    assert by_user["s00"] == LeagueResult(
        league_result_id="s00:league:2026-W49", user_id="s00", week=WEEK, week_start=date(2026, 11, 30),
        tier=LeagueTier.bronze, group_id="2026-W49:bronze:1", group_size=30, rank=1, week_xp=100,
        outcome=LeagueOutcome.promoted, next_tier=LeagueTier.silver,
    )  # fmt: skip
    assert [by_user[f"s{i:02d}"].outcome for i in (6, 7, 29)] == [LeagueOutcome.promoted, LeagueOutcome.stayed,
                                                                   LeagueOutcome.stayed]  # fmt: skip
    assert Counter(r.next_tier for r in results) == {LeagueTier.silver: 7, LeagueTier.bronze: 23}


def test_a_later_week_plays_in_the_tiers_the_results_left() -> None:
    last = {f"g{i:02d}": LastResult("2026-W48", LeagueTier.silver, LeagueTier.gold) for i in range(30)}
    last["new-ish"] = LastResult("2026-W40", LeagueTier.bronze, LeagueTier.bronze)
    week_xp = {**{u: 50 + i for i, u in enumerate(last)}, "fresh": 1}
    results = {r.user_id: r for r in close_week(WEEK, week_xp, last, RULES)}
    gold = [r for r in results.values() if r.tier == LeagueTier.gold]
    assert len(gold) == 30 and {r.group_id for r in gold} == {"2026-W49:gold:1"}
    assert Counter(r.outcome for r in gold) == {LeagueOutcome.promoted: 7, LeagueOutcome.stayed: 18,
                                                LeagueOutcome.demoted: 5}  # fmt: skip
    assert {r.next_tier for r in gold if r.outcome == LeagueOutcome.demoted} == {LeagueTier.silver}
    # the two bronze players share a group of two: the better is promoted, nobody is demoted from bronze
    bronze = sorted((r for r in results.values() if r.tier == LeagueTier.bronze), key=lambda r: r.rank)
    assert [(r.user_id, r.outcome) for r in bronze] == [("new-ish", LeagueOutcome.promoted),
                                                        ("fresh", LeagueOutcome.stayed)]  # fmt: skip


def test_closing_is_the_same_whatever_order_the_standings_came_in() -> None:
    rng = random.Random(7)
    week_xp = {f"u{i:03d}": rng.randint(1, 40) for i in range(200)}  # many ties
    last = {u: LastResult("2026-W48", LOWEST, rng.choice(TIERS[:3])) for u in list(week_xp)[:150]}
    shuffled = list(week_xp.items())
    rng.shuffle(shuffled)
    assert close_week(WEEK, dict(shuffled), last, RULES) == close_week(WEEK, week_xp, last, RULES)


def test_an_empty_week_has_no_results() -> None:
    assert close_week(WEEK, {}, {}, RULES) == []
    assert close_week(WEEK, {"idle": 0}, {}, RULES) == []  # no XP that week: keeps the tier, no result
