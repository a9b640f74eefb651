"""The one next step on the student page: each branch, and the order in which they win."""

from __future__ import annotations

from typing import Any

from dashboards.next_step import choose

AS_OF = "2026-12-05T18:00:00+00:00"


def engagement(
    *, streak: int = 0, days_since_activity: float | None = 0.1, xp: int = 120, next_xp: int | None = 300,
    pct: float = 10.0, level: int = 2, freezes: int = 0, zone: str = "UTC", events: int = 40,
) -> dict[str, Any]:  # fmt: skip
    return {
        "signals": {"as_of": AS_OF, "timezone": zone, "events_total": events,
                    "days_since_last_activity": days_since_activity},
        "streak": {"current_days": streak, "longest_days": streak, "freezes_held": freezes, "freezes_used": 0},
        "gamification": {"xp": xp, "level": level, "next_level_xp": next_xp, "progress_to_next_level_pct": pct},
    }  # fmt: skip


def profile(*, fmt: str | None = "video", hours: list[int] | None = None, own: float = 0.8) -> dict[str, Any]:
    return {"preferred_format": fmt, "study_time": {"best_hours": hours or [], "student_share": own}}


def test_no_data_says_how_to_start() -> None:
    for answer in ({}, engagement(events=0)):
        step = choose(answer, None)
        assert step.kind == "start" and "first active day begins a streak" in step.text
    unknown = choose(None, profile())  # the engagement API did not answer: nothing personal is claimed
    assert unknown.kind == "keep_going" and unknown.text == "A short lesson today keeps you moving."


def test_a_streak_not_yet_kept_today_comes_first_with_the_students_own_time_and_format() -> None:
    step = choose(engagement(streak=6, days_since_activity=1.2, pct=95.0), profile(fmt="video", hours=[19, 8]))
    assert step.kind == "streak_at_risk"
    assert step.text == (
        "Your 6-day streak needs today: a 10-minute video at 19:00, your best study time, keeps it going."
    )


def test_a_streak_at_risk_mentions_freezes_and_falls_back_to_a_lesson() -> None:
    step = choose(engagement(streak=1, days_since_activity=3.0, freezes=2), None)
    assert step.text == (
        "Your 1-day streak needs today: a short lesson keeps it going "
        "(a freeze would cover one missed day; you hold 2)."
    )


def test_today_is_the_students_local_day() -> None:
    # 18:00 UTC is 03:00 the next day in Tokyo: an activity 17 hours earlier (01:00 UTC, 10:00 Tokyo) was
    # "yesterday" there, so the streak is at risk; in UTC the same activity was today.
    assert choose(engagement(streak=3, days_since_activity=17 / 24, zone="Asia/Tokyo"), None).kind == "streak_at_risk"
    assert choose(engagement(streak=3, days_since_activity=17 / 24, zone="UTC"), None).kind != "streak_at_risk"
    assert choose(engagement(streak=3, days_since_activity=0.1, zone="Not/AZone"), None).kind != "streak_at_risk"


def test_a_level_within_reach_by_share_or_by_xp() -> None:
    by_share = choose(engagement(xp=280, next_xp=400, pct=85.0, level=3), profile(fmt="text"))
    assert by_share.kind == "near_level"
    assert by_share.text == "You are 120 XP from level 4: a short reading gets you closer."
    by_xp = choose(engagement(xp=260, next_xp=300, pct=20.0), None)
    assert by_xp.kind == "near_level" and by_xp.text.startswith("You are 40 XP from level 3")
    assert choose(engagement(xp=100, next_xp=None, pct=100.0), None).kind != "near_level"  # the top level


def test_a_known_habit_is_suggested_when_nothing_is_urgent() -> None:
    step = choose(engagement(streak=6, days_since_activity=0.1), profile(fmt="video", hours=[19]))
    assert step.kind == "habit"
    assert step.text == "Your best study time is 19:00; a 10-minute video keeps your 6-day streak."
    no_hour = choose(engagement(streak=0), profile(fmt="interactive", hours=[7], own=0.2))  # the cohort's hour
    assert no_hour.text == "A quick interactive exercise starts a new streak."


def test_without_a_profile_the_step_is_to_keep_going() -> None:
    kept = choose(engagement(streak=4, days_since_activity=0.1), profile(fmt=None))
    assert kept.kind == "keep_going" and "make it a 5-day streak" in kept.text
    assert choose(engagement(streak=0), None).text == "A short lesson today starts a new streak."
