"""Streaks: local days, freezes, milestones once per run, late events, replays (processors.streaks)."""

from __future__ import annotations

import itertools
import random
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from processors.signals import apply_events, snapshot
from processors.state import UserState
from processors.streaks import WINDOW_DAYS, StreakState
from schemas.streaks import StreakMilestone

D0 = date(2026, 1, 5)  # a Monday; day n of a test is D0 + n
_ids = itertools.count()


def day(n: int) -> int:
    return (D0 + timedelta(days=n)).toordinal()


def login(n: int, *, hour: int = 10, tz: str = "UTC", offset: str = "+00:00", event_id: str | None = None) -> dict:
    """A login on test day ``n`` at ``hour`` local (``offset`` must be the zone's offset that day)."""
    d = D0 + timedelta(days=n)
    return {
        "event_id": event_id or f"e{next(_ids)}",
        "user_id": "u1",
        "event_type": "login",
        "event_time": f"{d.isoformat()}T{hour:02d}:00:00{offset}",
        "platform": "web",
        "timezone": tz,
        "payload": {"method": "password"},
    }


def apply_days(state: UserState | None, days: list[int], **kw: Any) -> tuple[UserState, list[StreakMilestone]]:
    """One batch per day, in the order given; returns the state and every milestone emitted."""
    milestones: list[StreakMilestone] = []
    for n in days:
        result = apply_events(state, "u1", [login(n, **kw)])
        state = result.state
        milestones += result.milestones
    assert state is not None
    return state, milestones


def view(state: UserState, n: int) -> tuple[int, int, int, bool]:
    v = state.streak.as_of(day(n))
    return v.current, v.longest, v.freezes, v.broken_recently


def naive_with_used(active: set[int], today: int) -> tuple[int, int, int, bool, int]:
    """The rules walked one calendar day at a time on ``today``:
    (current, longest, freezes, broken recently, freezes used by the current run)."""
    if not active or min(active) > today:
        return 0, 0, 0, False, 0
    run = consecutive = freezes = longest = used = 0
    lost_on: list[int] = []
    for d in range(min(active), today + 1):
        if d in active:
            run += 1
            consecutive += 1
            if consecutive % 7 == 0 and freezes < 2:
                freezes += 1
            longest = max(longest, run)
        elif d < today and run > 0:  # a missed day; today is not missed yet
            consecutive = 0
            if freezes:
                freezes -= 1
                used += 1
            else:
                if run >= 3:
                    lost_on.append(d + 1)  # from the next day on it no longer counts as current
                run = freezes = used = 0
    return run, longest, freezes, any(today - 7 < b <= today for b in lost_on), used


def naive(active: set[int], today: int) -> tuple[int, int, int, bool]:
    """(current, longest, freezes, broken recently) on ``today`` by the day-by-day walk."""
    return naive_with_used(active, today)[:4]


def naive_run_starts(active: set[int]) -> list[int]:
    """First days of the runs, by the same day-by-day walk."""
    starts: list[int] = []
    run = consecutive = freezes = 0
    for d in range(min(active), max(active) + 1):
        if d in active:
            if run == 0:
                starts.append(d)
            run += 1
            consecutive += 1
            if consecutive % 7 == 0 and freezes < 2:
                freezes += 1
        elif run > 0:
            consecutive = 0
            if freezes:
                freezes -= 1
            else:
                run = freezes = 0
    return starts


def _owner(starts: list[int], d: int) -> int:
    return max(s for s in starts if s <= d)


# --- current, longest, "today may still come" ---------------------------------------------------------


def test_current_streak_survives_today_and_breaks_after_a_missed_day_without_freezes() -> None:
    state, _ = apply_days(None, [0, 1, 2, 3, 4])
    assert view(state, 4) == (5, 5, 0, False)
    assert view(state, 5) == (5, 5, 0, False)  # last active yesterday: still current
    assert view(state, 6) == (0, 5, 0, True)  # day 5 missed, no freeze: lost, and a 5-day run counts as broken
    assert view(state, 12) == (0, 5, 0, True)  # lost on day 6, still within 7 days
    assert view(state, 13) == (0, 5, 0, False)


