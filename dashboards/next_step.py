"""One motivational next step for the student page, chosen from the engagement answer and the profile (pure).

Most urgent first: a streak that ends tonight, then a level within reach, then the student's own best study
time and format; a student with no activity yet is told how to start. Suggestions use what the profile has
learnt from behaviour (the hour they are most active, the format they finish most), never a guess about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A level is "within reach" from this far along, or this few XP away (one or two lessons).
NEAR_LEVEL_PCT = 80.0
NEAR_LEVEL_XP = 50
# The profile's study hour is the student's own (not the cohort's) from this share of the estimate.
OWN_STUDY_TIME_SHARE = 0.5

_FORMAT_PHRASE = {
    "video": "a 10-minute video",
    "audio": "a 10-minute listen",
    "text": "a short reading",
    "interactive": "a quick interactive exercise",
}
_DEFAULT_ACTIVITY = "a short lesson"


@dataclass(frozen=True)
class NextStep:
    kind: str  # start | streak_at_risk | near_level | habit | keep_going: for styling and tests, not shown
    text: str


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _activity(profile: dict[str, Any] | None) -> str:
    fmt = (profile or {}).get("preferred_format")
    return _FORMAT_PHRASE.get(fmt, _DEFAULT_ACTIVITY) if isinstance(fmt, str) else _DEFAULT_ACTIVITY


def _best_hour(profile: dict[str, Any] | None) -> int | None:
    """The hour the student is most active, when the profile's estimate is mostly their own."""
    study = (profile or {}).get("study_time") or {}
    hours = study.get("best_hours") or []
    if not hours or float(study.get("student_share") or 0.0) < OWN_STUDY_TIME_SHARE:
        return None
    return int(hours[0]) % 24


def _active_today(signals: dict[str, Any], zone: ZoneInfo) -> bool:
    """Whether the last active event fell on the student's local day of ``as_of`` (the streak's day)."""
    since = signals.get("days_since_last_activity")
    as_of_text = signals.get("as_of")
    if since is None or not as_of_text:
        return False
    as_of = datetime.fromisoformat(as_of_text).astimezone(zone)
    return (as_of - timedelta(days=float(since))).date() == as_of.date()


def choose(engagement: dict[str, Any] | None, profile: dict[str, Any] | None) -> NextStep:
    """The one step to show; ``engagement``/``profile`` are the engagement API's answers (None: not available)."""
    if engagement is None:  # the engagement API did not answer: nothing personal can be said
        return NextStep("keep_going", f"{_DEFAULT_ACTIVITY.capitalize()} today keeps you moving.")
    signals = engagement.get("signals") or {}
    if not signals.get("events_total"):
        return NextStep("start", f"Start with {_DEFAULT_ACTIVITY} today: your first active day begins a streak.")
    activity = _activity(profile)
    hour = _best_hour(profile)
    at_hour = f" at {hour:02d}:00, your best study time," if hour is not None else ""
    streak = engagement.get("streak") or {}
    current = int(streak.get("current_days") or 0)
    if current > 0 and not _active_today(signals, _zone(signals.get("timezone"))):
        freezes = int(streak.get("freezes_held") or 0)
        cover = f" (a freeze would cover one missed day; you hold {freezes})" if freezes else ""
        return NextStep(
            "streak_at_risk",
            f"Your {current}-day streak needs today: {activity}{at_hour} keeps it going{cover}.",
        )
    game = engagement.get("gamification") or {}
    next_xp, xp = game.get("next_level_xp"), game.get("xp")
    if isinstance(next_xp, int) and isinstance(xp, int) and next_xp > xp:
        missing = next_xp - xp
        if float(game.get("progress_to_next_level_pct") or 0.0) >= NEAR_LEVEL_PCT or missing <= NEAR_LEVEL_XP:
            level = int(game.get("level") or 0) + 1
            return NextStep("near_level", f"You are {missing} XP from level {level}: {activity} gets you closer.")
    if hour is not None or (profile or {}).get("preferred_format"):
        when = f"Your best study time is {hour:02d}:00; " if hour is not None else ""
        keeps = f"keeps your {current}-day streak" if current > 0 else "starts a new streak"
        sentence = f"{when}{activity} {keeps}."
        return NextStep("habit", sentence[0].upper() + sentence[1:])
    if current > 0:
        return NextStep("keep_going", f"You studied today: come back tomorrow to make it a {current + 1}-day streak.")
    return NextStep("keep_going", f"{_DEFAULT_ACTIVITY.capitalize()} today starts a new streak.")
