"""The gamification engine (processors.gamification.engine) through the fold the worker runs (ingest_and_play).

Each test folds events into a real ``UserRecord``, so local days, streaks and milestones come from the signals
exactly as in the worker, and checks what the batches earned against numbers worked out by hand from the rules.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.gamification.engine import GameOutcome, GameState, iso_week
from processors.gamification.levels import thresholds
from processors.gamification.rules import DEFAULT_RULES_PATH, GameRules, parse_rules, rules_from_file
from processors.gamification.views import game_view
from processors.pipeline import UserRecord, ingest_and_play
from schemas.gamification import XpAward, XpAwardBatch, award_rows
from streams.worker import metrics as worker_metrics
from streams.worker.game_rules import RulesProvider

MON = datetime(2026, 1, 5, 10, tzinfo=UTC)  # a Monday (ISO week 2026-W02)
LESSON = {"event_type": "lesson_completed"}
PASSED = {"event_type": "quiz_submitted", "when": [{"field": "score_pct", "op": ">=", "value": 60}]}
FAILED = {"event_type": "quiz_submitted", "when": [{"field": "score_pct", "op": "<", "value": 60}]}
_ids = itertools.count()


def rules(**parts: Any) -> GameRules:
    """Rules with only the given parts (no multiplier or levels worth noticing unless asked)."""
    doc: dict[str, Any] = {"version": 1, "streak_multiplier": None, "levels": {"base": 10**6}, **parts}
    return parse_rules(json.dumps(doc))


def ach(id_: str, kind: str, **rest: Any) -> dict[str, Any]:
    return {"id": id_, "kind": kind, "name": id_.title(), "description": f"about {id_}", **rest}


def ev(kind: str, at: datetime, *, course: str = "c1", tz: str | None = None, eid: str | None = None,
       **payload: Any) -> dict[str, Any]:  # fmt: skip
    """An event at ``at`` (its offset is the one written in event_time), with the payload its type needs."""
    defaults: dict[str, dict[str, Any]] = {
        "lesson_completed": {"lesson_id": "l1", "duration_seconds": 60.0},
        "quiz_submitted": {"quiz_id": "q1", "score": 80.0, "max_score": 100.0},
        "course_progress": {"progress_pct": 50.0, "lessons_completed": 1, "lessons_total": 10},
        "content_viewed": {"content_id": "v1", "content_format": "video"},
        "login": {"method": "password"},
    }
    e: dict[str, Any] = {
        "event_id": eid or f"e{next(_ids)}",
        "user_id": "u1",
        "event_type": kind,
        "event_time": at.isoformat(),
        "platform": "web",
        "payload": {**defaults.get(kind, {}), **payload},
    }
    if kind != "login":
        e["course_id"] = course
    if tz:
        e["timezone"] = tz
    return e


def quiz(at: datetime, pct: float, **kw: Any) -> dict[str, Any]:
    return ev("quiz_submitted", at, score=pct, max_score=100.0, **kw)


class Student:
    """One student's record and everything their batches earned."""

    def __init__(self, game_rules: GameRules, user: str = "u1") -> None:
        self.rules, self.user = game_rules, user
        self.record = UserRecord.load(None, user)
        self.outcomes: list[GameOutcome] = []

    def send(self, *events: dict[str, Any]) -> GameOutcome:
        _, outcome = ingest_and_play(self.record, self.user, [dict(e) for e in events], None, self.rules)
        out = outcome or GameOutcome()
        self.outcomes.append(out)
        return out

    @property
    def game(self) -> GameState:
        return self.record.game

    def awards(self, rule_id: str | None = None) -> list[Any]:
        return [a for o in self.outcomes for a in o.awards if rule_id is None or a.rule_id == rule_id]

    def unlocks(self) -> list[str]:
        return [u.achievement_id for o in self.outcomes for u in o.unlocks]


# --- XP ------------------------------------------------------------------------------------------------------


