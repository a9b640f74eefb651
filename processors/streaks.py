"""Daily activity streaks in the student's local days: current and longest streak, freezes, milestones.

Rules (PRODUCT.md §3), all on local calendar days (date ordinals), so DST never adds or loses a day:

- **Active day**: at least one login, session start, lesson start/completion, course progress, quiz submission
  or content view on that local day (``ACTIVE_EVENT_TYPES``). A login alone counts: coming back to the app is
  the habit a streak rewards. Session ends, notifications and (un)enrolments do not make a day active.
- **Streak length** counts active days in the run; a day shielded by a freeze keeps the run alive without
  adding to it.
- **Freezes**: one freeze is earned on every 7th *consecutive* active day of a run (7, 14, 21, ... in a row,
  a shielded day restarts the count); at most 2 are held, an earning beyond that is lost. Freezes are spent
  automatically, one per missed day, in day order. When a gap has more missed days than freezes held, the run
  breaks: the next active day starts a new run with no freezes.
- **As of a day**: today is never a missed day (the student may still come), so a run whose last active day
  was yesterday is current. Missed days are the days strictly between the last active day and today.
- **Broken recently**: a run of at least 3 active days was lost within the last 7 days (the day it was lost is
  the first day on which the freezes no longer covered the gap).
- **Milestones** at 7, 14, 30, 100, 365 active days, once per run. A late event that fills a gap merges two
  runs into one; the merged run inherits what both had emitted, so no milestone is emitted twice for it.

The whole history is a deterministic scan over the set of active days. The state keeps that set for the
last ``WINDOW_DAYS`` days as a bitmask, the scan summary before the window (a checkpoint, so runs longer than
the window stay correct) and the scan summary after the latest active day. New days after the latest one
extend the summary in O(new days); a late day that was not active yet re-scans the window (O(active days in
the window), a few hundred steps at most). Days already active change nothing, so replays are free and
idempotent, whatever the dedupe window of the caller. Late days older than the window are ignored.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from schemas.streaks import STREAK_MILESTONES, StreakMilestone, milestone_id

ACTIVE_EVENT_TYPES: frozenset[str] = frozenset(
    {
        "login",
        "session_started",
        "lesson_started",
        "lesson_completed",
        "course_progress",
        "quiz_submitted",
        "content_viewed",
    }
)
MILESTONES: tuple[int, ...] = STREAK_MILESTONES
_MILESTONE_SET = frozenset(MILESTONES)
FREEZE_EVERY = 7  # consecutive active days per freeze earned
MAX_FREEZES = 2
WINDOW_DAYS = 400  # active days kept for re-evaluating late events (the collector refuses older events)
_WINDOW_SLACK = 30  # shift the bitmask at most once a month
MIN_BROKEN_RUN = 3  # a run must have had this many active days for its loss to count as "broken recently"
BROKEN_RECENT_DAYS = 7


class Reached(NamedTuple):
    """A milestone the scan passed: run ``run_start`` had ``milestone`` active days on ``day``."""

    run_start: int
    milestone: int
    day: int


@dataclass(slots=True)
class _Track:
    """What a scan reports besides its summary: milestones passed and each run's length."""

    reached: list[Reached] = field(default_factory=list)
    lengths: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class RunState:
    """The streak scan after a prefix of the active days (ordinals; 0 means none)."""

    last_active: int = 0
    run_start: int = 0
    run_len: int = 0
    consecutive: int = 0
    freezes: int = 0
    longest: int = 0
    long_break: int = 0  # the day the latest completed run of >= MIN_BROKEN_RUN days was lost

    def step(self, day: int, track: _Track | None = None) -> None:
        """Advance the scan to the next active ``day`` (strictly after ``last_active``)."""
        last = self.last_active
        gap = day - last - 1
        if last == 0 or gap > self.freezes:
            if last and self.run_len >= MIN_BROKEN_RUN:
                self.long_break = last + self.freezes + 2
            self.run_start, self.run_len, self.consecutive, self.freezes = day, 1, 1, 0
        else:
            if gap:
                self.freezes -= gap
                self.consecutive = 1
            else:
                self.consecutive += 1
            self.run_len += 1
        if self.consecutive % FREEZE_EVERY == 0 and self.freezes < MAX_FREEZES:
            self.freezes += 1
        if self.run_len > self.longest:
            self.longest = self.run_len
        self.last_active = day
        if track is not None:
            track.lengths[self.run_start] = self.run_len
            if self.run_len in _MILESTONE_SET:
                track.reached.append(Reached(self.run_start, self.run_len, day))

    def copy(self) -> RunState:
        return RunState(
            self.last_active,
            self.run_start,
            self.run_len,
            self.consecutive,
            self.freezes,
            self.longest,
            self.long_break,
        )

    def to_list(self) -> list[int]:
        return [
            self.last_active,
            self.run_start,
            self.run_len,
            self.consecutive,
            self.freezes,
            self.longest,
            self.long_break,
        ]

    @classmethod
    def from_list(cls, values: list[int]) -> RunState:
        return cls(*values)


