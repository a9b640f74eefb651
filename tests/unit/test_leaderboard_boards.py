"""Leaderboards in memory (leaderboards/boards.py): ranks and ties, neighbours at the edges, standings applied by
seq, period rollover, removal, and a bulk load giving the same boards as one standing at a time."""

from __future__ import annotations

import random
from datetime import date

import pytest

from leaderboards.boards import (
    ALL,
    GLOBAL,
    Board,
    Boards,
    Entry,
    InvalidStanding,
    NotOnBoard,
    UnknownBoard,
    iso_week,
    load,
    previous_week,
    resolve_period,
    week_monday,
)
from schemas.gamification import BoardXp, Standing

DAY = date(2026, 12, 5)  # a Saturday of 2026-W49
WEEK = "2026-W49"


def xp(total: int, day_xp: int = 0, week_xp: int = 0, day: date = DAY, week: str | None = None) -> BoardXp:
    return BoardXp(total=total, day=day, day_xp=day_xp, week=week or iso_week(day), week_xp=week_xp)


def standing(user: str, seq: int, g: BoardXp, **courses: BoardXp) -> Standing:
    return Standing(user_id=user, level=1, global_xp=g, courses=courses, seq=seq)


def board_of(scores: dict[str, int]) -> Board:
    board = Board()
    for user, score in scores.items():
        board.set(user, score)
    return board


# --- one board -----------------------------------------------------------------------------------------------------


def test_top_ranks_by_xp_with_competition_ranks_and_ties_by_user_id() -> None:
    board = board_of({"dave": 50, "carol": 80, "bob": 80, "erin": 10, "alice": 100, "zed": 80})
    assert board.top(10) == [
        Entry(1, "alice", 100),
        Entry(2, "bob", 80),
        Entry(2, "carol", 80),
        Entry(2, "zed", 80),
        Entry(5, "dave", 50),
        Entry(6, "erin", 10),
    ]
    assert board.top(3) == board.top(10)[:3]
    assert board.rank_of(80) == 2 and board.rank_of(79) == 5 and board.rank_of(1000) == 1


def test_set_replaces_a_score_and_zero_removes_the_student() -> None:
    board = board_of({"a": 10, "b": 20})
    board.set("a", 30)
    assert board.top(5) == [Entry(1, "a", 30), Entry(2, "b", 20)]
    board.set("b", 0)
    assert board.top(5) == [Entry(1, "a", 30)] and len(board) == 1 and board.xp("b") is None
    board.set("nobody", 0)
    assert len(board) == 1
    with pytest.raises(ValueError, match="negative"):
        board.set("a", -1)


def test_position_gives_neighbours_clipped_at_both_ends_with_their_ranks() -> None:
    board = board_of({f"u{i}": 100 - i for i in range(10)} | {"tie": 95})  # tie shares rank 6 with u5
    first = board.position("u0", neighbours=2)
    assert (first.rank, first.xp, first.students) == (1, 100, 11)
    assert first.above == [] and first.below == [Entry(2, "u1", 99), Entry(3, "u2", 98)]
    last = board.position("u9", neighbours=3)
    assert last.rank == 11 and last.below == []
    assert last.above == [Entry(8, "u6", 94), Entry(9, "u7", 93), Entry(10, "u8", 92)]
    middle = board.position("u6", neighbours=1)
    assert middle.above == [Entry(6, "u5", 95)]  # "tie" < "u5": listed before it
    tied = board.position("u5", neighbours=1)
    assert (tied.rank, tied.above, tied.below) == (6, [Entry(6, "tie", 95)], [Entry(8, "u6", 94)])
    assert board.position("u3").above == [] and board.position("u3").rank == 4
    with pytest.raises(NotOnBoard):
        board.position("stranger")


def test_ranks_agree_with_a_plain_sort_on_random_boards() -> None:
    rng = random.Random(7)
    board, scores = Board(), {}
    for _ in range(3_000):
        user, score = f"s{rng.randrange(400)}", rng.choice([0, rng.randrange(1, 60)])
        board.set(user, score)
        if score:
            scores[user] = score
        else:
            scores.pop(user, None)
    expected = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    ranks = {u: 1 + sum(1 for v in scores.values() if v > s) for u, s in scores.items()}
    assert board.top(len(scores) + 5) == [Entry(ranks[u], u, s) for u, s in expected]
    for user in rng.sample(sorted(scores), 40):
        pos = board.position(user, neighbours=3)
        i = [u for u, _ in expected].index(user)
        window = [Entry(ranks[u], u, s) for u, s in expected[max(0, i - 3) : i + 4]]
        assert [*pos.above, Entry(pos.rank, user, pos.xp), *pos.below] == window


# --- all boards ----------------------------------------------------------------------------------------------------