def test_xp_per_rule_with_conditions() -> None:
    s = Student(rules(xp=[
        {"id": "passed", "match": PASSED, "xp": 15},
        {"id": "aced", "match": {"event_type": "quiz_submitted",
                                 "when": [{"field": "score_pct", "op": ">=", "value": 90}]}, "xp": 10},
        {"id": "long", "match": {"event_type": "lesson_completed",
                                 "when": [{"field": "duration_seconds", "op": ">", "value": 600}]}, "xp": 7},
    ]))  # fmt: skip
    out = s.send(
        quiz(MON, 59.0),  # nothing
        ev("quiz_submitted", MON, score=6.0, max_score=10.0),  # 60 %: passed only
        quiz(MON, 95.0),  # passed and aced
        ev("lesson_completed", MON, duration_seconds=600.0),  # not over 600 s
        ev("lesson_completed", MON, duration_seconds=601.0),
    )
    assert [(a.rule_id, a.xp) for a in out.awards] == [("passed", 15), ("passed", 15), ("aced", 10), ("long", 7)]
    assert s.game.xp == 47 and out.awards[-1].total_xp == 47
    assert all(a.rules_version == 1 and a.multiplier == 1.0 for a in out.awards)


def test_daily_cap_counts_the_students_local_day() -> None:
    """Los Angeles (UTC-8 in January): lessons from 08:00 to 23:00 local are one local day over two UTC days."""
    la = ZoneInfo("America/Los_Angeles")
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 20, "daily_cap": 10}]))
    day1 = [datetime(2026, 1, 6, 8 + h, tzinfo=la) for h in range(11)]  # 08:00 .. 18:00 local
    day1[-1] = datetime(2026, 1, 6, 23, 30, tzinfo=la)  # 07:30 UTC on the 7th: still the 6th for the student
    out = s.send(*(ev("lesson_completed", t, tz="America/Los_Angeles") for t in day1))
    assert len(out.awards) == 10, "the 11th lesson of the local day earns nothing"
    assert {a.local_day for a in out.awards} == {date(2026, 1, 6)}
    assert s.send(ev("lesson_completed", day1[-1] + timedelta(minutes=10), tz="America/Los_Angeles")).awards == []
    nxt = s.send(ev("lesson_completed", datetime(2026, 1, 7, 0, 30, tzinfo=la), tz="America/Los_Angeles"))
    assert [(a.xp, a.local_day) for a in nxt.awards] == [(20, date(2026, 1, 7))], "the next local day earns again"
    assert s.game.xp == 220


def test_a_cap_spread_over_batches_and_the_late_event_window() -> None:
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 5, "daily_cap": 2}]))
    assert len(s.send(ev("lesson_completed", MON)).awards) == 1
    assert len(s.send(ev("lesson_completed", MON), ev("lesson_completed", MON)).awards) == 1
    s.send(ev("lesson_completed", MON + timedelta(days=20)))
    late = s.send(ev("lesson_completed", MON + timedelta(days=1)))  # 19 days late: its counter is gone
    assert late.awards == [] and s.game.xp == 15
    assert all(int(k.split("|")[1]) >= s.game.latest_day - 8 for k in s.game.caps), "old counters are dropped"


def test_first_activity_of_the_day_once_per_local_day() -> None:
    s = Student(rules(xp=[{"id": "first", "match": {"event_type": "active"}, "xp": 10, "daily_cap": 1}]))
    out = s.send(
        ev("login", MON),
        ev("lesson_completed", MON + timedelta(hours=1)),
        ev("notification_delivered", MON, notification_id="n1", channel="push"),  # not an active event
    )
    assert [a.rule_id for a in out.awards] == ["first"]
    assert s.send(ev("content_viewed", MON + timedelta(hours=3))).awards == []
    assert [a.local_day for a in s.send(ev("quiz_submitted", MON + timedelta(days=1))).awards] == [date(2026, 1, 6)]


def test_streak_multiplier_on_the_seventh_day_and_the_milestone_bonus() -> None:
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 20}],
                      streak_multiplier={"every_days": 7, "step": 0.1, "max": 1.5},
                      streak_milestone_xp={"7": 50}))  # fmt: skip
    for d in range(7):
        s.send(ev("lesson_completed", MON + timedelta(days=d)))
    lessons = s.awards("lesson")
    assert [a.multiplier for a in lessons] == [1.0] * 6 + [1.1]
    assert [a.xp for a in lessons] == [20] * 6 + [22]
    (bonus,) = s.awards("streak.7")
    assert bonus.xp == 50 and bonus.base_xp == 50 and bonus.source == "streak:u1:2026-01-05:7"
    assert bonus.award_id == "u1:streak:u1:2026-01-05:7:streak.7" and bonus.local_day == date(2026, 1, 11)
    assert s.game.xp == 6 * 20 + 22 + 50
    kinds = [c.kind.value for o in s.outcomes for c in o.celebrations]
    assert kinds == ["streak_milestone"]


