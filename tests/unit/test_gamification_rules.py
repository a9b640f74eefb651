"""The gamification rules file is checked whole at load: each kind of bad rule is refused, naming rule and field.

Every case starts from one small valid file and breaks one thing, so a test fails only for the problem it names.
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from processors.gamification.levels import level_for, progress, thresholds
from processors.gamification.rules import (
    DEFAULT_RULES_PATH,
    GameRules,
    LevelCurve,
    RulesError,
    numeric_fields,
    parse_rules,
    rules_from_file,
)

LESSON = {"event_type": "lesson_completed"}
PASSED = {"event_type": "quiz_submitted", "when": [{"field": "score_pct", "op": ">=", "value": 60}]}
FAILED = {"event_type": "quiz_submitted", "when": [{"field": "score_pct", "op": "<", "value": 60}]}

VALID: dict[str, Any] = {
    "version": 3,
    "xp": [
        {"id": "lesson", "match": LESSON, "xp": 20, "daily_cap": 10},
        {"id": "quiz", "match": PASSED, "xp": 15},
    ],
    "achievements": [
        {"id": "lessons", "kind": "count", "name": "L", "description": "d", "match": LESSON, "tiers": [1, 10]},
        {
            "id": "roll",
            "kind": "in_a_row",
            "name": "R",
            "description": "d",
            "match": PASSED,
            "breaks": FAILED,
            "tiers": [3],
        },
        {"id": "both", "kind": "all_of", "name": "B", "description": "d", "requires": ["lessons.10", "roll"]},
    ],
}


def _with(change: Any) -> str:
    """The valid file with ``change(doc)`` applied, as JSON text."""
    doc = copy.deepcopy(VALID)
    change(doc)
    return json.dumps(doc)


def _refused(change: Any) -> str:
    with pytest.raises(RulesError) as exc:
        parse_rules(_with(change), "game.json")
    message = str(exc.value)
    assert message.startswith("game.json: "), message
    return message


def test_the_small_valid_file_loads() -> None:
    rules = parse_rules(_with(lambda d: None))
    assert rules.version == 3 and [r.id for r in rules.xp] == ["lesson", "quiz"]
    assert set(rules.achievement_names()) == {"lessons.1", "lessons.10", "roll", "both"}


def test_the_default_rules_file_loads() -> None:
    rules = rules_from_file(DEFAULT_RULES_PATH)
    assert rules.version >= 1
    assert {r.id for r in rules.xp} >= {"lesson_completed", "quiz_passed", "first_activity_of_day"}
    assert "all-rounder" in rules.achievement_names()


def test_an_unknown_event_type_names_the_rule_and_field() -> None:
    msg = _refused(lambda d: d["xp"][1]["match"].update(event_type="quiz_taken"))
    assert "xp[1] (quiz)" in msg and "match.event_type" in msg and "'quiz_taken'" in msg


def test_an_unknown_event_type_in_an_achievement_is_refused() -> None:
    msg = _refused(lambda d: d["achievements"][0]["match"].update(event_type="lesson_done"))
    assert "achievements[0] (lessons)" in msg and "match.event_type" in msg and "'lesson_done'" in msg


def test_a_condition_on_an_unknown_field_is_refused() -> None:
    msg = _refused(lambda d: d["xp"][1]["match"]["when"][0].update(field="grade"))
    assert "xp[1] (quiz)" in msg and "when.field" in msg and "'grade'" in msg and "score_pct" in msg


def test_a_condition_on_a_non_numeric_field_is_refused() -> None:
    msg = _refused(lambda d: d["xp"][1]["match"]["when"][0].update(field="quiz_id"))
    assert "xp[1] (quiz)" in msg and "when.field" in msg and "'quiz_id' is not a numeric field" in msg


def test_the_numeric_fields_are_the_numbers_of_the_payload() -> None:
    assert numeric_fields("quiz_submitted") >= {"score", "max_score", "score_pct", "duration_seconds"}
    assert "quiz_id" not in numeric_fields("quiz_submitted") and "passed" not in numeric_fields("quiz_submitted")
    assert numeric_fields("course_progress") >= {"progress_pct", "lessons_completed"}
    assert "score_pct" not in numeric_fields("lesson_completed")


def test_a_negative_xp_value_is_refused() -> None:
    msg = _refused(lambda d: d["xp"][0].update(xp=-5))
    assert "xp[0] (lesson): xp: XP cannot be negative (-5)" in msg


def test_a_negative_streak_milestone_bonus_is_refused() -> None:
    msg = _refused(lambda d: d.update(streak_milestone_xp={"7": -1}))
    assert "streak_milestone_xp[7]" in msg and "negative" in msg


def test_a_daily_cap_below_one_is_refused() -> None:
    msg = _refused(lambda d: d["xp"][0].update(daily_cap=0))
    assert "xp[0] (lesson): daily_cap" in msg


def test_a_duplicate_xp_rule_id_is_refused() -> None:
    msg = _refused(lambda d: d["xp"][1].update(id="lesson"))
    assert "xp[1] (lesson): id: duplicate XP rule id 'lesson'" in msg


def test_a_duplicate_achievement_id_is_refused() -> None:
    msg = _refused(lambda d: d["achievements"][1].update(id="both"))
    assert "achievements[2] (both): id: duplicate achievement id 'both'" in msg and "achievements[1]" in msg


def test_a_tier_id_colliding_with_another_achievement_is_refused() -> None:
    def collide(d: dict[str, Any]) -> None:  # 'lessons' tier 10 unlocks as 'lessons.10'
        d["achievements"].append({"id": "lessons.10", "kind": "streak", "name": "S", "description": "d",
                                  "tiers": [5]})  # fmt: skip

    msg = _refused(collide)
    assert "achievements[3] (lessons.10): id: duplicate achievement id 'lessons.10'" in msg
    assert "also achievements[0] (lessons)" in msg


@pytest.mark.parametrize("tiers", [[10, 10], [10, 5], [0, 3]])
def test_tiers_must_be_positive_and_strictly_increasing(tiers: list[int]) -> None:
    msg = _refused(lambda d: d["achievements"][0].update(tiers=tiers))
    assert f"achievements[0] (lessons): tiers: must be positive and strictly increasing, got {tiers}" in msg


def test_contradictory_conditions_are_refused() -> None:
    both = [{"field": "score_pct", "op": ">=", "value": 80}, {"field": "score_pct", "op": "<", "value": 50}]
    msg = _refused(lambda d: d["xp"][1]["match"].update(when=both))
    assert "xp[1] (quiz): match.when: the conditions on 'score_pct' contradict each other" in msg


@pytest.mark.parametrize(
    ("a", "b", "ok"),
    [
        ((">=", 60), ("<=", 60), True),  # exactly 60
        ((">", 60), ("<=", 60), False),
        ((">=", 60), ("<", 60), False),
        (("==", 60), (">", 59), True),
        (("==", 60), ("==", 61), False),
    ],
)
def test_conditions_meeting_at_one_point(a: tuple[str, float], b: tuple[str, float], ok: bool) -> None:
    when = [{"field": "score_pct", "op": a[0], "value": a[1]}, {"field": "score_pct", "op": b[0], "value": b[1]}]
    text = _with(lambda d: d["xp"][1]["match"].update(when=when))
    if ok:
        assert parse_rules(text).xp[1].match.when[0].op == a[0]
    else:
        with pytest.raises(RulesError, match="contradict"):
            parse_rules(text)


def test_in_a_row_broken_by_the_events_it_counts_is_refused() -> None:
    msg = _refused(lambda d: d["achievements"][1].update(breaks=PASSED))
    assert "achievements[1] (roll): breaks: the same filter as match" in msg


def test_all_of_requiring_an_unknown_id_is_refused() -> None:
    msg = _refused(lambda d: d["achievements"][2].update(requires=["lessons.10", "lessons.50"]))
    assert "achievements[2] (both): requires: unknown achievement 'lessons.50'" in msg


def test_an_all_of_cycle_is_refused() -> None:
    def cycle(d: dict[str, Any]) -> None:
        d["achievements"] += [
            {"id": "a", "kind": "all_of", "name": "A", "description": "d", "requires": ["roll", "b"]},
            {"id": "b", "kind": "all_of", "name": "B", "description": "d", "requires": ["a"]},
        ]

    msg = _refused(cycle)
    assert "achievements: requires forms a cycle: a -> b -> a" in msg


def test_an_all_of_requiring_itself_is_a_cycle() -> None:
    msg = _refused(lambda d: d["achievements"][2].update(requires=["roll", "both"]))
    assert "cycle: both -> both" in msg


def test_an_all_of_chain_is_not_a_cycle() -> None:
    def chain(d: dict[str, Any]) -> None:
        d["achievements"].append({"id": "top", "kind": "all_of", "name": "T", "description": "d",
                                  "requires": ["both", "lessons.1"]})  # fmt: skip

    assert parse_rules(_with(chain)).achievements[-1].id == "top"


def test_once_per_course_needs_events_with_a_course() -> None:
    msg = _refused(lambda d: d["xp"].append({"id": "v", "match": {"event_type": "login"}, "xp": 1,
                                             "once_per_course": True}))  # fmt: skip
    assert "xp[2] (v): once_per_course: login events carry no course_id" in msg


def test_a_level_achievement_above_the_top_level_is_refused() -> None:
    msg = _refused(lambda d: d["achievements"].append({"id": "lv", "kind": "level", "name": "L",
                                                       "description": "d", "level": 101}))  # fmt: skip
    assert "achievements[3] (lv): level: 101 is above levels.max_level (100)" in msg


def test_an_unknown_key_or_kind_is_refused() -> None:
    assert "xpp" in _refused(lambda d: d["xp"][0].update(xpp=3))
    assert "kind" in _refused(lambda d: d["achievements"][0].update(kind="counted"))


def test_every_problem_is_reported_at_once() -> None:
    def two(d: dict[str, Any]) -> None:
        d["xp"][0]["xp"] = -1
        d["achievements"][2]["requires"] = ["nope"]

    msg = _refused(two)
    assert "xp[0] (lesson): xp:" in msg and "unknown achievement 'nope'" in msg


def test_not_json_is_refused_with_the_source(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{not json")
    with pytest.raises(RulesError, match=str(path)):
        rules_from_file(path)


# --- the level curve ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("curve", [LevelCurve(), LevelCurve(base=1, exponent=1.0, max_level=1000),
                                   LevelCurve(base=50, exponent=2.5, max_level=200)])  # fmt: skip
def test_level_thresholds_strictly_increase_and_level_for_is_monotonic(curve: LevelCurve) -> None:
    steps = thresholds(curve)
    assert steps[0] == 0 and len(steps) == curve.max_level
    assert all(b > a for a, b in itertools.pairwise(steps))
    last = 1
    for xp in range(0, steps[-1] + 50, max(1, steps[-1] // 5000)):
        level = level_for(xp, curve)
        assert last <= level <= curve.max_level
        last = level
    for level, need in enumerate(steps, start=1):
        assert level_for(need, curve) == level and (need == 0 or level_for(need - 1, curve) == level - 1)


def test_the_documented_default_levels() -> None:
    curve = GameRules(version=1).levels
    assert [level_for(x, curve) for x in (0, 99, 100, 283, 799, 800, 2700)] == [1, 1, 2, 3, 4, 5, 10]
    assert progress(0, curve) == (1, 100, 0.0)
    assert progress(thresholds(curve)[-1] + 10**6, curve)[1:] == (None, 1.0)
