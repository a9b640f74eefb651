"""What every student's numbers must be, computed from the sent events alone, without the pipeline's code.

The chaos verifier compares the live system against these. They are written from the rules in PRODUCT.md §3
(and ``processors.signals`` / ``processors.streaks`` docstrings) as a plain day-by-day walk, not by calling the
processors, so a bug in either shows up as a difference. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

ACTIVE_TYPES = frozenset(
    {"login", "session_started", "lesson_started", "lesson_completed", "course_progress", "quiz_submitted",
     "content_viewed"}
)  # fmt: skip
MILESTONES = (7, 14, 30, 100, 365)
FREEZE_EVERY = 7
MAX_FREEZES = 2
WINDOW_DAYS = 30


@dataclass
class Expected:
    """One student's numbers as the sent events define them (as of ``today`` in the student's zone)."""

    events: int = 0  # distinct event ids
    logins: int = 0  # 'login' events
    sessions: int = 0  # 'session_started' events
    lessons_completed: int = 0
    quizzes: int = 0  # 'quiz_submitted' with a positive max_score
    active_days_30d: int = 0  # local days
    current_streak: int = 0
    longest_streak: int = 0
    milestones: tuple[int, ...] = ()  # streak milestones reached, sorted: once per run, so 7 may appear twice
    utc_active_days: int = 0  # UTC days with an active event (what the daily activity table groups by)
    local_active: set[int] = field(default_factory=set, repr=False)  # local day ordinals


@dataclass(frozen=True)
class StreakWalk:
    current: int
    longest: int
    milestones: tuple[int, ...]  # every milestone every run reached, sorted


def walk_streak(active: set[int], today: int) -> StreakWalk:
    """Streaks from the set of active local days (ordinals), walking every day up to ``today``.

    A run counts active days; every 7th consecutive active day earns a freeze (at most 2 held, a day a freeze
    covers restarts the count); each missed day spends one; a missed day with none left ends the run. Today
    is never missed. Milestones count once per run.
    """
    run = consecutive = freezes = longest = 0
    alive = False
    reached: list[int] = []
    for day in range(min(active), today + 1) if active else ():
        if day in active:
            if not alive:
                run = consecutive = freezes = 0
                alive = True
            run += 1
            consecutive += 1
            if consecutive % FREEZE_EVERY == 0:
                freezes = min(MAX_FREEZES, freezes + 1)
            if run in MILESTONES:
                reached.append(run)
            longest = max(longest, run)
        elif day < today and alive:
            if freezes:
                freezes -= 1
                consecutive = 0
            else:
                alive = False
    return StreakWalk(run if alive else 0, longest, tuple(sorted(reached)))


def expected_by_user(events: Iterable[Mapping[str, Any]], now: datetime) -> dict[str, Expected]:
    """Per student: the numbers the events define. Repeated event ids count once (the first one sent)."""
    seen: set[str] = set()
    by_user: dict[str, Expected] = {}
    zones: dict[str, ZoneInfo] = {}
    utc_days: dict[str, set[date]] = {}
    for ev in events:
        event_id = str(ev["event_id"])
        if event_id in seen:
            continue
        seen.add(event_id)
        user = str(ev["user_id"])
        exp = by_user.setdefault(user, Expected())
        exp.events += 1
        kind = ev["event_type"]
        exp.logins += kind == "login"
        exp.sessions += kind == "session_started"
        exp.lessons_completed += kind == "lesson_completed"
        if kind == "quiz_submitted" and float((ev.get("payload") or {}).get("max_score") or 0) > 0:
            exp.quizzes += 1
        if kind in ACTIVE_TYPES:
            at = datetime.fromisoformat(str(ev["event_time"]))
            zone = zones.setdefault(user, ZoneInfo(str(ev.get("timezone") or "UTC")))
            exp.local_active.add(at.astimezone(zone).date().toordinal())
            utc_days.setdefault(user, set()).add(at.astimezone(UTC).date())
    for user, exp in by_user.items():
        today = now.astimezone(zones.get(user, ZoneInfo("UTC"))).date().toordinal()
        walk = walk_streak(exp.local_active, today)
        exp.current_streak, exp.longest_streak, exp.milestones = walk.current, walk.longest, walk.milestones
        exp.active_days_30d = sum(1 for d in exp.local_active if today - WINDOW_DAYS < d <= today)
        exp.utc_active_days = len(utc_days.get(user, ()))
    return by_user