def test_a_rule_without_the_streak_multiplier_is_not_multiplied() -> None:
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 20, "streak_multiplier": False}],
                      streak_multiplier={"every_days": 2, "step": 0.5, "max": 3}))  # fmt: skip
    for d in range(4):
        s.send(ev("lesson_completed", MON + timedelta(days=d)))
    assert [a.xp for a in s.awards()] == [20, 20, 20, 20]


def test_once_per_course() -> None:
    done = {"event_type": "course_progress", "when": [{"field": "progress_pct", "op": ">=", "value": 100}]}
    s = Student(rules(xp=[{"id": "done", "match": done, "xp": 200, "once_per_course": True}]))
    s.send(ev("course_progress", MON, progress_pct=100.0), ev("course_progress", MON, progress_pct=99.0))
    s.send(ev("course_progress", MON + timedelta(days=3), progress_pct=100.0))
    s.send(ev("course_progress", MON, course="c2", progress_pct=100.0))
    assert [(a.course_id, a.xp) for a in s.awards()] == [("c1", 200), ("c2", 200)]
    assert s.game.once == {"done": ["c1", "c2"]}


def test_levels_several_in_one_batch_each_emitted_once() -> None:
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 100}], levels={"base": 100, "exponent": 1.5}))
    out = s.send(*(ev("lesson_completed", MON) for _ in range(9)))  # 900 XP: levels 2, 3, 4 and 5 (800)
    assert [u.level for u in out.level_ups] == [2, 3, 4, 5]
    assert [u.level_up_id for u in out.level_ups] == [f"u1:level:{n}" for n in (2, 3, 4, 5)]
    assert all(u.total_xp == 900 for u in out.level_ups) and s.game.level == 5
    assert [c.source_id for c in out.celebrations] == [u.level_up_id for u in out.level_ups]
    assert s.send(ev("lesson_completed", MON)).level_ups == []  # 1,000 XP: still level 5
    later = s.send(*(ev("lesson_completed", MON) for _ in range(4)))  # 1,400 XP: level 6 at 1,118
    assert [u.level for u in later.level_ups] == [6]
    assert game_view(s.game, s.rules)["level"] == 6


def test_a_batchs_awards_travel_as_one_message_that_expands_to_the_same_awards() -> None:
    """What the worker sends (one ``XpAwardBatch`` per student batch, encoded by orjson) is what the sink and the
    chaos verifier read back, award by award, ids included."""
    s = Student(_DEFAULT)
    out = s.send(ev("lesson_completed", MON, eid="a"), quiz(MON + timedelta(minutes=5), 95, eid="b"))
    batch = out.award_batch()
    assert batch is not None and len(batch["awards"]) == len(out.awards) >= 4
    decoded = orjson.loads(orjson.dumps(batch))
    assert [XpAward.model_validate(row) for row in award_rows(decoded)] == out.awards
    assert XpAwardBatch.model_validate(decoded).expand() == out.awards
    assert {a.award_id for a in out.awards} >= {"u1:a:lesson_completed", "u1:b:quiz_passed", "u1:b:quiz_aced"}
    assert sum(a.xp for a in out.awards) == s.game.xp
    assert GameOutcome("u1", 1).award_batch() is None, "nothing earned: no message"