def test_short_runs_do_not_count_as_broken_streaks() -> None:
    state, _ = apply_days(None, [0, 1])
    assert view(state, 3) == (0, 2, 0, False)


def test_longest_streak_is_kept_after_a_break() -> None:
    state, _ = apply_days(None, [*range(0, 6), *range(10, 15)])
    assert view(state, 13) == (4, 6, 0, True)  # the 6-day run was lost on day 7: within the 7 days 7..13
    assert view(state, 14) == (5, 6, 0, False)


# --- freezes -----------------------------------------------------------------------------------------


def test_freezes_are_earned_every_7_consecutive_days_and_capped_at_2() -> None:
    state, _ = apply_days(None, list(range(6)))
    assert view(state, 5)[2] == 0
    state, _ = apply_days(state, [6])
    assert view(state, 6)[2] == 1
    state, _ = apply_days(state, list(range(7, 14)))
    assert view(state, 13)[2] == 2
    state, _ = apply_days(state, list(range(14, 21)))
    assert view(state, 20) == (21, 21, 2, False)  # the third earning is lost to the cap


def test_a_freeze_is_spent_on_a_missed_day_and_keeps_the_streak() -> None:
    state, _ = apply_days(None, list(range(7)))  # 7 days: one freeze
    assert view(state, 8) == (7, 7, 0, False)  # day 7 missed, covered by the freeze (spent as of day 8)
    state, _ = apply_days(state, [8])
    assert view(state, 8) == (8, 8, 0, False)  # the shielded day keeps the run but does not count
    # the consecutive count restarted at day 8: 6 more days are not enough for a new freeze
    state, _ = apply_days(state, list(range(9, 14)))
    assert view(state, 13) == (13, 13, 0, False)
    state, _ = apply_days(state, [14])
    assert view(state, 14) == (14, 14, 1, False)


def test_streak_breaks_when_the_freezes_run_out() -> None:
    state, _ = apply_days(None, list(range(14)))  # 14 days: two freezes
    assert view(state, 14) == (14, 14, 2, False)
    assert view(state, 15) == (14, 14, 1, False)  # day 14 missed
    assert view(state, 16) == (14, 14, 0, False)  # day 15 missed
    assert view(state, 17) == (0, 14, 0, True)  # day 16 missed and nothing left
    state, _ = apply_days(state, [17])
    assert view(state, 17) == (1, 14, 0, True)  # a new run; the old one was lost on day 17
    assert view(state, 24) == (0, 14, 0, False)


def test_two_freezes_cover_a_two_day_gap_and_the_run_continues() -> None:
    state, _ = apply_days(None, [*range(14), 16])
    assert view(state, 16) == (15, 15, 0, False)


# --- milestones --------------------------------------------------------------------------------------


def test_milestones_are_emitted_once_each_over_400_days() -> None:
    state, milestones = apply_days(None, list(range(400)))
    assert [m.milestone_days for m in milestones] == [7, 14, 30, 100, 365]
    assert [m.reached_on for m in milestones] == [D0 + timedelta(days=k - 1) for k in (7, 14, 30, 100, 365)]
    first = milestones[0]
    assert first.milestone_id == f"u1:{D0.isoformat()}:7"
    assert first.run_start == D0
    assert first.streak_days == 7
    assert first.event_time == datetime.fromisoformat(f"{(D0 + timedelta(days=6)).isoformat()}T10:00:00+00:00")
    assert first.timezone == "UTC"
    assert view(state, 399) == (400, 400, 2, False)
    # the active-day bitmask stays bounded while the run is longer than the window
    assert state.streak.bits.bit_length() <= WINDOW_DAYS + 31