@dataclass(frozen=True, slots=True)
class StreakView:
    """The streak as the student sees it on one local day."""

    current: int = 0
    longest: int = 0
    freezes: int = 0
    broken_recently: bool = False
    last_active_day: int = 0  # ordinal, 0 = never active
    run_start: int = 0  # ordinal of the current run's first day, 0 when there is no current run
    freezes_used: int = 0  # missed days of the current run that a freeze covered (up to and including today)


def view_at(rs: RunState, day: int) -> StreakView:
    """The streak on ``day`` given the scan up to the last active day on or before ``day``."""
    if rs.last_active == 0:
        return StreakView()
    missed = day - rs.last_active - 1
    alive = missed <= rs.freezes
    broken = day - BROKEN_RECENT_DAYS < rs.long_break <= day
    if alive:
        shielded = rs.last_active - rs.run_start + 1 - rs.run_len + max(missed, 0)
        return StreakView(
            rs.run_len, rs.longest, rs.freezes - max(missed, 0), broken, rs.last_active, rs.run_start, shielded
        )
    lost_on = rs.last_active + rs.freezes + 2
    broken = broken or (rs.run_len >= MIN_BROKEN_RUN and lost_on > day - BROKEN_RECENT_DAYS)
    return StreakView(0, rs.longest, 0, broken, rs.last_active, 0)


def _iter_bits(bits: int, base: int) -> Iterator[int]:
    """Ordinals of the set bits, ascending."""
    while bits:
        low = bits & -bits
        yield base + low.bit_length() - 1
        bits ^= low