@pytest.mark.parametrize(
    ("batch", "problem"),
    [
        ({"user_id": "u1", "rules_version": 1, "awards": []}, "awards: expected a non-empty list"),
        ({"user_id": "u1", "rules_version": 1, "awards": [["lesson", "e1"]]}, "awards: expected rows of 9 values"),
    ],
)
def test_a_malformed_award_batch_is_refused_with_the_problem_named(batch: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        award_rows(batch)


# --- achievements --------------------------------------------------------------------------------------------


def test_count_tiers_and_a_first_time() -> None:
    s = Student(rules(achievements=[ach("first", "count", match=LESSON, tiers=[1]),
                                    ach("lessons", "count", match=LESSON, tiers=[3, 5])]))  # fmt: skip
    assert s.send(ev("lesson_completed", MON)).unlocks[0].achievement_id == "first"
    s.send(ev("lesson_completed", MON), ev("quiz_submitted", MON))
    assert s.unlocks() == ["first"]
    out = s.send(*(ev("lesson_completed", MON) for _ in range(3)))  # 5 lessons: tiers 3 and 5 at once
    assert [u.achievement_id for u in out.unlocks] == ["lessons.3", "lessons.5"]
    assert [u.name for u in out.unlocks] == ["Lessons (3)", "Lessons (5)"]
    assert [u.unlock_id for u in out.unlocks] == ["u1:lessons.3", "u1:lessons.5"]
    assert [c.celebration_id for c in out.celebrations] == ["achievement:u1:lessons.3", "achievement:u1:lessons.5"]


def test_streak_tiers() -> None:
    s = Student(rules(achievements=[ach("streak", "streak", tiers=[3, 5])]))
    for d in range(5):
        s.send(ev("login", MON + timedelta(days=d)))
        assert s.unlocks() == (["streak.3"] if 2 <= d < 4 else ["streak.3", "streak.5"] if d == 4 else [])


def test_in_a_row_broken_by_a_failed_quiz() -> None:
    s = Student(rules(achievements=[ach("roll", "in_a_row", match=PASSED, breaks=FAILED, tiers=[3])]))
    s.send(quiz(MON, 70), quiz(MON, 80), ev("lesson_completed", MON))  # a lesson neither counts nor breaks
    s.send(quiz(MON, 40))  # broken at 2
    s.send(quiz(MON, 90), quiz(MON, 90))
    assert s.unlocks() == [] and s.game.counts["roll"] == 2
    s.send(quiz(MON, 60))
    assert s.unlocks() == ["roll"]


def test_within_n_days() -> None:
    s = Student(rules(achievements=[ach("busy", "within", match=LESSON, count=4, days=3)]))
    s.send(ev("lesson_completed", MON), ev("lesson_completed", MON))
    s.send(ev("lesson_completed", MON + timedelta(days=3)))  # days 0 and 3 are 4 days apart: no window of 3
    s.send(ev("lesson_completed", MON + timedelta(days=4)))  # days 3, 4: 2 lessons
    assert s.unlocks() == []
    out = s.send(ev("lesson_completed", MON + timedelta(days=5)), ev("lesson_completed", MON + timedelta(days=5)))
    assert [u.achievement_id for u in out.unlocks] == ["busy"]  # days 3..5: 4 lessons
    assert "busy" not in s.game.within, "the counters of an unlocked achievement are dropped"


def test_within_counts_a_late_event_into_its_window() -> None:
    s = Student(rules(achievements=[ach("busy", "within", match=LESSON, count=3, days=2)]))
    s.send(ev("lesson_completed", MON + timedelta(days=1)), ev("lesson_completed", MON + timedelta(days=5)))
    assert s.send(ev("lesson_completed", MON)).unlocks == []
    assert [u.achievement_id for u in s.send(ev("lesson_completed", MON)).unlocks] == ["busy"]  # days 0-1: 3


def test_comeback_after_a_gap() -> None:
    s = Student(rules(achievements=[ach("back", "comeback", after_days=7)]))
    s.send(ev("login", MON))
    s.send(ev("login", MON + timedelta(days=7)))  # 6 days without activity between
    assert s.unlocks() == []
    out = s.send(ev("login", MON + timedelta(days=15)))  # 7 days away
    assert [u.achievement_id for u in out.unlocks] == ["back"]


def test_comeback_inside_one_batch() -> None:
    s = Student(rules(achievements=[ach("back", "comeback", after_days=3)]))
    s.send(ev("login", MON), ev("login", MON + timedelta(days=4)))
    assert s.unlocks() == ["back"]


def test_level_and_all_of_chain() -> None:
    s = Student(rules(
        xp=[{"id": "lesson", "match": LESSON, "xp": 100}],
        levels={"base": 100, "exponent": 1.0},
        achievements=[
            ach("first", "count", match=LESSON, tiers=[1]),
            ach("lv3", "level", level=3),
            ach("top", "all_of", requires=["mid", "roll"]),  # listed before what it needs
            ach("mid", "all_of", requires=["first", "lv3"]),
            ach("roll", "in_a_row", match=PASSED, breaks=FAILED, tiers=[2]),
        ],
    ))  # fmt: skip
    s.send(ev("lesson_completed", MON))
    assert s.unlocks() == ["first"]
    s.send(ev("lesson_completed", MON), quiz(MON, 90))
    assert s.unlocks() == ["first", "lv3", "mid"]  # level 3 at 200 XP
    out = s.send(quiz(MON, 90))
    assert [u.achievement_id for u in out.unlocks] == ["roll", "top"]


def test_each_unlock_happens_once_over_many_batches() -> None:
    s = Student(rules_from_file(DEFAULT_RULES_PATH))
    t = MON
    for d in range(40):
        t = MON + timedelta(days=d)
        s.send(*(ev("lesson_completed", t + timedelta(minutes=m)) for m in range(3)),
               quiz(t, 90 if d % 5 else 30), ev("login", t))  # fmt: skip
    s.send(ev("course_progress", t, progress_pct=100.0))
    unlocks = s.unlocks()
    assert len(unlocks) == len(set(unlocks))
    assert set(unlocks) >= {"first-lesson", "lessons.10", "lessons.50", "lessons.100", "streak.3", "streak.7",
                            "streak.30", "quiz-streak.3", "busy-week", "course-finisher", "level-5",
                            "all-rounder"}  # fmt: skip
    assert set(unlocks) == set(s.game.unlocked)
    ups = [u.level for o in s.outcomes for u in o.level_ups]
    assert ups == list(range(2, s.game.level + 1))
    assert s.game.xp == sum(a.xp for a in s.awards())


def test_award_ids_are_deterministic_and_redelivery_earns_nothing() -> None:
    game_rules = rules_from_file(DEFAULT_RULES_PATH)
    events = [ev("lesson_completed", MON + timedelta(days=d, minutes=m)) for d in range(8) for m in range(2)]
    a, b = Student(game_rules), Student(game_rules)
    for d in range(8):
        a.send(*events[2 * d : 2 * d + 2])
    b.send(*copy.deepcopy(events))
    # The same ids (one batch lists a streak bonus after all the events' awards, day by day it comes between).
    assert sorted(x.award_id for x in a.awards()) == sorted(x.award_id for x in b.awards())
    assert all(x.award_id == f"u1:{x.source}:{x.rule_id}" for x in a.awards())
    assert len({x.award_id for x in a.awards()}) == len(a.awards())
    assert a.send(*events[:5]) == GameOutcome(), "events seen before earn nothing"


# --- state -------------------------------------------------------------------------------------------------


def _played() -> Student:
    s = Student(rules_from_file(DEFAULT_RULES_PATH))
    for d in range(9):
        s.send(ev("lesson_completed", MON + timedelta(days=d)), quiz(MON + timedelta(days=d), 95, course="c2"))
    return s


def test_game_state_round_trips_through_its_dict() -> None:
    s = _played()
    d = s.game.to_dict()
    again = GameState.from_dict(json.loads(json.dumps(d)))
    assert again == s.game and again.to_dict() == d
    assert again.within and again.unlocked and again.boards and again.caps


def test_a_user_record_keeps_its_game_and_an_old_record_loads() -> None:
    s = _played()
    raw = s.record.to_bytes()
    assert UserRecord.from_bytes(raw).game == s.game
    old = s.record.to_dict()
    del old["game"]
    loaded = UserRecord.from_dict(json.loads(json.dumps(old)))
    assert loaded.game == GameState() and loaded.game.is_empty()
    assert "game" not in UserRecord.load(None, "u2").to_dict(), "an empty game state is left out of the record"


def test_standing_boards_in_utc_days_and_iso_weeks_per_course() -> None:
    """Tokyo (UTC+9): Monday 08:00 local is still Sunday in UTC, so it counts in the week before."""
    tokyo = ZoneInfo("Asia/Tokyo")
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 10}]))
    sun = s.send(ev("lesson_completed", datetime(2026, 1, 11, 20, tzinfo=tokyo), tz="Asia/Tokyo"))
    assert sun.standing is not None and sun.standing.seq == 1
    mon_local = s.send(ev("lesson_completed", datetime(2026, 1, 12, 8, tzinfo=tokyo), tz="Asia/Tokyo"))
    st1 = mon_local.standing
    assert st1 is not None and st1.seq == 2
    assert (st1.global_xp.day, st1.global_xp.day_xp) == (date(2026, 1, 11), 20)  # both on Sunday in UTC
    assert (st1.global_xp.week, st1.global_xp.week_xp) == ("2026-W02", 20)
    assert mon_local.awards[0].local_day == date(2026, 1, 12), "the cap's day is local, the board's UTC"
    mon_utc = s.send(ev("lesson_completed", datetime(2026, 1, 12, 0, 0, tzinfo=UTC), course="c2"))
    st2 = mon_utc.standing
    assert st2 is not None and st2.seq == 3
    assert (st2.global_xp.total, st2.global_xp.day, st2.global_xp.day_xp) == (30, date(2026, 1, 12), 10)
    assert (st2.global_xp.week, st2.global_xp.week_xp) == ("2026-W03", 10)
    assert set(st2.courses) == {"c1", "c2"}
    assert (st2.courses["c1"].total, st2.courses["c1"].week, st2.courses["c1"].week_xp) == (20, "2026-W02", 20)
    assert (st2.courses["c2"].total, st2.courses["c2"].week_xp) == (10, 10)
    assert s.send(ev("login", datetime(2026, 1, 12, 1, tzinfo=UTC))).standing is None, "no XP, no standing"