def test_replaying_the_same_events_emits_nothing_and_a_fresh_replay_emits_the_same_ids() -> None:
    events = [login(n) for n in range(40)]
    state = None
    live: list[StreakMilestone] = []
    for e in events:
        result = apply_events(state, "u1", [e])
        state, live = result.state, live + result.milestones
    assert state is not None
    assert [m.milestone_days for m in live] == [7, 14, 30]
    again = apply_events(state, "u1", events)  # every id seen: duplicates
    assert again.milestones == [] and again.duplicates == 40
    # the same days under new ids (past the dedupe window, or a client that re-mints ids): still nothing
    fresh_ids = apply_events(state, "u1", [login(n) for n in range(40)])
    assert fresh_ids.new_events == 40 and fresh_ids.milestones == []
    # into an empty state, in one batch and in reverse order: the same milestone records
    replay = apply_events(None, "u1", list(reversed(events)))
    assert [m.milestone_id for m in replay.milestones] == [m.milestone_id for m in live]
    assert [m.reached_on for m in replay.milestones] == [m.reached_on for m in live]


def test_late_event_merging_two_runs_does_not_repeat_a_milestone() -> None:
    # days 0-4, gap on day 5 (no freeze yet), days 6-12: the second run reaches 7
    state, ms = apply_days(None, [*range(5), *range(6, 13)])
    assert [(m.milestone_days, m.run_start) for m in ms] == [(7, D0 + timedelta(days=6))]
    assert view(state, 12)[0] == 7
    late = apply_events(state, "u1", [login(5)])  # the missing day arrives: one run of 13 days
    assert late.milestones == []
    assert view(state, 12) == (13, 13, 1, False)
    nxt = apply_events(state, "u1", [login(13)])
    assert [(m.milestone_days, m.milestone_id) for m in nxt.milestones] == [(14, f"u1:{D0.isoformat()}:14")]


def test_late_event_filling_a_gap_completes_a_milestone_on_the_earlier_day() -> None:
    state, ms = apply_days(None, [0, 1, 2, 4, 5, 6, 7])
    assert ms == [] and view(state, 7)[0] == 4
    filler = login(3, hour=21)
    result = apply_events(state, "u1", [filler])
    assert [m.milestone_days for m in result.milestones] == [7]
    m = result.milestones[0]
    assert m.reached_on == D0 + timedelta(days=6)  # the 7th active day of the run
    assert m.event_time == datetime.fromisoformat(filler["event_time"])  # the late event completed it
    assert m.streak_days == 8
    assert view(state, 7) == (8, 8, 1, False)
    assert result.meaningful


def test_late_event_restores_a_broken_current_streak() -> None:
    state, _ = apply_days(None, [0, 1, 2, 3, 4, 6, 7])
    assert view(state, 7) == (2, 5, 0, True)
    apply_events(state, "u1", [login(5)])
    assert view(state, 7) == (8, 8, 1, False)


def test_day_already_active_changes_nothing() -> None:
    state, _ = apply_days(None, list(range(10)))
    before = state.streak.to_list()
    result = apply_events(state, "u1", [login(3, hour=20), login(9, hour=22)])
    assert result.milestones == [] and state.streak.to_list() == before


