"""The chaos reference's XP, level and achievements: written apart from the engine, so the two must agree on any
history sent in order, however it is cut into messages; and where an unordered arrival could change a result,
the reference says so instead of guessing."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engage.chaos.reference import CAP_DAYS, XP, Expected, Sent, expected_by_user, play_reference
from engage.chaos.verify import GAME_CHECKS, UNSURE, WORKER_CHECKS, game_differences
from processors.gamification.rules import rules_from_file
from processors.pipeline import UserRecord, ingest_and_play

RULES = rules_from_file()
START = datetime(2026, 3, 2, 8, tzinfo=UTC)  # 09:00 in Berlin
ZONE = "Europe/Berlin"


def _event(n: int, kind: str, at: datetime, course: str | None = "c1", **payload: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "user_id": "u", "event_type": kind, "event_time": at.isoformat(),
            "timezone": ZONE, "course_id": course, "payload": payload}  # fmt: skip


def _history(seed: int, days: int) -> list[dict[str, Any]]:
    """A student's events in time order: active and idle spells, lessons, quizzes passed and failed, courses."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    day = 0
    while day < days:
        if day and rng.random() < 0.12:
            day += rng.choice((2, 3, 9))  # a break (a freeze covers 1-2 days; 9 is a comeback)
            continue
        at = START + timedelta(days=day, minutes=rng.randrange(600))
        for _ in range(rng.randrange(1, 14)):
            at += timedelta(minutes=rng.randrange(1, 20))
            kind = rng.choice(("login", "lesson_completed", "lesson_completed", "quiz_submitted", "content_viewed",
                               "course_progress", "notification_delivered"))  # fmt: skip
            n = len(out)
            if kind == "quiz_submitted":
                out.append(_event(n, kind, at, quiz_id="q", score=float(rng.randrange(11)), max_score=10.0))
            elif kind == "course_progress":
                course = rng.choice(("c1", "c2"))
                out.append(_event(n, kind, at, course, progress_pct=rng.choice((40.0, 100.0))))
            else:
                out.append(_event(n, kind, at, None if kind in ("login", "content_viewed") else "c1"))
        day += 1
    return out


def _engine(events: list[dict[str, Any]], cuts: list[int]) -> tuple[int, int, set[str]]:
    """The worker's fold, message by message (``cuts``: where one message ends and the next begins; a message
    never spans more than ``CAP_DAYS`` local days, as the reference assumes of a client's batches)."""
    record = UserRecord.load(None, "u")
    day = [datetime.fromisoformat(e["event_time"]).toordinal() for e in events]  # UTC days: Berlin's by day
    opened = 0
    for i in range(len(events)):
        if i in cuts:
            opened = i
        elif day[i] - day[opened] > CAP_DAYS:
            cuts, opened = [*cuts, i], i
    bounds = [0, *sorted(set(cuts)), len(events)]
    for lo, hi in pairwise(bounds):
        if hi > lo:
            ingest_and_play(record, "u", events[lo:hi], None, RULES)
    return record.game.xp, record.game.level, set(record.game.unlocked)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 45), st.lists(st.integers(0, 600), max_size=40), st.booleans())