def test_a_standing_keeps_the_week_before_once_the_week_rolls_over() -> None:
    """For the leagues' grace: Monday's XP moves the standing on, and it still says what the week just ended
    earned (late XP for that week added to it); a week without XP in between leaves no week before."""
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 10}]))
    s.send(ev("lesson_completed", datetime(2026, 1, 10, 12, tzinfo=UTC)))  # Saturday of 2026-W02
    first = s.send(ev("lesson_completed", datetime(2026, 1, 11, 12, tzinfo=UTC))).standing  # Sunday
    assert first is not None and first.global_xp.previous_week is None and first.global_xp.week_xp == 20
    monday = s.send(ev("lesson_completed", datetime(2026, 1, 12, 0, 5, tzinfo=UTC))).standing
    assert monday is not None
    assert (monday.global_xp.week, monday.global_xp.week_xp) == ("2026-W03", 10)
    assert (monday.global_xp.previous_week, monday.global_xp.previous_week_xp) == ("2026-W02", 20)
    assert (monday.courses["c1"].previous_week, monday.courses["c1"].previous_week_xp) == ("2026-W02", 20)
    late = s.send(ev("lesson_completed", datetime(2026, 1, 11, 23, 59, tzinfo=UTC))).standing  # Sunday, late
    assert late is not None and (late.global_xp.week_xp, late.global_xp.previous_week_xp) == (10, 30)
    skipped = s.send(ev("lesson_completed", datetime(2026, 1, 26, 9, tzinfo=UTC))).standing  # 2026-W05
    assert skipped is not None and (skipped.global_xp.week, skipped.global_xp.previous_week) == ("2026-W05", None)
    assert skipped.global_xp.total == 50


