"""The compact per-user state the Faust table keeps: small enough for millions of users, JSON via ``to_dict``.

What it holds, and its bounds (a daily learner after a year serialises to ~9 KB, ~5.5 KB of it the dedupe ring):
- daily buckets of small integer counters keyed by local date ordinal, for the last ``BUCKET_DAYS`` local days
  before the latest day seen (older ones are pruned on every apply; a late event older than that is not
  counted in any window, it still counts for streaks, totals and first/last times);
- the last ``DEDUPE_CAPACITY`` accepted event ids as 64-bit blake2b hashes. Trade-off: a duplicate that arrives
  after more than ``DEDUPE_CAPACITY`` newer events of the same student is counted twice in the counters (client
  retries and Kafka redeliveries are far inside that window). Streaks are idempotent anyway (a set of days);
  a false match needs a 64-bit collision among 512 ids (~3e-17 per event);
- latest course status and progress per course, at most ``MAX_COURSES`` (least recently touched dropped);
- first seen, last event, last login/visit, last activity times (epoch seconds, event time);
- the student's zone: the ``timezone`` of the latest event (by event time) that carried one; until one is
  known, each event counts on its own wall-clock date (its UTC offset) and the zone reported is that offset;
- the streak state (``processors.streaks.StreakState``);
- the activity histogram for send-time optimisation (``processors.notify.sendtime.ActivityHistogram``: active
  local hours by weekday x hour, decayed; ~200 bytes of JSON for a regular student, at most 2 KiB), and the
  locale of the newest event that carried one (what the notification service renders in);
- the personalisation counters (``prefs``, all time, ``PREF_WIDTH`` numbers: content views and summed completion
  per format, quiz submissions and retries), the evidence of ``processors.profile``; absent until content or a
  quiz is seen.
"""

from __future__ import annotations

import binascii
import sys
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone, tzinfo
from functools import lru_cache
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

from processors.notify.sendtime import ActivityHistogram
from processors.streaks import StreakState

STATE_VERSION = 1
BUCKET_DAYS = 62
DEDUPE_CAPACITY = 512  # ~5.5 KB of the state: a retry older than 512 events of one student counts twice
MAX_COURSES = 20

# Daily bucket layout: one list of ints per local day (seconds rounded, quiz scores in basis points).
LOGINS = 0  # login events
SESSIONS = 1  # session_started
SESSIONS_ENDED = 2  # session_ended
SESSION_SECONDS = 3  # sum of session_ended.duration_seconds
STUDY_SECONDS = 4  # lesson_completed + quiz_submitted duration_seconds + content_viewed.seconds_viewed
LESSONS_STARTED = 5
LESSONS_COMPLETED = 6
QUIZZES = 7
QUIZ_BP = 8  # sum of score / max_score in basis points (10000 = 100 %)
CONTENT_VIEWS = 9
NOTIF_DELIVERED = 10
NOTIF_OPENED = 11
BUCKET_WIDTH = 12

# Personalisation counters (``UserState.prefs``): views per format, then summed completion (0..1) per format, in
# ``FORMATS`` order, then quiz submissions and retries (attempt > 1), then notifications delivered and opened per
# channel, in ``CHANNELS`` order (which channel the student reads: the profile's channel affinity).
FORMATS: tuple[str, ...] = ("video", "audio", "text", "interactive")
FORMAT_INDEX: dict[str, int] = {f: i for i, f in enumerate(FORMATS)}
COMPLETION = len(FORMATS)
QUIZ_SUBMISSIONS = 2 * len(FORMATS)
QUIZ_RETRIES = QUIZ_SUBMISSIONS + 1
CHANNELS: tuple[str, ...] = ("email", "push", "in_app", "sms")
CHANNEL_INDEX: dict[str, int] = {c: i for i, c in enumerate(CHANNELS)}
CHANNEL_DELIVERED = QUIZ_RETRIES + 1
CHANNEL_OPENED = CHANNEL_DELIVERED + len(CHANNELS)
PREF_WIDTH = CHANNEL_OPENED + len(CHANNELS)
_PREF_WIDTH_BEFORE_CHANNELS = CHANNEL_DELIVERED  # records written before the channel counters