@dataclass(slots=True)
class StreakState:
    """Active days of the last ``WINDOW_DAYS`` days plus the scan bookkeeping; see the module docstring."""

    base: int = 0  # ordinal of bit 0 of ``bits``; 0 = no activity yet
    bits: int = 0
    checkpoint: RunState = field(default_factory=RunState)  # the scan over active days before ``base``
    current: RunState = field(default_factory=RunState)  # the scan over every active day
    emitted: dict[int, int] = field(default_factory=dict)  # run start -> highest milestone emitted for it

    # --- queries ------------------------------------------------------------------------------------
    def is_active(self, day: int) -> bool:
        return self.base != 0 and day >= self.base and bool(self.bits >> (day - self.base) & 1)

    def active_days(self, first: int, last: int) -> int:
        """Active days in [first, last] that are still inside the window."""
        if self.base == 0 or last < first:
            return 0
        lo = max(first, self.base) - self.base
        hi = last - self.base
        if hi < lo:
            return 0
        return ((self.bits >> lo) & ((1 << (hi - lo + 1)) - 1)).bit_count()

    def as_of(self, day: int) -> StreakView:
        """The streak on local ``day``; a day before the latest activity re-scans the window (rare: backfills)."""
        if day >= self.current.last_active:
            return view_at(self.current, day)
        rs = self.checkpoint.copy()
        for d in _iter_bits(self.bits, self.base):
            if d > day:
                break
            rs.step(d)
        return view_at(rs, day)

    def current_on(self, days: Iterable[int]) -> dict[int, int]:
        """``as_of(day).current`` for each of ``days``: counted from the bitmask for a day in the current run, and
        with one re-scan of the window for all the days before it (a batch prices its events' days together: a scan
        each cost ~10 % of the fold, and most batches hold a day before the latest: local days straddle UTC days)."""
        out: dict[int, int] = {}
        cur = self.current
        # A day inside the current run (its start still in the window): the run never broke between its start and
        # its last active day, so on that day it was alive and had counted its active days so far - no scan.
        in_run = cur.run_start if cur.run_start >= self.base else cur.last_active
        earlier: list[int] = []
        for d in set(days):
            if d >= cur.last_active:
                out[d] = view_at(cur, d).current
            elif d >= in_run:
                out[d] = self.active_days(in_run, d)
            else:
                earlier.append(d)
        earlier.sort()
        if earlier:
            rs, i = self.checkpoint.copy(), 0
            for d in _iter_bits(self.bits, self.base):
                while i < len(earlier) and d > earlier[i]:
                    out[earlier[i]] = view_at(rs, earlier[i]).current
                    i += 1
                if i == len(earlier):
                    break
                rs.step(d)
            for day in earlier[i:]:
                out[day] = view_at(rs, day).current
        return out

    # --- updates ------------------------------------------------------------------------------------
    def add_days(self, days: Iterable[int]) -> tuple[list[Reached], dict[int, int]]:
        """Mark ``days`` active; returns the milestones newly reached (not emitted before) and run lengths.

        The run lengths (run start -> active days) cover the runs this update touched, for the milestone records.
        """
        candidates = sorted(set(days))
        if not candidates:
            return [], {}
        if self.base == 0:
            self.base = candidates[-1] - WINDOW_DAYS + 1
        new = [d for d in candidates if d >= self.base and not (self.bits >> (d - self.base)) & 1]
        if not new:
            return [], {}
        for d in new:
            self.bits |= 1 << (d - self.base)
        if new[0] > self.current.last_active:
            track = _Track()
            for d in new:
                self.current.step(d, track)
            out: list[Reached] = []
            for r in track.reached:
                if r.milestone > self.emitted.get(r.run_start, 0):
                    self.emitted[r.run_start] = r.milestone
                    out.append(r)
        else:
            out, track = self._rescan()
        self._advance_window()
        return out, track.lengths

    def _rescan(self) -> tuple[list[Reached], _Track]:
        """Re-run the scan over the window after a late day; runs may have merged, emissions are inherited."""
        rs = self.checkpoint.copy()
        track = _Track()
        for d in _iter_bits(self.bits, self.base):
            rs.step(d, track)
        starts = sorted(track.lengths)
        inherited: dict[int, int] = {}
        for old_start, m in self.emitted.items():
            i = bisect_right(starts, old_start) - 1
            if i >= 0 and m > inherited.get(starts[i], 0):
                inherited[starts[i]] = m
        emitted = dict(inherited)
        out = []
        for r in track.reached:
            if r.milestone > emitted.get(r.run_start, 0):
                emitted[r.run_start] = r.milestone
                out.append(r)
        self.current = rs
        self.emitted = emitted
        return out, track

    def _advance_window(self) -> None:
        """Fold days older than the window into the checkpoint; keeps the bitmask under ~430 bits."""
        latest = self.current.last_active
        if latest - self.base < WINDOW_DAYS + _WINDOW_SLACK:
            return
        new_base = latest - WINDOW_DAYS + 1
        shift = new_base - self.base
        for d in _iter_bits(self.bits & ((1 << shift) - 1), self.base):
            self.checkpoint.step(d)
        self.bits >>= shift
        self.base = new_base
        keep_from = self.checkpoint.run_start
        self.emitted = {s: m for s, m in self.emitted.items() if s >= keep_from}

    # --- serialisation ------------------------------------------------------------------------------
    def to_list(self) -> list[Any]:
        flat: list[int] = []
        for s, m in self.emitted.items():
            flat += (s, m)
        return [self.base, format(self.bits, "x"), self.checkpoint.to_list(), self.current.to_list(), flat]

    @classmethod
    def from_list(cls, values: list[Any]) -> StreakState:
        base, bits_hex, cp, cur, flat = values
        return cls(
            base=base,
            bits=int(bits_hex, 16),
            checkpoint=RunState.from_list(cp),
            current=RunState.from_list(cur),
            emitted={flat[i]: flat[i + 1] for i in range(0, len(flat), 2)},
        )


def milestone_records(
    user_id: str,
    timezone: str,
    reached: list[Reached],
    lengths: dict[int, int],
    day_times: dict[int, datetime],
) -> list[StreakMilestone]:
    """Milestone messages for what ``add_days`` reported.

    ``day_times`` maps each day made active by this batch to its earliest event time in the batch. The event
    that completed a milestone is the first one on the day it was reached, or, when that day was already active
    (a late event filled a gap before it), the latest gap-filling event before that day.
    """
    out = []
    for r in reached:
        event_time = day_times.get(r.day)
        if event_time is None:
            earlier = [d for d in day_times if d < r.day]
            event_time = day_times[max(earlier)] if earlier else max(day_times.values())
        run_start = date.fromordinal(r.run_start)
        out.append(
            StreakMilestone(
                milestone_id=milestone_id(user_id, run_start, r.milestone),
                user_id=user_id,
                milestone_days=r.milestone,
                streak_days=max(lengths.get(r.run_start, r.milestone), r.milestone),
                run_start=run_start,
                reached_on=date.fromordinal(r.day),
                timezone=timezone,
                event_time=event_time,
            )
        )
    return out