def test_a_standing_puts_the_student_on_global_and_course_boards_for_all_day_and_week() -> None:
    boards = Boards()
    boards.apply(standing("ann", 1, xp(120, 20, 50), c1=xp(70, 20, 30), c2=xp(50, 0, 20)))
    day = DAY.isoformat()
    assert boards.lookup(GLOBAL, ALL).top(1) == [Entry(1, "ann", 120)]
    assert boards.lookup(GLOBAL, day).top(1) == [Entry(1, "ann", 20)]
    assert boards.lookup(GLOBAL, WEEK).top(1) == [Entry(1, "ann", 50)]
    assert boards.lookup("course:c1", WEEK).top(1) == [Entry(1, "ann", 30)]
    assert len(boards.lookup("course:c2", day)) == 0  # 0 XP that day: not on the board (kept period: empty)
    assert boards.scopes() == ["course:c1", "course:c2", GLOBAL]


def test_seq_orders_standings_an_older_or_repeated_one_changes_nothing() -> None:
    boards = Boards()
    assert boards.apply(standing("ann", 5, xp(100, 10, 10))).outcome == "applied"
    assert boards.apply(standing("ann", 4, xp(10, 1, 1))).outcome == "stale"
    assert boards.apply(standing("ann", 5, xp(999, 1, 1))).outcome == "stale"
    assert boards.lookup(GLOBAL, ALL).position("ann").xp == 100 and boards.seq("ann") == 5
    assert boards.apply(standing("ann", 6, xp(130, 40, 40))).outcome == "applied"
    assert boards.lookup(GLOBAL, ALL).position("ann").xp == 130


def test_a_new_day_keeps_yesterday_and_drops_the_day_before() -> None:
    boards = Boards()
    d1, d2, d3 = date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 3)
    boards.apply(standing("ann", 1, xp(10, 10, 10, day=d1)))
    boards.apply(standing("bob", 1, xp(20, 20, 20, day=d2)))
    assert len(boards.lookup(GLOBAL, d1.isoformat())) == 1  # yesterday: kept
    boards.apply(standing("cid", 1, xp(5, 5, 5, day=d3)))
    assert boards.kept_periods()[:3] == [ALL, d3.isoformat(), d2.isoformat()]
    with pytest.raises(UnknownBoard, match=r"2026-12-01 of 'global' is not kept"):
        boards.lookup(GLOBAL, d1.isoformat())
    assert boards.lookup(GLOBAL, d2.isoformat()).top(5) == [Entry(1, "bob", 20)]
    # A standing for a dropped day still moves the all-time board; its day is reported as skipped, not applied.
    late = boards.apply(standing("ann", 2, xp(40, 30, 30, day=d1)))
    assert ("late", GLOBAL, d1.isoformat()) in late.skipped
    assert boards.lookup(GLOBAL, ALL).position("ann").xp == 40


def test_weeks_roll_over_like_days_and_iso_weeks_cross_years() -> None:
    assert iso_week(date(2027, 1, 1)) == "2026-W53" and previous_week("2027-W01") == "2026-W53"
    boards = Boards()
    for i, week in enumerate(["2026-W51", "2026-W52", "2026-W53"]):
        monday = week_monday(week)
        boards.apply(standing(f"s{i}", 1, xp(10 + i, 1, 10 + i, day=monday, week=week)))
    assert [p for p in boards.kept_periods() if "W" in p] == ["2026-W53", "2026-W52"]
    with pytest.raises(UnknownBoard, match="not kept"):
        boards.lookup(GLOBAL, "2026-W51")
    assert len(boards.lookup(GLOBAL, ALL)) == 3  # all-time keeps everyone


def test_a_standing_far_ahead_of_today_is_refused_for_its_periods() -> None:
    boards = Boards()
    boards.apply(standing("ann", 1, xp(10, 10, 10)), today=DAY)
    far = date(2031, 1, 1)
    result = boards.apply(standing("bob", 1, xp(50, 50, 50, day=far)), today=DAY)
    assert {r for r, _, _ in result.skipped} == {"future"}
    assert boards.newest_day == DAY.isoformat() and len(boards.lookup(GLOBAL, DAY.isoformat())) == 1


def test_a_course_left_out_of_a_newer_standing_removes_the_student_from_its_boards() -> None:
    boards = Boards()
    boards.apply(standing("ann", 1, xp(30, 5, 5), c1=xp(30, 5, 5)))
    boards.apply(standing("bob", 1, xp(20, 5, 5), c1=xp(20, 5, 5)))
    boards.apply(standing("ann", 2, xp(40, 15, 15)))
    assert boards.lookup("course:c1", ALL).top(5) == [Entry(1, "bob", 20)]
    boards.apply(standing("bob", 2, xp(20, 5, 5)))
    with pytest.raises(UnknownBoard, match="no leaderboard 'course:c1'"):
        boards.lookup("course:c1", ALL)