# Course entry layout: [status, status_time, progress_pct or None, progress_time]
COURSE_UNKNOWN, COURSE_ENROLLED, COURSE_UNENROLLED = 0, 1, 2


@lru_cache(maxsize=2048)
def zone_for(name: str) -> tzinfo | None:
    """The tzinfo for a zone name as stored in the state: an IANA name, 'UTC' or a '+05:30' style offset."""
    if not name:
        return None
    if name == "UTC":
        return UTC
    if name[0] in "+-" and len(name) == 6 and name[3] == ":":
        try:
            minutes = int(name[1:3]) * 60 + int(name[4:6])
        except ValueError:
            return None
        return timezone(timedelta(minutes=minutes if name[0] == "+" else -minutes))
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # not found (KeyError), malformed key, a directory such as 'Europe'
        return None


def offset_zone_name(offset: timedelta | None) -> str:
    """A zone name for a bare UTC offset: 'UTC', an IANA 'Etc/GMT-1' for whole hours, else '+05:30'."""
    seconds = int(offset.total_seconds()) if offset is not None else 0
    if seconds == 0:
        return "UTC"
    if seconds % 3600 == 0 and -12 * 3600 <= seconds <= 14 * 3600:
        return f"Etc/GMT{-seconds // 3600:+d}"  # IANA's Etc zones have the POSIX (inverted) sign
    sign = "+" if seconds > 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def event_digest(event_id: str) -> bytes:
    """8-byte blake2b digest of an event id: what the dedupe ring stores."""
    return blake2b(event_id.encode(), digest_size=8).digest()


def ring_has(ring: bytes | bytearray, digest: bytes) -> bool:
    """Whether ``digest`` is one of the 8-byte entries of ``ring`` (a C-speed substring search, aligned)."""
    i = ring.find(digest)
    while i != -1:
        if not i & 7:
            return True
        i = ring.find(digest, i + 1)
    return False


def ring_index(ring: bytes | bytearray) -> set[int]:
    """The ring's entries as native-order ints, for large batches where a set beats repeated searches."""
    return set(memoryview(bytes(ring)).cast("Q"))


def digest_key(digest: bytes) -> int:
    """A digest as ``ring_index`` sees it."""
    return int.from_bytes(digest, sys.byteorder)


