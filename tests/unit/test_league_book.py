"""The leagues the leaderboard service holds (``leaderboards.leagues``): the groups it shows are the rules' groups,
a rebuild holds what applying one by one holds, and a week closes once, as the rules say."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from leaderboards.leagues import LeagueBook
from processors.gamification.leagues import LeagueRules, close_week, place, tier_in
from processors.gamification.weeks import iso_week
from schemas.gamification import BoardXp, LeagueOutcome, LeagueResult, LeagueTier, Standing

RULES = LeagueRules(group_size=10, promote=3, demote=2)
NOW = datetime(2026, 12, 5, 15, 0, tzinfo=UTC)  # Saturday of 2026-W49
WEEK, LAST_WEEK = iso_week(NOW.date()), iso_week(NOW.date() - timedelta(days=7))


def standing(user: str, week_xp: int, day: date, seq: int = 1) -> Standing:
    xp = BoardXp(total=week_xp, day=day, day_xp=week_xp, week=iso_week(day), week_xp=week_xp)
    return Standing(user_id=user, level=1, global_xp=xp, seq=seq)


def book_of(standings: list[Standing], bulk: bool) -> LeagueBook:
    book = LeagueBook(RULES, 600.0, bulk=bulk)
    for s in standings:
        book.apply_standing(s)
    if bulk:
        book.seal()
    return book


def test_the_group_shown_is_the_rules_group_and_a_rebuild_shows_the_same() -> None:
    rng = random.Random(5)
    standings = [standing(f"u{i:02d}", rng.randint(1, 30), NOW.date()) for i in range(47)]
    live, rebuilt = book_of(standings, bulk=False), book_of(list(reversed(standings)), bulk=True)
    groups = {r.user_id: g for g in place(WEEK, {s.user_id: (LeagueTier.bronze, s.global_xp.week_xp)
                                                  for s in standings}, RULES) for r in g.standings}  # fmt: skip
    for s in standings:
        view = live.view(s.user_id, NOW, neighbours=2)
        assert view == rebuilt.view(s.user_id, NOW, neighbours=2)
        group = groups[s.user_id]
        assert view["group_id"] == group.group_id and view["group_size"] == len(group.standings)
        assert [(r["rank"], r["user_id"], r["week_xp"]) for r in view["standings"]] == list(group.standings)
        assert view["standings"][view["rank"] - 1]["user_id"] == s.user_id
        assert len(view["above"]) == min(2, view["rank"] - 1)
    assert live.view("u00", NOW, 0)["days_left"] == 2 and live.view("u00", NOW, 0)["tier"] == "bronze"


def test_a_student_without_xp_this_week_is_shown_their_tier_unplaced() -> None:
    book = book_of([standing("a", 5, NOW.date()), standing("idle", 9, NOW.date() - timedelta(days=14))], bulk=True)
    view = book.view("idle", NOW, 3)
    assert (view["placed"], view["tier"], view["last_result"]) == (False, "bronze", None)
    assert book.view("never-seen", NOW, 3)["placed"] is False


def test_the_week_just_ended_closes_once_after_the_grace_and_tiers_move_on() -> None:
    players = [standing(f"p{i:02d}", 10 + i, NOW.date()) for i in range(12)]
    book = book_of(players, bulk=True)
    assert book.close_due(NOW) == []  # the week in progress: nothing to close
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    assert book.close_due(monday + timedelta(seconds=599)) == []  # the grace
    results = book.close_due(monday + timedelta(seconds=600))
    week_xp = {s.user_id: s.global_xp.week_xp for s in players}
    assert results == close_week(WEEK, week_xp, {}, RULES) and book.closed_through == WEEK
    assert book.close_due(monday + timedelta(days=1)) == []  # once
    assert not book.apply_standing(standing("straggler", 3, NOW.date()))  # the closed week takes no more
    promoted = next(r for r in results if r.outcome == LeagueOutcome.promoted)
    assert book.view(promoted.user_id, monday + timedelta(hours=1), 0)["tier"] == "silver"
    assert book.view(promoted.user_id, monday + timedelta(hours=1), 0)["last_result"]["next_tier"] == "silver"
    # the next week the promoted play silver, in a silver group
    book.apply_standing(standing(promoted.user_id, 50, date(2026, 12, 8), seq=2))
    view = book.view(promoted.user_id, monday + timedelta(days=1), 0)
    assert view["placed"] and view["group_id"] == "2026-W50:silver:1"
    assert tier_in("2026-W50", book.results[promoted.user_id]) == LeagueTier.silver


def test_results_read_back_close_their_week_and_an_erased_student_leaves() -> None:
    last_week_day = NOW.date() - timedelta(days=7)
    players = [standing(f"p{i:02d}", 10 + i, last_week_day) for i in range(12)]
    first = book_of(players, bulk=True)
    results = first.close_due(datetime(2026, 12, 1, tzinfo=UTC))  # Tuesday of W49: W48 closes
    assert len(results) == 12 and {r.week for r in results} == {LAST_WEEK}
    again = LeagueBook(RULES, 600.0, bulk=True)  # a restart: results and standings, in any order
    for r in results[:6]:
        again.apply_result(r)
    for s in players:
        again.apply_standing(s)
    for r in results[6:]:
        again.apply_result(r)
    again.seal()
    assert again.close_due(datetime(2026, 12, 1, tzinfo=UTC)) == [] and again.closed_through == LAST_WEEK
    assert again.forget("p00") and "p00" not in again.results and not again.forget("p00")


def test_a_week_older_than_the_one_just_ended_is_dropped_unclosed() -> None:
    ancient = standing("gone", 7, NOW.date() - timedelta(days=30))
    book = book_of([ancient, standing("here", 5, NOW.date())], bulk=True)
    assert book.view("here", NOW, 0)["provisional"] is True  # an older week not closed (yet)
    assert book.close_due(NOW) == [] and book.open_weeks() == [WEEK] and book.closed_through is None
    assert book.view("here", NOW, 0)["provisional"] is False


def test_a_restart_in_the_grace_still_closes_the_week_with_the_xp_of_students_who_moved_on() -> None:
    """Monday 00:00-00:10 (the grace): half the players already earned XP in the new week, so their newest
    standing is of the new week; it carries the week before, and a book rebuilt from those standings closes the
    week just ended exactly as the book that saw every standing."""
    players = [standing(f"p{i:02d}", 10 + i, NOW.date()) for i in range(14)]
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    moved_on = []
    for s in players[::2]:
        board = s.global_xp
        new = BoardXp(total=board.total + 4, day=monday.date(), day_xp=4, week="2026-W50", week_xp=4,
                      previous_week=board.week, previous_week_xp=board.week_xp)  # fmt: skip
        moved_on.append(Standing(user_id=s.user_id, level=1, global_xp=new, seq=2))
    live = book_of(players + moved_on, bulk=False)
    newest = {s.user_id: s for s in players + moved_on}  # the compacted topic: each student's newest standing
    rebuilt = book_of(list(newest.values()), bulk=True)
    close = monday + timedelta(seconds=600)
    expected = close_week(WEEK, {s.user_id: s.global_xp.week_xp for s in players}, {}, RULES)
    assert live.close_due(close) == expected
    assert rebuilt.close_due(close) == expected
    assert rebuilt.players("2026-W50") == 7  # and the new week goes on with its own XP
    # a standing of the new week whose week before is closed already adds nothing to it
    assert rebuilt.apply_standing(moved_on[0]) and rebuilt.closed_through == WEEK


def test_a_rebuilt_book_finishes_a_close_whose_publication_was_cut_short() -> None:
    """The process died after Kafka took half of a close's results: the restarted book, rebuilt from the standings
    (some moved on to the new week) and the results on the topic, publishes exactly the missing half, the same
    results as the whole close - then nothing more, and a rebuild after a whole close publishes nothing."""
    players = [standing(f"p{i:02d}", 10 + i, NOW.date()) for i in range(23)]
    monday = datetime(2026, 12, 7, tzinfo=UTC)
    close = monday + timedelta(seconds=600)
    full = book_of(players, bulk=False).close_due(close)
    assert len(full) == 23
    published = full[::2]
    newest = {s.user_id: s for s in players}
    for s in players[:5]:  # moved on: Monday's XP, the week before carried along
        board = s.global_xp
        newest[s.user_id] = Standing(user_id=s.user_id, level=1, seq=2, global_xp=BoardXp(
            total=board.total + 3, day=monday.date(), day_xp=3, week="2026-W50", week_xp=3,
            previous_week=board.week, previous_week_xp=board.week_xp))  # fmt: skip
    for order in (1, -1):  # standings first or results first: the topics are read together
        restarted = LeagueBook(RULES, 600.0, bulk=True)
        items: list[Standing | LeagueResult] = [*newest.values()]
        items = (items + list(published))[::order]
        for item in items:
            if isinstance(item, Standing):
                restarted.apply_standing(item)
            else:
                restarted.apply_result(item)
        restarted.seal()
        finished = restarted.close_due(close + timedelta(hours=1))
        assert sorted(finished, key=lambda r: r.user_id) == sorted(full[1::2], key=lambda r: r.user_id)
        assert restarted.close_due(close + timedelta(hours=2)) == []
    whole = LeagueBook(RULES, 600.0, bulk=True)
    for r in full:
        whole.apply_result(r)
    for s in newest.values():
        whole.apply_standing(s)
    whole.seal()
    assert whole.close_due(close + timedelta(hours=1)) == []