@pytest.mark.parametrize("seed", range(6))
def test_streak_matches_a_day_by_day_reference_under_any_arrival_order(seed: int) -> None:
    rng = random.Random(seed)
    span = [45, 90, 150, 520, 60, 200][seed]
    p = [0.6, 0.85, 0.92, 0.95, 0.75, 0.97][seed]
    days = [day(i) for i in range(span) if rng.random() < p]
    order = days[:]
    chunks = [order[i : i + 40] for i in range(0, len(order), 40)]  # late by up to ~40 days, inside the window
    for c in chunks:
        rng.shuffle(c)
    order = [d for c in chunks for d in c]
    streak = StreakState()
    emitted: list[tuple[int, int]] = []
    seen: set[int] = set()
    i = 0
    while i < len(order):
        batch = order[i : i + rng.randint(1, 6)]
        i += len(batch)
        seen.update(batch)
        reached, _ = streak.add_days(batch)
        # never again for the same run: no earlier emission in the run (as it stands now) reached as far
        starts = naive_run_starts(seen)
        for r in reached:
            owner = _owner(starts, r.run_start)
            assert all(m < r.milestone for s, m in emitted if _owner(starts, s) == owner), (r, emitted)
            emitted.append((r.run_start, r.milestone))
    active = set(days)
    for today in range(max(day(0), day(span) - WINDOW_DAYS + 20), day(span) + 10):
        v = streak.as_of(today)
        got = (v.current, v.longest, v.freezes, v.broken_recently, v.freezes_used)
        assert got == naive_with_used(active, today), today
    # the batch form (the gamification fold prices all of a batch's days with one scan) says the same
    run = range(streak.current.run_start - 3, streak.current.last_active + 3)  # the current run's days and around
    asked = [rng.randint(day(0), day(span) + 10) for _ in range(12)] + list(run)
    assert streak.current_on(asked) == {d: streak.as_of(d).current for d in asked}
    # and every run got its highest milestone
    starts = naive_run_starts(active)
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else day(span) + 1
        length = sum(1 for d in active if start <= d < end)
        best = max((m for m in (7, 14, 30, 100, 365) if m <= length), default=0)
        got = max((m for s, m in emitted if _owner(starts, s) == start), default=0)
        assert got == best, (start, length)
    # a round trip through JSON keeps the answers
    restored = StreakState.from_list(orjson.loads(orjson.dumps(streak.to_list())))
    assert restored.as_of(day(span)) == streak.as_of(day(span))


# --- local days, DST ---------------------------------------------------------------------------------


def test_streak_counts_local_days_across_both_london_dst_switches() -> None:
    """Events at 00:30 and 23:30 London time every day over both 2026 switches: one active day each."""
    london = ZoneInfo("Europe/London")
    for start, end in ((date(2026, 3, 25), date(2026, 4, 2)), (date(2026, 10, 21), date(2026, 10, 29))):
        state: UserState | None = None
        d = start
        while d <= end:
            for hh in ("00:30", "23:30"):
                local = datetime.fromisoformat(f"{d.isoformat()}T{hh}:00").replace(tzinfo=london)
                e = login(0)
                e.update(event_time=local.isoformat(), timezone="Europe/London")
                state = apply_events(state, "u1", [e]).state
            d += timedelta(days=1)
        assert state is not None
        v = state.streak.as_of(end.toordinal())
        n_days = (end - start).days + 1
        assert (v.current, v.longest) == (n_days, n_days)
        assert state.streak.active_days(start.toordinal() - 5, end.toordinal() + 5) == n_days


def test_tokyo_student_at_half_past_eleven_is_active_on_the_tokyo_date() -> None:
    # 2026-03-02 08:30 in Tokyo is 2026-03-01 23:30 UTC: the streak day is March 2 for the Tokyo student
    e = login(0)
    e.update(event_time="2026-03-01T23:30:00+00:00", timezone="Asia/Tokyo")
    tokyo = apply_events(None, "u1", [e]).state
    assert tokyo.streak.is_active(date(2026, 3, 2).toordinal())
    assert not tokyo.streak.is_active(date(2026, 3, 1).toordinal())
    e2 = login(0)
    e2.update(event_time="2026-03-01T23:30:00+00:00", timezone="UTC")
    utc = apply_events(None, "u1", [e2]).state
    assert utc.streak.is_active(date(2026, 3, 1).toordinal())
    # and on the snapshot, read on Tokyo's March 2 evening (still March 2 in UTC): one active day, streak 1
    snap = snapshot(tokyo, datetime.fromisoformat("2026-03-02T23:00:00+09:00"))
    assert (snap.current_streak_days, snap.active_days_7d, snap.timezone) == (1, 1, "Asia/Tokyo")


def test_milestone_record_is_a_valid_contract_message() -> None:
    _, ms = apply_days(None, list(range(7)), tz="Asia/Kolkata", offset="+05:30")
    (m,) = ms
    assert m.timezone == "Asia/Kolkata"
    again = StreakMilestone.model_validate_json(m.model_dump_json())
    assert again == m
    assert again.event_time.utcoffset() == timedelta(hours=5, minutes=30)