@dataclass(slots=True)
class UserState:
    """One student's rolling state. ``processors.signals.apply_events`` updates it; ``snapshot`` reads it."""

    user_id: str
    tz: str = ""  # "" until the first event
    tz_named: bool = False  # True once an event carried an IANA ``timezone``
    tz_time: float = 0.0  # event time of the event the zone came from
    first_seen: float | None = None  # epoch seconds, event time
    last_event: float | None = None
    last_login: float | None = None  # latest login or session_started
    last_activity: float | None = None  # latest event that makes a day active (processors.streaks)
    events_total: int = 0  # distinct events applied, all time
    max_day: int = 0  # latest local day seen: the anchor of bucket pruning
    buckets: dict[int, list[int]] = field(default_factory=dict)
    courses: dict[str, list[Any]] = field(default_factory=dict)
    seen: bytearray = field(default_factory=bytearray)  # dedupe ring: 8-byte digests, oldest first
    streak: StreakState = field(default_factory=StreakState)
    activity: ActivityHistogram = field(default_factory=ActivityHistogram)
    locale: str | None = None  # BCP 47, of the newest event (by event time) that carried one
    prefs: list[float] | None = None  # personalisation counters (layout above); None until one is counted
    _index: set[int] | None = field(default=None, repr=False, compare=False)  # cache of ``seen`` for lookups

    def zone(self) -> tzinfo:
        """The zone local days are counted in (UTC until anything is known)."""
        return zone_for(self.tz) or UTC

    def seen_before(self, digest: bytes) -> bool:
        """Whether an event digest is in the dedupe ring (set lookup once indexed, else a search of the ring)."""
        if self._index is not None:
            return digest_key(digest) in self._index
        return ring_has(self.seen, digest)

    def index_seen(self) -> None:
        """Build the in-memory set of the ring (kept while this object lives, never serialised)."""
        if self._index is None:
            self._index = ring_index(self.seen)

    def remember(self, digest: bytes) -> None:
        self.seen += digest
        if self._index is not None:
            self._index.add(digest_key(digest))

    def trim_seen(self) -> None:
        """Keep the newest ``DEDUPE_CAPACITY`` digests of the dedupe ring."""
        excess = len(self.seen) - DEDUPE_CAPACITY * 8
        if excess > 0:
            if self._index is not None:
                self._index.difference_update(memoryview(bytes(self.seen[:excess])).cast("Q"))
            del self.seen[:excess]

    def prune(self) -> None:
        """Drop buckets older than the retention and the least recently touched courses beyond the cap."""
        oldest = self.max_day - BUCKET_DAYS + 1
        if self.buckets and min(self.buckets) < oldest:
            self.buckets = {d: b for d, b in self.buckets.items() if d >= oldest}
        if len(self.courses) > MAX_COURSES:
            ranked = sorted(self.courses.items(), key=lambda kv: max(kv[1][1], kv[1][3]), reverse=True)
            self.courses = dict(ranked[:MAX_COURSES])

    def copy(self) -> UserState:
        """An independent copy (``apply_events`` updates a state in place)."""
        return UserState.from_dict(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (orjson/json): buckets as [day, *counters] rows, the dedupe ring as base64."""
        d: dict[str, Any] = {
            "v": STATE_VERSION,
            "user_id": self.user_id,
            "tz": self.tz,
            "tz_named": self.tz_named,
            "tz_time": self.tz_time,
            "first_seen": self.first_seen,
            "last_event": self.last_event,
            "last_login": self.last_login,
            "last_activity": self.last_activity,
            "events_total": self.events_total,
            "max_day": self.max_day,
            "buckets": [[day, *counters] for day, counters in sorted(self.buckets.items())],
            "courses": {c: list(v) for c, v in self.courses.items()},
            "seen": binascii.b2a_base64(self.seen, newline=False).decode("ascii"),
            "streak": self.streak.to_list(),
        }
        if self.activity.seen_top:  # anything observed (the key is absent from the records of new students)
            d["activity"] = self.activity.to_dict()
        if self.locale is not None:
            d["locale"] = self.locale
        if self.prefs is not None:
            d["prefs"] = [round(v, 3) for v in self.prefs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UserState:
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported UserState version {d.get('v')!r} (expected {STATE_VERSION})")
        return cls(
            user_id=d["user_id"],
            tz=d["tz"],
            tz_named=d["tz_named"],
            tz_time=d["tz_time"],
            first_seen=d["first_seen"],
            last_event=d["last_event"],
            last_login=d["last_login"],
            last_activity=d["last_activity"],
            events_total=d["events_total"],
            max_day=d["max_day"],
            buckets={row[0]: row[1:] for row in d["buckets"]},
            courses={c: list(v) for c, v in d["courses"].items()},
            seen=bytearray(binascii.a2b_base64(d["seen"])),
            streak=StreakState.from_list(d["streak"]),
            activity=ActivityHistogram.from_dict(d.get("activity")),  # absent in records written before it
            locale=d.get("locale"),
            prefs=_prefs(d.get("prefs")),  # absent in records written before the profile
        )


def _prefs(raw: Any) -> list[float] | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, list)
        or len(raw) not in (PREF_WIDTH, _PREF_WIDTH_BEFORE_CHANNELS)
        or not all(isinstance(v, int | float) for v in raw)
    ):
        raise ValueError(f"UserState prefs: expected {PREF_WIDTH} numbers, got {raw!r}")
    return [float(v) for v in raw] + [0.0] * (PREF_WIDTH - len(raw))
