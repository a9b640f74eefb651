"""Unlock achievements from the warehouse's history: the pure half of ``engage gamification backfill``.

A rule added to the rules file applies from then on in the workers (``processors.gamification.engine``); the
students who already earned it before are found here, by replaying each student's stored events through the
same pure engine on a fresh record: ``processors.pipeline.ingest_and_play`` (signals, streaks, then ``play``),
in event-time order, one UTC day of events per fold, as a client syncing daily would send them.

Why a day per fold: a fold gives no capped XP to an event more than 8 local days older than its newest event
(``CAP_DAYS``), so a whole history in one fold loses XP and the level achievements with it (45 of 100
synthetic students missed "level 5" that way). One event per fold finds the same unlocks as a day per fold
(checked on 300 synthetic students) at less than half the speed (5,100 against 11,600 events/s on this
machine, about 4 events a day). The price: an achievement a fold judges at its end (streak, comeback, level,
all-of) carries the time of the day's last event, as the worker's carries its batch's; count, in-a-row and
within achievements carry the completing event's.

What a replay does not see, it cannot count: the warehouse keeps 13 months of events (``behavior_events``), so
a student with older history may fall short of a threshold their worker's count reached (the worker unlocked
those itself). Events are stored to the second: two in one second replay in event-id order, which matters
only to ``in_a_row`` rules (they follow arrival order live, event-time order here).

Every unlock found has the id the worker gives it (``{user_id}:{achievement_id}``), so sending one twice, or
one the worker also sends, leaves one row in ``achievements_unlocked``. The running workers do not learn of
backfilled unlocks (their records are not touched): a worker whose own counting later completes the same
achievement sends an unlock with the same id (one row in ClickHouse, the worker's, as the newest copy), and
celebrates it then. The backfill sends no celebrations, XP or level-ups: it only fills in what was earned.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import orjson

from processors.gamification.rules import GameRules
from processors.pipeline import UserRecord, ingest_and_play
from processors.state import UserState
from schemas.gamification import AchievementUnlocked

# What the replay reads of each stored event, in this order (``event_from_row``): everything the signals and
# the rules look at. ``event_time`` is the UTC second, ``tz_offset_minutes`` the offset the device sent.
EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "event_type",
    "toUInt32(event_time)",
    "tz_offset_minutes",
    "platform",
    "course_id",
    "session_id",
    "timezone",
    "locale",
    "payload_json",
)


def event_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """One ``behavior_events`` row (``EVENT_COLUMNS``) back in the contract's JSON form, as the worker got it.

    Optional envelope fields are stored as '' when absent; they come back absent (a course id '' would be a
    course). The event time comes back with the device's own UTC offset, which the local day depends on."""
    event_id, user_id, event_type, seconds, offset, platform, course, session, zone, locale, payload = row
    when = datetime.fromtimestamp(int(seconds), timezone(timedelta(minutes=int(offset))))
    event: dict[str, Any] = {
        "event_id": event_id,
        "user_id": user_id,
        "event_type": event_type,
        "event_time": when.isoformat(),
        "platform": platform,
        "payload": orjson.loads(payload) if payload else {},
    }
    for name, value in (("course_id", course), ("session_id", session), ("timezone", zone), ("locale", locale)):
        if value:
            event[name] = value
    return event


def _utc_day(event: dict[str, Any]) -> date:
    return datetime.fromisoformat(event["event_time"]).astimezone(UTC).date()


def replay_unlocks(user_id: str, events: Iterable[dict[str, Any]], rules: GameRules) -> list[AchievementUnlocked]:
    """Every achievement ``events`` (one student's, in event-time order) unlock under ``rules``, marked
    ``backfilled``, in the order they unlocked; one fold per UTC day of events (see the module's docstring)."""
    record = UserRecord(state=UserState(user_id=user_id))
    unlocks: list[AchievementUnlocked] = []
    for _, day in itertools.groupby(events, key=_utc_day):
        _, outcome = ingest_and_play(record, user_id, list(day), None, rules)
        if outcome is not None:
            unlocks += (u.model_copy(update={"backfilled": True}) for u in outcome.unlocks)
    return unlocks


@dataclass
class BackfillSummary:
    """What a backfill found and did."""

    students: int = 0
    events: int = 0
    found: Counter[str] = field(default_factory=Counter)  # achievement id -> students who earned it
    already_stored: Counter[str] = field(default_factory=Counter)  # of those, unlocks the warehouse already has
    sent: int = 0

    def add(self, unlocks: Sequence[AchievementUnlocked], stored: set[str]) -> list[AchievementUnlocked]:
        """Count a student's unlocks; the ones to send (not in ``stored``, the unlock ids already warehoused)."""
        new = []
        for unlock in unlocks:
            self.found[unlock.achievement_id] += 1
            if unlock.unlock_id in stored:
                self.already_stored[unlock.achievement_id] += 1
            else:
                new.append(unlock)
        return new

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would send" if dry_run else "sent"
        out = [
            f"students read: {self.students:,}; events replayed: {self.events:,}",
            f"unlocks found: {sum(self.found.values()):,}; already in the warehouse: "
            f"{sum(self.already_stored.values()):,}; {verb}: {self.sent:,}",
        ]
        for achievement, n in sorted(self.found.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  {achievement:<28} {n:>9,} students ({self.already_stored[achievement]:,} already stored)")
        return out
