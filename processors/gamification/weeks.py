"""ISO weeks in UTC, the one period boundary every board and league uses: "2026-W49" and its Monday.

Shared by the gamification fold (``engine``), the weekly leagues (``leagues``) and the leaderboard service
(``leaderboards.boards``), so a week is named and parsed one way everywhere.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache


@lru_cache(maxsize=512)  # a handful of distinct days, asked for on every standing and award
def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@lru_cache(maxsize=512)
def week_monday(week: str) -> date:
    """The Monday of an ISO week "2026-W49"; ValueError naming it when it is not one."""
    year, sep, number = week.partition("-W")
    if not sep or len(year) != 4 or len(number) != 2 or not (year + number).isdigit():
        raise ValueError(f"{week!r} is not an ISO week like 2026-W49")
    try:
        return date.fromisocalendar(int(year), int(number), 1)
    except ValueError:
        raise ValueError(f"{week!r} is not a week of {year} (ISO years have 52 or 53)") from None