def test_forget_removes_a_student_everywhere() -> None:
    boards = Boards()
    boards.apply(standing("ann", 1, xp(30, 5, 5), c1=xp(30, 5, 5)))
    boards.apply(standing("bob", 1, xp(20, 5, 5)))
    assert boards.forget("ann") and not boards.forget("ann")
    assert [e.user_id for _, _, b in boards.boards() for e in b.top(10)] == ["bob"] * 3
    assert len(boards) == 1 and boards.scopes() == [GLOBAL]


def test_an_invalid_week_is_refused_naming_it_before_anything_changes() -> None:
    boards = Boards()
    bad = standing("ann", 1, xp(10, 1, 1, week="2026-W60"))
    with pytest.raises(InvalidStanding, match=r"'ann'.*2026-W60"):
        boards.apply(bad)
    assert len(boards) == 0 and boards.scopes() == []


def test_unknown_boards_say_why() -> None:
    boards = Boards()
    boards.apply(standing("ann", 1, xp(10, 1, 1)))
    with pytest.raises(UnknownBoard, match="neither 'global' nor 'course:"):
        boards.lookup("school", ALL)
    with pytest.raises(UnknownBoard, match="no student has XP"):
        boards.lookup("course:zz", ALL)


def test_a_bulk_load_gives_the_same_boards_as_one_standing_at_a_time() -> None:
    rng = random.Random(3)
    standings = [
        standing(f"s{rng.randrange(300)}", seq, xp(rng.randrange(0, 90), rng.randrange(0, 9), rng.randrange(0, 20)),
                 **{f"c{rng.randrange(3)}": xp(rng.randrange(1, 50), rng.randrange(0, 5), rng.randrange(0, 9))})
        for seq in range(1_500)
    ]  # fmt: skip
    one_by_one = Boards()
    for s in standings:
        one_by_one.apply(s)
    bulk = load(standings)
    assert sorted((s, p) for s, p, _ in bulk.boards()) == sorted((s, p) for s, p, _ in one_by_one.boards())
    for scope, period, board in one_by_one.boards():
        assert bulk.lookup(scope, period).top(10_000) == board.top(10_000)
    assert bulk.counts() == one_by_one.counts()


def test_an_unsealed_board_refuses_reads() -> None:
    board = Board(sealed=False)
    board.set("a", 1)
    with pytest.raises(RuntimeError, match="seal"):
        board.top(1)
    board.seal()
    assert board.top(1) == [Entry(1, "a", 1)]


def test_api_periods_resolve_against_today() -> None:
    assert resolve_period("all", DAY) == ALL
    assert resolve_period("today", DAY) == "2026-12-05" and resolve_period("yesterday", DAY) == "2026-12-04"
    assert resolve_period("this-week", DAY) == WEEK and resolve_period("last-week", DAY) == "2026-W48"
    assert resolve_period("2026-11-30", DAY) == "2026-11-30" and resolve_period("2026-W01", DAY) == "2026-W01"
    for bad in ("month", "2026-13-01", "2026-W99", "20261205"):
        with pytest.raises(ValueError, match=bad):
            resolve_period(bad, DAY)


# --- snapshots -----------------------------------------------------------------------------------------------------


def test_snapshots_take_the_top_of_current_boards_with_distinct_ids_for_tied_ranks() -> None:
    from datetime import UTC, datetime

    from leaderboards.snapshots import slot, snapshot_rows

    boards = Boards()
    boards.apply(standing("old", 1, xp(70, 70, 70, day=date(2026, 12, 4))))  # yesterday: kept, not current
    boards.apply(standing("ann", 1, xp(50, 5, 5), c1=xp(50, 5, 5)))
    boards.apply(standing("bob", 1, xp(50, 5, 5)))
    boards.apply(standing("cid", 1, xp(10, 1, 1)))
    taken = slot(datetime(2026, 12, 5, 10, 7, 31, tzinfo=UTC), 300)
    assert taken == datetime(2026, 12, 5, 10, 5, tzinfo=UTC)
    rows = snapshot_rows(boards, taken, top=2)
    by_board: dict[tuple[str, str], list[tuple[int, str, int]]] = {}
    for r in rows:
        by_board.setdefault((r.board, r.period), []).append((r.rank, r.user_id, r.xp))
    assert set(by_board) == {(s, p) for s in (GLOBAL, "course:c1") for p in (ALL, DAY.isoformat(), WEEK)}
    assert by_board[(GLOBAL, ALL)] == [(1, "old", 70), (2, "ann", 50)]
    assert by_board[(GLOBAL, DAY.isoformat())] == [(1, "ann", 5), (1, "bob", 5)]
    ids = [r.snapshot_id for r in rows]
    assert len(set(ids)) == len(ids)
    assert f"global:{DAY.isoformat()}:{taken.isoformat()}:2" in ids
    assert snapshot_rows(boards, taken, top=2) == rows  # the same boards and slot: the same ids