def test_a_board_from_before_the_week_before_was_kept_rolls_over_too() -> None:
    """Records written before the boards kept the week before (5 items) take the new layout on their next award."""
    game = GameState.from_dict({**GameState().to_dict(), "boards": {"": [40, 739627, 10, "2026-W02", 40]}})
    s = Student(rules(xp=[{"id": "lesson", "match": LESSON, "xp": 10}]))
    s.record.game = game
    rolled = s.send(ev("lesson_completed", datetime(2026, 1, 12, 9, tzinfo=UTC))).standing
    assert rolled is not None and (rolled.global_xp.previous_week, rolled.global_xp.previous_week_xp) == (
        "2026-W02",
        40,
    )


def test_iso_weeks_across_a_year_end() -> None:
    assert iso_week(date(2026, 1, 1)) == "2026-W01" and iso_week(date(2025, 12, 29)) == "2026-W01"
    assert iso_week(date(2027, 1, 1)) == "2026-W53" and iso_week(date(2027, 1, 4)) == "2027-W01"


# --- batching does not change what is earned -------------------------------------------------------------------

_KINDS = ["login", "lesson_completed", "quiz_pass", "quiz_fail", "content_viewed", "course_done"]


def _events_from(steps: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    """Chronological events: each step is (days later, minutes later, kind)."""
    out, t = [], MON
    for k, (days, minutes, kind) in enumerate(steps):
        t = t + timedelta(days=days, minutes=minutes)
        eid = f"h{k}"
        if kind == "quiz_pass":
            out.append(quiz(t, 95, eid=eid))
        elif kind == "quiz_fail":
            out.append(quiz(t, 20, eid=eid))
        elif kind == "course_done":
            out.append(ev("course_progress", t, eid=eid, course=f"c{k % 3}", progress_pct=100.0))
        else:
            out.append(ev(kind, t, eid=eid, course=f"c{k % 2}"))
    return out


_DEFAULT = rules_from_file(DEFAULT_RULES_PATH)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from([0, 0, 0, 1, 1, 2, 9]), st.integers(0, 300), st.sampled_from(_KINDS)),
        min_size=1,
        max_size=80,
    ),
    cuts=st.lists(st.integers(1, 79), max_size=10),
)
def test_splitting_the_same_events_into_other_batches_earns_the_same(
    steps: list[tuple[int, int, str]], cuts: list[int]
) -> None:
    events = _events_from(steps)
    whole = Student(_DEFAULT)
    whole.send(*events)
    split = Student(_DEFAULT)
    bounds = [0, *sorted({c for c in cuts if c < len(events)}), len(events)]
    for lo, hi in itertools.pairwise(bounds):
        split.send(*events[lo:hi])
    assert split.game.xp == whole.game.xp
    assert split.game.level == whole.game.level
    assert set(split.game.unlocked) == set(whole.game.unlocked)
    assert sorted(a.award_id for a in split.awards()) == sorted(a.award_id for a in whole.awards())
    assert sorted(u.level for o in split.outcomes for u in o.level_ups) == list(range(2, whole.game.level + 1))
    assert split.game.boards == whole.game.boards