def test_the_reference_agrees_with_the_engine_on_any_history_sent_in_order(
    seed: int, days: int, cuts: list[int], resend: bool
) -> None:
    events = _history(seed, days)
    sent = events + events[: len(events) // 3] if resend else events  # a client retry: the ids count once
    xp, level, unlocked = _engine(sent, [c for c in cuts if c < len(sent)])
    exp = expected_by_user(sent, START + timedelta(days=days), RULES)["u"]
    assert (exp.xp, exp.level, set(exp.achievements)) == (xp, level, unlocked)
    assert exp.unsure == frozenset()  # nothing was unordered


def test_a_long_history_reaches_streak_bonuses_levels_and_every_kind_of_achievement() -> None:
    """The agreement above means something only if the histories reach what the rules pay for."""
    reached: set[str] = set()
    for seed in range(40):
        exp = expected_by_user(_history(seed, 45), START + timedelta(days=45), RULES)["u"]
        reached |= set(exp.achievements)
        assert exp.level == max(level for level in range(1, 101) if exp.xp >= round(100 * (level - 1) ** 1.5))
    assert {"first-lesson", "lessons.50", "quiz-streak.5", "streak.7", "busy-week", "course-finisher", "comeback",
            "level-5", "all-rounder"} <= reached  # fmt: skip


def test_xp_by_hand_daily_caps_streak_multiplier_and_milestone_bonus() -> None:
    events: list[dict[str, Any]] = []
    for day in range(8):
        at = START + timedelta(days=day)
        events.append(_event(len(events), "login", at, None))
        if day == 7:  # the 8th day: a streak of 8, x1.1
            events += [_event(len(events) + i, "lesson_completed", at + timedelta(minutes=i)) for i in range(12)]
    exp = expected_by_user(events, START + timedelta(days=8), RULES)["u"]
    # first activity: 6 days x 10 + 2 days x 11 (the 7th and 8th: streaks of 7 and 8, x1.1); lessons: capped at
    # 10 x 22 (20 x 1.1); the 7-day milestone: 50.
    assert exp.xp == 6 * 10 + 2 * 11 + 10 * 22 + 50
    assert exp.level == 3  # 283 XP for level 3, 520 for level 4
    assert exp.achievements == ("first-lesson", "lessons.10", "streak.3", "streak.7")  # 12 lessons: no busy week


def test_in_a_row_follows_the_send_order_and_all_of_needs_every_part() -> None:
    at = START
    quiz = [_event(i, "quiz_submitted", at + timedelta(minutes=i), quiz_id="q", score=s, max_score=10.0)
            for i, s in enumerate((9.0, 9.0, 2.0, 9.0, 9.0, 9.0))]  # fmt: skip
    exp = expected_by_user(quiz, at + timedelta(days=1), RULES)["u"]
    assert "quiz-streak.3" in exp.achievements and "quiz-streak.5" not in exp.achievements
    assert "all-rounder" not in exp.achievements  # no lesson, no 7-day streak
    exp = expected_by_user(quiz[:2] + quiz[3:5] + [quiz[2]], at + timedelta(days=1), RULES)["u"]
    assert "quiz-streak.3" in exp.achievements  # 4 passed in a row, then the failure


def test_an_unordered_group_makes_only_what_its_order_could_change_unsure() -> None:
    quiz = [_event(i, "quiz_submitted", START + timedelta(minutes=i), quiz_id="q", score=s, max_score=10.0)
            for i, s in enumerate((9.0, 9.0, 9.0, 2.0))]  # fmt: skip
    exp = expected_by_user(quiz, START + timedelta(days=1), RULES, unordered=[["e2", "e3"]])["u"]
    assert exp.unsure == {"quiz-streak.3", "quiz-streak.5", "all-rounder"}  # one day: XP is the same any order
    exp = expected_by_user(quiz, START + timedelta(days=1), RULES, unordered=[["e0", "e1", "e2"]])["u"]
    assert exp.unsure == frozenset()  # only passes: any order is three in a row

    # A 7-day streak, then a group holding days 8 and 9: day 9 arriving first is priced on a streak that lacks
    # day 8 (a freeze covers it: 8 days, x1.1) rather than 9 days (x1.1): the same multiplier.
    days = [_event(d, "login", START + timedelta(days=d), None) for d in range(9)]
    exp = expected_by_user(days, START + timedelta(days=9), RULES, unordered=[["e7", "e8"]])["u"]
    assert XP not in exp.unsure
    # ... but at 13 days a late day 13 decides between a streak of 13 (x1.1) and 14 (x1.2).
    days = [_event(d, "login", START + timedelta(days=d), None) for d in range(15)]
    exp = expected_by_user(days, START + timedelta(days=15), RULES, unordered=[["e12", "e13"]])["u"]
    assert XP in exp.unsure and "level-5" in exp.unsure


def test_a_comeback_is_unsure_when_a_later_day_could_arrive_before_the_one_that_closes_the_gap() -> None:
    days = [_event(0, "login", START, None), _event(1, "login", START + timedelta(days=5), None),
            _event(2, "login", START + timedelta(days=10), None)]  # fmt: skip
    exp = expected_by_user(days, START + timedelta(days=11), RULES)["u"]
    assert "comeback" not in exp.achievements and exp.unsure == frozenset()
    exp = expected_by_user(days, START + timedelta(days=11), RULES, unordered=[["e1", "e2"]])["u"]
    assert "comeback" in exp.unsure  # day 10 first: 9 days after day 0


def test_sent_rows_need_no_event_fields_beyond_the_rules() -> None:
    walk = play_reference([Sent({"event_type": "login"}, 1000), Sent({"event_type": "login"}, 1001)], RULES)
    assert walk.xp == 20 and walk.level == 1 and walk.achievements == ()


# --- the verifier's gamification checks ------------------------------------------------------------------


def _award(user: str, source: str, rule: str, xp: int, award_id: str | None = None) -> dict[str, Any]:
    return {"award_id": award_id or f"{user}:{source}:{rule}", "user_id": user, "rule_id": rule, "xp": xp}


def _unlock(user: str, achievement: str, unlock_id: str | None = None) -> dict[str, Any]:
    return {"unlock_id": unlock_id or f"{user}:{achievement}", "user_id": user, "achievement_id": achievement}


def _expected(xp: int, achievements: tuple[str, ...], unsure: frozenset[str] = frozenset()) -> Expected:
    return Expected(xp=xp, achievements=achievements, unsure=unsure)


def test_outputs_sent_again_under_their_own_ids_match_the_reference_and_the_worker() -> None:
    expected = {"u1": _expected(30, ("first-lesson",)), "u2": _expected(10, ())}
    awards = [_award("u1", "e1", "first_activity_of_day", 10), _award("u1", "e2", "lesson_completed", 20),
              _award("u2", "e9", "first_activity_of_day", 10)]  # fmt: skip
    unlocks = [_unlock("u1", "first-lesson")]
    skipped: Counter[str] = Counter()
    again = awards + awards[:2]  # re-sent from an outbox after a crash: same ids, same XP
    assert game_differences(expected, again, unlocks * 2, {"u1": 30, "u2": 10}, skipped) == []
    assert skipped == Counter()


def test_an_award_or_an_unlock_under_two_ids_and_a_lost_or_invented_unlock_are_reported() -> None:
    unlocked, two_ids, xp_reference, xp_worker, two_values = GAME_CHECKS
    expected = {"u1": _expected(30, ("first-lesson", "streak.3"))}
    awards = [_award("u1", "e1", "first_activity_of_day", 10), _award("u1", "e2", "lesson_completed", 20),
              _award("u1", "e2", "lesson_completed", 20, award_id="u1:e2:lesson_completed:retry")]  # fmt: skip
    unlocks = [_unlock("u1", "first-lesson"), _unlock("u1", "first-lesson", "u1:first-lesson:x"),
               _unlock("u1", "lessons.10")]  # fmt: skip
    found = game_differences(expected, awards, unlocks, {"u1": 30}, Counter())
    by_check = {d.check: d for d in found}
    assert set(by_check) == {unlocked, two_ids, xp_reference, xp_worker}
    assert by_check[xp_reference].doubled and (by_check[xp_reference].observed == 50)
    assert by_check[xp_worker].expected == 30 and by_check[xp_worker].observed == 50
    assert by_check[unlocked].missing and by_check[unlocked].doubled  # streak.3 lost, lessons.10 invented
    assert by_check[two_ids].doubled
    # The same award id with two XP values: a re-priced award (one of them is wrong).
    repriced = [_award("u1", "e1", "first_activity_of_day", 10), _award("u1", "e1", "first_activity_of_day", 11)]
    found = game_differences({"u1": _expected(10, ())}, repriced, [], {"u1": 11}, Counter())
    assert {d.check for d in found} == {two_values, xp_reference}


def test_what_the_reference_is_unsure_of_is_skipped_for_that_student_alone_and_counted() -> None:
    unlocked, _, xp_reference, xp_worker, _ = GAME_CHECKS
    expected = {
        "u1": _expected(30, ("quiz-streak.3",), frozenset({XP, "quiz-streak.3", "level-5"})),
        "u2": _expected(10, ("quiz-streak.3",)),
    }
    awards = [_award("u1", "e1", "quiz_passed", 33), _award("u2", "e5", "quiz_passed", 10)]
    skipped: Counter[str] = Counter()
    found = game_differences(expected, awards, [_unlock("u2", "quiz-streak.3")], {"u1": 33, "u2": 10}, skipped)
    assert found == []  # u1's XP (33, not 30) and in_a_row could go either way; the worker agrees with its awards
    assert skipped == Counter({xp_reference: 1, unlocked: 1})
    # ... but the awards must still add up to what the worker says, sure or not.
    found = game_differences(expected, awards, [_unlock("u2", "quiz-streak.3")], {"u1": 40, "u2": 10}, Counter())
    assert [(d.user_id, d.check) for d in found] == [("u1", xp_worker)]
    # The API checks: the same sentinel skips them for that student.
    assert WORKER_CHECKS["worker: XP"][0](expected["u1"]) is UNSURE
    assert WORKER_CHECKS["worker: XP"][0](expected["u2"]) == 10
    assert WORKER_CHECKS["worker: achievements unlocked"][0](expected["u1"]) is UNSURE
