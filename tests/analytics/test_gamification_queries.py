"""The gamification queries (XP distribution, achievement unlocks, retention by achievement) on data worked out
by hand, through the sinks' own row builders.

Each test runs twice: on the local ClickHouse 18.16 server and on a current ClickHouse (chdb).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from schemas.gamification import AchievementUnlocked, LevelUp, XpAward, award_id, level_up_id, unlock_id
from sinks.clickhouse.tables import ACHIEVEMENTS_UNLOCKED, LEVEL_UPS, XP_AWARDS
from tests.analytics.conftest import Warehouse, at, event

NAMES = {"first-lesson": "First steps", "streak.3": "Habit"}


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in result.records()]


def award(user: str, day: str, total: int, n: int = 0) -> XpAward:
    return XpAward(
        award_id=award_id(user, f"e{n}", "lesson_completed"),
        user_id=user,
        rule_id="lesson_completed",
        rules_version=1,
        source=f"e{n}",
        xp=10,
        base_xp=10,
        multiplier=1.0,
        total_xp=total,
        local_day=at(day).date(),
        event_time=at(day),
    )


def level_up(user: str, day: str, level: int) -> LevelUp:
    return LevelUp(level_up_id=level_up_id(user, level), user_id=user, level=level, total_xp=0, event_time=at(day))


def unlock(
    user: str, achievement: str, when: datetime, first_seen: datetime | None, backfilled: bool = False
) -> AchievementUnlocked:
    return AchievementUnlocked(
        unlock_id=unlock_id(user, achievement),
        user_id=user,
        achievement_id=achievement,
        name=NAMES[achievement],
        description="test",
        rules_version=1,
        event_time=when,
        first_seen=first_seen,
        backfilled=backfilled,
    )


def test_xp_distribution_by_bucket_and_by_level(warehouse: Warehouse) -> None:
    warehouse.events(*(event(u, "2026-11-02") for u in ("x1", "x2", "x3", "x4", "x5")), event("x6", "2026-12-02"))
    first = award("x1", "2026-11-02", 30, 1)
    warehouse.contract(
        XP_AWARDS,
        first,
        first,  # delivered twice
        award("x1", "2026-11-03", 50, 2),
        award("x2", "2026-11-03", 150),
        award("x3", "2026-11-04", 1200),
        award("x3", "2026-12-04", 1300, 2),  # after as_of
        award("x5", "2026-11-05", 20000),
        award("x6", "2026-12-02", 40),  # first seen after as_of
    )
    warehouse.contract(
        LEVEL_UPS,
        level_up("x2", "2026-11-03", 2),
        *(level_up("x3", "2026-11-04", n) for n in (2, 3, 4)),
        level_up("x3", "2026-12-04", 5),  # after as_of
        level_up("x5", "2026-11-05", 10),
    )
    result = warehouse.query("xp_distribution", as_of="2026-11-30")
    assert result.columns == [
        "dimension",
        "bucket",
        "students",
        "pct_students",
        "p25_xp",
        "p50_xp",
        "p75_xp",
        "p90_xp",
        "p99_xp",
    ]
    # XP: x1 50, x2 150, x3 1200, x4 0 (no award), x5 20000; levels 1, 2, 4, 1, 10.
    # quantileExact(q) takes the value at index floor(q * n) of the sorted values.
    assert rows(result) == [
        ("all", "all", 5, 100.0, 50, 150, 1200, 20000, 20000),
        ("xp", "0", 1, 20.0, 0, 0, 0, 0, 0),
        ("xp", "1-99", 1, 20.0, 50, 50, 50, 50, 50),
        ("xp", "100-499", 1, 20.0, 150, 150, 150, 150, 150),
        ("xp", "1000-4999", 1, 20.0, 1200, 1200, 1200, 1200, 1200),
        ("xp", "10000+", 1, 20.0, 20000, 20000, 20000, 20000, 20000),
        ("level", "level 1", 2, 40.0, 0, 50, 50, 50, 50),
        ("level", "level 2", 1, 20.0, 150, 150, 150, 150, 150),
        ("level", "level 4", 1, 20.0, 1200, 1200, 1200, 1200, 1200),
        ("level", "level 10", 1, 20.0, 20000, 20000, 20000, 20000, 20000),
    ]


def test_achievement_unlocks_rate_among_active_students_and_time_to_unlock(warehouse: Warehouse) -> None:
    warehouse.events(
        event("a1", "2026-11-02", "lesson_completed"),
        event("a2", "2026-11-04", "lesson_completed"),
        event("a3", "2026-11-10"),
        event("a4", "2026-11-05"),
        event("a5", "2026-10-11", "lesson_completed"),  # active before the window only
        event("a6", "2026-11-05", "notification_delivered"),  # not an active day
    )
    a1 = unlock("a1", "first-lesson", at("2026-11-02"), at("2026-11-01"))  # 1 day
    warehouse.contract(
        ACHIEVEMENTS_UNLOCKED,
        a1,
        a1,  # delivered twice: one unlock
        unlock("a2", "first-lesson", at("2026-11-04", 22), at("2026-11-01")),  # 3.5 days
        unlock("a5", "first-lesson", at("2026-10-11"), at("2026-10-01"), backfilled=True),  # 10 days
        unlock("a3", "first-lesson", at("2026-12-05"), at("2026-11-10")),  # after as_of
        unlock("a3", "streak.3", at("2026-11-12"), None),  # first_seen unknown: no time to unlock
        unlock("a4", "streak.3", at("2026-11-05", 12), at("2026-11-03", 0)),  # 2.5 days
    )
    result = warehouse.query("achievement_unlocks", **{"from": "2026-11-01", "as_of": "2026-11-30"})
    assert result.columns == [
        "achievement_id",
        "achievement_name",
        "students_unlocked",
        "backfilled_unlocks",
        "unlocked_active",
        "unlock_rate_pct",
        "median_days_to_unlock",
        "p90_days_to_unlock",
    ]
    # Active in November: a1, a2, a3, a4. First lesson: a1, a2 (active) and a5 (backfilled, not active).
    assert rows(result) == [
        ("first-lesson", "First steps", 3, 1, 2, 50.0, 3.5, 10.0),
        ("streak.3", "Habit", 2, 0, 2, 50.0, 2.5, 2.5),
    ]


def test_achievement_retention_compares_early_unlockers_with_the_rest(warehouse: Warehouse) -> None:
    # Day 0 is the first event's day; retained = an active day in days 30-59; the cohort's day 59 <= as_of.
    warehouse.events(
        event("r1", "2026-09-01"),
        event("r1", "2026-10-05"),  # day 34: retained
        event("r2", "2026-09-01"),
        event("r2", "2026-10-15"),  # day 44: retained
        event("r3", "2026-09-10"),
        event("r3", "2026-10-20"),  # day 40: retained
        event("r4", "2026-09-10"),
        event("r4", "2026-10-20", "lesson_completed"),  # day 40: retained
        event("r5", "2026-09-15"),
        event("r5", "2026-10-20", "notification_delivered"),  # not an active day: not retained
        event("r8", "2026-09-01"),
        event("r8", "2026-09-30"),  # day 29: too early
        event("r8", "2026-10-31"),  # day 60: too late
        event("r6", "2026-10-25"),  # day 59 after as_of: not in the cohort
        event("r7", "2026-08-01"),  # before from
        event("r7", "2026-09-05"),
    )
    r1 = unlock("r1", "first-lesson", at("2026-09-02"), at("2026-09-01"))
    warehouse.contract(
        ACHIEVEMENTS_UNLOCKED,
        r1,
        r1,  # delivered twice
        unlock("r2", "first-lesson", at("2026-09-03"), at("2026-09-01")),
        unlock("r4", "first-lesson", at("2026-10-20"), at("2026-09-10")),  # day 40: not early, counts as not
        unlock("r4", "streak.3", at("2026-09-12"), at("2026-09-10")),
        unlock("r6", "first-lesson", at("2026-10-26"), at("2026-10-25")),
        unlock("r7", "first-lesson", at("2026-08-02"), at("2026-08-01")),
    )
    result = warehouse.query("achievement_retention", **{"from": "2026-09-01", "as_of": "2026-11-30"})
    assert result.columns == [
        "achievement_id",
        "achievement_name",
        "cohort",
        "unlocked",
        "unlocked_retained_pct",
        "not_unlocked",
        "not_unlocked_retained_pct",
        "difference_pts",
    ]
    # Cohort r1, r2, r3, r4, r5, r8; retained r1, r2, r3, r4.
    # First lesson early: r1, r2 (both retained); the other 4: r3, r4 retained -> 50 %.
    # Streak 3 early: r4 (retained); the other 5: r1, r2, r3 retained -> 60 %.
    assert rows(result) == [
        ("first-lesson", "First steps", 6, 2, 100.0, 4, 50.0, 50.0),
        ("streak.3", "Habit", 6, 1, 100.0, 5, 60.0, 40.0),
    ]
