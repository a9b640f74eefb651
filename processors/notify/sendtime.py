"""Send-time optimisation: when, before its deadline, a message is most likely to find the student active.

Pure: no clock, no I/O. Two halves:

**The student's activity histogram** (``ActivityHistogram``): 168 buckets, local weekday x local hour in the
student's own zone (Monday 00:00-00:59 is bucket 0). What it counts is *active local hours*: an hour of a local
date in which the student did anything that makes a day active (``processors.streaks.ACTIVE_EVENT_TYPES``),
once, however many events it held, so a long session does not outweigh a habit. ``observe`` (one event:
epoch seconds + zone) is what the worker calls per event; duplicates and out-of-order events are fine: a local
hour already counted within the last 168 local hours is recognised by a bitmask and not counted again, and an
event more than 168 local hours older than the newest counted one is not counted at all (it is history).
Weights decay exponentially in event time with a configurable half-life (``SendTimeConfig.half_life_days``):
each weight is kept relative to a reference hour (the newest observation), so an update costs O(1) and
reading "as of now" scales the weights by ``2 ** (-(now - ref) / half_life)``; weights that decay below
0.01 are dropped when the reference moves. The order events arrive in does not change the result.

Size bound: ``to_dict`` is JSON-ready and compact (non-zero buckets only, weights to 3 decimals, the dedupe
mask as hex): a typical student's is 100-300 bytes; the worst case, every bucket non-zero, stays under
``MAX_JSON_BYTES`` (2 KiB; a unit test fills every bucket and measures it). It lives in the student's state
(``processors.state.UserState.activity``), updated by ``processors.signals.apply_events`` per active event.

**The cohort** (``CohortActivity``): per course, and over all the worker's students, a decayed sum of the same
observations (each active local hour a student's histogram counts, counted once more in the aggregate of the
course they are in). In memory, O(1) per observation: a restart empties it and live events fill it again; an
aggregate with fewer than ``cohort_min_hours`` hours is not used (the course falls back to all students, then
to nothing). Unlike ``cohort_profile`` (each student weighs the same), a student twice as active weighs twice.

**The next best slot** (``next_best_slot``): candidates are ``now`` and every quarter hour up to the deadline
(every real zone's offset is a multiple of 15 minutes, so local hour boundaries are on that grid), plus the end
of quiet hours. A candidate inside quiet hours (local wall time, ``deploy/policy/default.json``
``quiet_hours``) is never chosen: quiet hours always win. A send at ``t`` is scored by the chance the student
is active within the hour after it: the share of ``[t, t + 1 h)`` in each local hour bucket times the
bucket's estimated activity. The estimate blends three things:

- the student's own weights, each bucket pooled with the same hour on the other weekdays (``hour_pooling``:
  one pooled share per own share by default), because a month holds four Mondays but thirty evenings;
- the cohort's profile (``cohort_profile``: the mean of the cohort's normalised histograms, each student
  weighing the same), which counts as ``min_observations`` observations: a student with none is scheduled by
  the cohort alone, one with ``min_observations`` active hours half by each, one with many by their own;
- nothing else: with no student data and no cohort, the first allowed instant is chosen.

``slot_chooser`` wraps it for ``processors.policy.decide``: the one function the worker and ``engage bench
sendtime`` both choose slots through.

The earliest candidate within ``tie_tolerance`` (5 %) of the best wins: waiting hours for a sliver is not worth it.

Edge cases, as decided:

- **Deadline inside quiet hours**: the best allowed candidate before quiet hours start (the latest allowed
  slot is one of the candidates); if ``now`` itself is allowed and best, now.
- **No allowed instant before the deadline** (``now`` in quiet hours, deadline before they end): quiet hours
  win, the slot is their end and ``past_deadline`` is True. The same for a deadline already passed while
  ``now`` is quiet; a deadline already passed while ``now`` is allowed gives ``now``.
- **Deadline under an hour away**: the candidates are the few quarter hours before it; the hour after the
  send is still what is scored (it may run past the deadline: the deadline bounds the send, not the reading).
- **DST**: candidates are UTC instants, each read in the zone as it is at that instant; a local hour skipped
  in spring is never a candidate, the hour repeated in autumn is two candidates scored by the same bucket.
  Histogram buckets use the local hour of each event's instant, so a student's 19:00 habit stays 19:00
  across a clock change.
- **Horizons beyond 7 days** are cut to 7 days (a week holds every bucket; waiting longer only delays).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from processors.policy import QuietHours, SlotChooser, quiet_hours_end
from processors.policy import SendTimeConfig as SendTimeConfig  # re-exported: it belongs to send-time optimisation
from processors.streaks import ACTIVE_EVENT_TYPES

BUCKETS = 168  # 7 local weekdays x 24 local hours
WINDOW_HOURS = 168  # local hours the dedupe mask remembers
HISTOGRAM_VERSION = 1
MAX_JSON_BYTES = 2048
PRUNE_BELOW = 0.01
MAX_HORIZON = timedelta(days=7)
STEP = timedelta(minutes=15)
_HOUR = 3600
_MASK = (1 << WINDOW_HOURS) - 1


def local_hour(at: float, zone: tzinfo) -> tuple[int, int]:
    """(bucket, local hour key) of an instant (epoch seconds) in ``zone``: the bucket is weekday * 24 + hour, the
    key counts local hours since 0001-01-01 (distinct per local date and hour, for deduplication)."""
    local = datetime.fromtimestamp(at, zone)
    return local.weekday() * 24 + local.hour, local.toordinal() * 24 + local.hour


def _decay(hours: float, half_life_days: float) -> float:
    return math.pow(2.0, -hours / (half_life_days * 24.0))


@dataclass(slots=True)
class ActivityHistogram:
    """One student's decayed activity per local weekday x hour (see the module docstring)."""

    ref_hour: int = 0  # epoch hour (UTC) the weights are valued at: the newest observation's
    weights: dict[int, float] = field(default_factory=dict)  # bucket -> weight at ref_hour
    seen_top: int = 0  # local hour key of the newest counted hour (0: nothing counted yet)
    seen_mask: int = 0  # bit i: the local hour seen_top - i was counted

    def observe(self, at: float, zone: tzinfo, half_life_days: float) -> bool:
        """Count the local hour of an active event at ``at`` (epoch seconds); False if already counted or too old."""
        bucket, key = local_hour(at, zone)
        return self.observe_local(bucket, key, at, half_life_days)

    def observe_local(self, bucket: int, key: int, at: float, half_life_days: float) -> bool:
        """``observe`` for a caller that has the event's local time already (``local_hour``'s bucket and key):
        the worker's fold, which reads every event's local date anyway."""
        if key > self.seen_top:  # a newer local hour than any counted (always true for the first one)
            shift = key - self.seen_top
            self.seen_mask = ((self.seen_mask << shift) & _MASK) | 1 if shift < WINDOW_HOURS else 1
            self.seen_top = key
        else:
            age = self.seen_top - key
            if age >= WINDOW_HOURS or self.seen_mask >> age & 1:
                return False
            self.seen_mask |= 1 << age
        hour = int(at // _HOUR)
        if not self.weights or hour > self.ref_hour:
            if self.weights:
                factor = _decay(hour - self.ref_hour, half_life_days)
                self.weights = {b: w * factor for b, w in self.weights.items() if w * factor >= PRUNE_BELOW}
            self.ref_hour = hour
            add = 1.0
        else:
            add = _decay(self.ref_hour - hour, half_life_days)
        self.weights[bucket] = self.weights.get(bucket, 0.0) + add
        return True

    def observe_event(self, event: Mapping[str, Any], zone: tzinfo, half_life_days: float) -> bool:
        """``observe`` for an event in the contract's JSON form: only active event types count."""
        if event.get("event_type") not in ACTIVE_EVENT_TYPES:
            return False
        return self.observe(datetime.fromisoformat(event["event_time"]).timestamp(), zone, half_life_days)

    def at(self, now: float, half_life_days: float) -> list[float]:
        """The 168 weights valued at ``now`` (epoch seconds); weights never grow with time, so a ``now`` before the
        reference reads them as they are."""
        factor = _decay(max(0.0, now / _HOUR - self.ref_hour), half_life_days)
        out = [0.0] * BUCKETS
        for bucket, weight in self.weights.items():
            out[bucket] = weight * factor
        return out

    def mass(self, now: float, half_life_days: float) -> float:
        """Decayed number of active hours observed, as of ``now``."""
        return sum(self.at(now, half_life_days))

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form: ``w`` is [bucket, weight, bucket, weight, ...] of non-zero buckets."""
        flat: list[float | int] = []
        for bucket in sorted(self.weights):
            flat += [bucket, round(self.weights[bucket], 3)]
        return {"v": HISTOGRAM_VERSION, "r": self.ref_hour, "w": flat, "s": self.seen_top, "m": f"{self.seen_mask:x}"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ActivityHistogram:
        if not data:
            return cls()
        if data.get("v") != HISTOGRAM_VERSION:
            raise ValueError(f"unsupported ActivityHistogram version {data.get('v')!r} (expected {HISTOGRAM_VERSION})")
        flat = data["w"]
        if len(flat) % 2:
            raise ValueError("activity histogram: 'w' must hold bucket, weight pairs")
        weights = {int(flat[i]): float(flat[i + 1]) for i in range(0, len(flat), 2)}
        if any(not 0 <= b < BUCKETS or not math.isfinite(w) or w < 0 for b, w in weights.items()):
            raise ValueError("activity histogram: a bucket outside 0..167 or a weight that is not a finite >= 0")
        return cls(int(data["r"]), weights, int(data["s"]), int(data["m"], 16) & _MASK)


def cohort_profile(histograms: Iterable[ActivityHistogram], now: float, half_life_days: float) -> list[float]:
    """The cohort's activity profile: the mean of its students' normalised histograms (each student weighs the
    same, however active), as of ``now``; uniform when no student has any observation. Sums to 1."""
    total = [0.0] * BUCKETS
    students = 0
    for histogram in histograms:
        weights = histogram.at(now, half_life_days)
        mass = sum(weights)
        if mass <= 0:
            continue
        students += 1
        for bucket, weight in enumerate(weights):
            total[bucket] += weight / mass
    if not students:
        return [1.0 / BUCKETS] * BUCKETS
    return [t / students for t in total]


def activity_estimate(
    histogram: ActivityHistogram | None,
    now: float,
    config: SendTimeConfig,
    cohort: Sequence[float] | None,
) -> tuple[list[float], float]:
    """Per bucket, the share of the student's activity expected there (sums to 1, or all 0 with nothing known),
    and the share of that estimate that comes from the student rather than the cohort."""
    weights = histogram.at(now, config.half_life_days) if histogram is not None else [0.0] * BUCKETS
    mass = sum(weights)
    prior = config.min_observations if cohort is not None else 0.0
    if mass <= 0 and prior <= 0:
        return [0.0] * BUCKETS, 0.0
    by_hour = [sum(weights[d * 24 + h] for d in range(7)) / 7 for h in range(24)]
    pooled = [(weights[b] + config.hour_pooling * by_hour[b % 24]) / (1 + config.hour_pooling) for b in range(BUCKETS)]
    cohort_sum = sum(cohort) if cohort is not None else 0.0
    estimate = []
    for b in range(BUCKETS):
        from_cohort = prior * cohort[b] / cohort_sum if cohort is not None and cohort_sum > 0 else 0.0
        estimate.append((pooled[b] + from_cohort) / (mass + prior))
    return estimate, mass / (mass + prior)


@dataclass(frozen=True, slots=True)
class SendSlot:
    """When to send. ``score`` is the estimated share of the student's weekly activity in the hour after ``at``
    (comparable between slots of one student, not a probability); ``now_score`` the same for sending now."""

    at: datetime  # UTC
    score: float
    now_score: float
    student_share: float  # how much of the estimate is the student's own (vs the cohort's), 0..1
    past_deadline: bool = False  # quiet hours forced a send after the deadline
    reason: str = ""


def _quiet(quiet: QuietHours | None, local: time) -> bool:
    if quiet is None or quiet.start == quiet.end:
        return False
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end


def _score(estimate: Sequence[float], at: datetime, zone: tzinfo) -> float:
    """Estimated activity in [at, at + 1 h): the part of the hour left in at's local hour, the rest in the next."""
    local = at.astimezone(zone)
    into = (local.minute * 60 + local.second + local.microsecond / 1e6) / _HOUR
    bucket = local.weekday() * 24 + local.hour
    if into <= 0:
        return estimate[bucket]
    nxt = (at + timedelta(seconds=(1 - into) * _HOUR)).astimezone(zone)
    return (1 - into) * estimate[bucket] + into * estimate[nxt.weekday() * 24 + nxt.hour]


def _candidates(now: datetime, until: datetime) -> list[datetime]:
    """``now``, then every UTC quarter hour after it up to ``until``, and ``until`` itself."""
    out = [now]
    step = int(STEP.total_seconds())
    t = datetime.fromtimestamp((math.floor(now.timestamp() / step) + 1) * step, UTC)
    while t <= until:
        out.append(t)
        t += STEP
    if until > out[-1]:
        out.append(until)
    return out


def next_best_slot(
    histogram: ActivityHistogram | None,
    now: datetime,
    deadline: datetime,
    quiet_hours: QuietHours | None,
    tz: tzinfo,
    cohort_histogram: Sequence[float] | None = None,
    config: SendTimeConfig | None = None,
) -> SendSlot:
    """The best instant in ``[now, deadline]`` outside quiet hours to send a message (module docstring: rules and
    edge cases). ``cohort_histogram`` is a ``cohort_profile``; ``config.min_observations`` how much it counts."""
    if now.utcoffset() is None or deadline.utcoffset() is None:
        raise ValueError("now and deadline must be timezone-aware")
    config = config or SendTimeConfig()
    now = now.astimezone(UTC)
    estimate, student_share = activity_estimate(histogram, now.timestamp(), config, cohort_histogram)
    now_score = _score(estimate, now, tz)
    until = min(deadline.astimezone(UTC), now + MAX_HORIZON)
    candidates = _candidates(now, until)
    if _quiet(quiet_hours, now.astimezone(tz).time()):
        end = _quiet_end(quiet_hours, now, tz)  # may be off the quarter-hour grid (quiet hours ending 07:10)
        if end <= until:
            candidates = sorted({*candidates, end})
    allowed = [t for t in candidates if not _quiet(quiet_hours, t.astimezone(tz).time())]
    if not allowed:  # quiet hours until past the deadline: they win
        at = _quiet_end(quiet_hours, now, tz)
        return SendSlot(at, _score(estimate, at, tz), now_score, student_share, at > deadline, "after quiet hours")
    scores = [_score(estimate, t, tz) for t in allowed]
    best = max(scores)
    if best <= 0:
        return SendSlot(allowed[0], 0.0, now_score, student_share, False, "nothing known: first allowed instant")
    threshold = best * (1 - config.tie_tolerance)
    index = next(i for i, s in enumerate(scores) if s >= threshold)
    at = allowed[index]
    reason = "now" if at == now else "best slot before the deadline"
    return SendSlot(at, scores[index], now_score, student_share, False, reason)


def _quiet_end(quiet: QuietHours | None, now: datetime, tz: tzinfo) -> datetime:
    """The end of the quiet hours ``now`` is in (``processors.policy.quiet_hours_end`` for a named zone, which
    resolves DST; else the first quarter hour outside them)."""
    end = quiet_hours_end(quiet, now, tz) if isinstance(tz, ZoneInfo) else None
    if end is not None:
        return end.astimezone(UTC)
    step = STEP.total_seconds()
    t = now
    for _ in range(24 * 4 + 1):
        if not _quiet(quiet, t.astimezone(tz).time()):
            return t
        t = datetime.fromtimestamp((math.floor(t.timestamp() / step) + 1) * step, UTC)
    return t


class _Aggregate:
    """One cohort's decayed activity: 168 weights valued at ``ref_hour`` (the newest observation's epoch hour)."""

    __slots__ = ("ref_hour", "weights")

    def __init__(self) -> None:
        self.ref_hour = 0
        self.weights = [0.0] * BUCKETS

    def add(self, bucket: int, hour: int, half_life_days: float) -> None:
        if hour > self.ref_hour:
            if self.ref_hour:
                factor = _decay(hour - self.ref_hour, half_life_days)
                self.weights = [w * factor for w in self.weights]
            self.ref_hour = hour
            self.weights[bucket] += 1.0
        else:
            self.weights[bucket] += _decay(self.ref_hour - hour, half_life_days)

    def profile(self, now: float, half_life_days: float, min_hours: float) -> list[float] | None:
        mass = sum(self.weights) * _decay(max(0.0, now / _HOUR - self.ref_hour), half_life_days)
        if mass <= 0 or mass < min_hours:
            return None
        total = sum(self.weights)
        return [w / total for w in self.weights]


class CohortActivity:
    """The cohorts' activity profiles, fed with the observations the students' own histograms count (module
    docstring). ``max_courses`` bounds memory (1.4 KB per course); beyond it the course observed longest ago goes."""

    ALL = ""  # the key of the aggregate over every student (no course id is empty: schemas.events.Identifier)

    def __init__(self, config: SendTimeConfig | None = None, max_courses: int = 10_000) -> None:
        self.config = config or SendTimeConfig()
        self.max_courses = max_courses
        self._aggregates: dict[str, _Aggregate] = {}

    def __len__(self) -> int:
        return len(self._aggregates)

    def add(self, course_id: str | None, hours: Iterable[tuple[int, int]]) -> None:
        """Count a student's newly observed active hours, (bucket, epoch hour) pairs, in their course and in all."""
        hours = list(hours)
        keys = [self.ALL] if not course_id else [self.ALL, course_id]
        half_life = self.config.half_life_days
        for key in keys:
            aggregate = self._aggregates.get(key)
            if aggregate is None:
                if len(self._aggregates) > self.max_courses:
                    stalest = min((k for k in self._aggregates if k), key=lambda k: self._aggregates[k].ref_hour)
                    del self._aggregates[stalest]
                aggregate = self._aggregates[key] = _Aggregate()
            for bucket, hour in hours:
                aggregate.add(bucket, hour, half_life)

    def profile(self, course_id: str | None, now: float) -> list[float] | None:
        """The course's profile as of ``now`` (sums to 1), else all students', else None (too few hours)."""
        half_life, min_hours = self.config.half_life_days, self.config.cohort_min_hours
        for key in (course_id, self.ALL) if course_id else (self.ALL,):
            aggregate = self._aggregates.get(key)
            found = aggregate.profile(now, half_life, min_hours) if aggregate is not None else None
            if found is not None:
                return found
        return None


def slot_chooser(
    histogram: ActivityHistogram | None,
    cohort: CohortActivity | None,
    course_id: str | None,
    config: SendTimeConfig,
) -> SlotChooser:
    """What ``processors.policy.decide`` asks for the send time: ``next_best_slot`` with the student's histogram
    and their cohort's profile (read only if the policy asks: most decisions are suppressed before that)."""

    def choose(now: datetime, deadline: datetime, quiet: QuietHours | None, zone: ZoneInfo) -> datetime:
        profile = cohort.profile(course_id, now.timestamp()) if cohort is not None else None
        return next_best_slot(histogram, now, deadline, quiet, zone, profile, config).at

    return choose