# --- hot reload ----------------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _write(path: Path, doc: dict[str, Any], mtime: float) -> None:
    path.write_text(json.dumps(doc))
    os.utime(path, (mtime, mtime))  # a distinct stamp, however coarse the file system's clock


def _reloads(outcome: str) -> float:
    return float(worker_metrics.RULES_RELOADS.labels(outcome)._value.get())


def test_a_changed_valid_file_is_picked_up_after_check_seconds(tmp_path: Path) -> None:
    doc = json.loads(DEFAULT_RULES_PATH.read_text())
    path = tmp_path / "game.json"
    _write(path, doc, 1_000_000)
    clock = Clock()
    provider = RulesProvider(path, check_seconds=5, clock=clock)
    assert provider.current().version == doc["version"]
    loaded = _reloads("loaded")
    _write(path, {**doc, "version": doc["version"] + 1}, 1_000_010)
    clock.now += 4.9
    assert provider.current().version == doc["version"], "not looked at before check_seconds"
    clock.now += 0.2
    assert provider.current().version == doc["version"] + 1
    assert _reloads("loaded") == loaded + 1 and provider.refused is None
    assert worker_metrics.RULES_VERSION._value.get() == doc["version"] + 1


def test_a_broken_file_is_refused_and_the_old_rules_stay(tmp_path: Path) -> None:
    doc = json.loads(DEFAULT_RULES_PATH.read_text())
    path = tmp_path / "game.json"
    _write(path, doc, 1_000_000)
    clock = Clock()
    provider = RulesProvider(path, check_seconds=1, clock=clock)
    before = provider.current()
    refused = _reloads("refused")
    broken = copy.deepcopy(doc)
    broken["version"] += 1
    broken["xp"][1]["xp"] = -20
    _write(path, broken, 1_000_010)
    clock.now += 2
    assert provider.current() is before
    assert _reloads("refused") == refused + 1
    assert provider.refused is not None and "xp[1] (lesson_completed): xp: XP cannot be negative" in provider.refused
    clock.now += 2
    assert provider.current() is before and _reloads("refused") == refused + 1, "the same broken file: read once"
    _write(path, {**doc, "version": doc["version"] + 2}, 1_000_020)  # fixed
    clock.now += 2
    assert provider.current().version == doc["version"] + 2 and provider.refused is None


def test_a_missing_file_keeps_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "game.json"
    _write(path, json.loads(DEFAULT_RULES_PATH.read_text()), 1_000_000)
    clock = Clock()
    provider = RulesProvider(path, check_seconds=1, clock=clock)
    path.unlink()
    clock.now += 2
    assert provider.current() is provider.rules and provider.rules.version == 1


def test_a_worker_does_not_start_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "game.json"
    path.write_text(json.dumps({"version": 1, "xp": [{"id": "x", "match": {"event_type": "nope"}, "xp": 1}]}))
    with pytest.raises(ValueError, match="unknown event type 'nope'"):
        RulesProvider(path)


def test_the_level_thresholds_of_the_default_file() -> None:
    steps = thresholds(_DEFAULT.levels)
    assert steps[:5] == (0, 100, 283, 520, 800)
