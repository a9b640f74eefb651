"""Rolling signals: windows, trends, event time, dedupe, time zones, DST, silence, state round trip and size."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from processors.signals import apply_events, snapshot
from processors.state import BUCKET_DAYS, DEDUPE_CAPACITY, UserState
from schemas.events import parse_event
from schemas.signals import SignalSnapshot

_ids = itertools.count()
_PAYLOADS: dict[str, dict[str, Any]] = {
    "login": {"method": "password"},
    "session_started": {},
    "session_ended": {"duration_seconds": 600.0},
    "lesson_started": {"lesson_id": "l1"},
    "lesson_completed": {"lesson_id": "l1", "duration_seconds": 0.0},
    "course_progress": {"progress_pct": 10.0, "lessons_completed": 1, "lessons_total": 10},
    "quiz_submitted": {"quiz_id": "q1", "score": 5.0, "max_score": 10.0},
    "content_viewed": {"content_id": "v1", "content_format": "video"},
    "notification_delivered": {"notification_id": "n1", "channel": "push"},
    "notification_opened": {"notification_id": "n1", "channel": "push"},
    "enrolled": {},
    "unenrolled": {},
}


def ev(kind: str, when: str, *, tz: str | None = "UTC", course: str = "c1", **payload: Any) -> dict[str, Any]:
    """A valid event dict in contract JSON form; ``when`` is an ISO time with offset."""
    return {
        "event_id": f"e{next(_ids)}",
        "user_id": "u1",
        "event_type": kind,
        "event_time": when,
        "received_at": "2026-06-01T00:00:00+00:00",
        "platform": "web",
        "timezone": tz,
        "session_id": "s1",
        "course_id": course,
        "payload": {**_PAYLOADS[kind], **payload},
    }


def at(day: str, hhmm: str = "09:00") -> str:
    return f"2026-{day}T{hhmm}:00+00:00"


# A month of one UTC student; as_of is 2026-03-20 12:00 UTC: 7 d = Mar 14..20, previous 7 d = Mar 7..13,
# 30 d = Feb 19..Mar 20. Comments give each event's window.
SCENARIO = [
    ev("login", at("02-10")),  # outside 30 d
    ev("enrolled", at("02-10", "09:05"), course="c1"),
    ev("login", at("02-20")),  # 30 d
    ev("enrolled", at("02-20", "09:05"), course="c2"),
    ev("quiz_submitted", at("02-21"), score=10.0, max_score=10.0),  # 100 %
    ev("enrolled", at("02-21", "09:05"), course="c3"),
    ev("lesson_started", at("02-22")),
    ev("login", at("02-25")),
    ev("unenrolled", at("02-25", "09:05"), course="c3"),
    ev("content_viewed", at("03-01")),
    ev("quiz_submitted", at("03-08"), score=3.0, max_score=5.0),  # previous 7 d, 60 %
    ev("lesson_started", at("03-09")),
    ev("lesson_completed", at("03-09", "09:30"), duration_seconds=60.0),  # no session that day: 1 min
    ev("login", at("03-10")),  # previous 7 d
    ev("session_started", at("03-10", "09:01")),
    ev("session_ended", at("03-10", "09:31"), duration_seconds=1800.0),  # 30 min
    ev("notification_delivered", at("03-12")),
    ev("login", at("03-14")),  # 7 d
    ev("session_started", at("03-14", "09:01")),
    ev("session_ended", at("03-14", "09:11"), duration_seconds=600.0),  # 10 min
    ev("lesson_started", at("03-15")),
    ev("lesson_completed", at("03-15", "09:10"), duration_seconds=300.0),  # no session: 5 min
    ev("course_progress", at("03-15", "09:11"), course="c1", progress_pct=40.0),
    ev("quiz_submitted", at("03-16"), score=8.0, max_score=10.0),  # 80 %
    ev("content_viewed", at("03-16", "09:30")),
    ev("login", at("03-17")),
    ev("session_started", at("03-17", "09:01")),
    ev("session_ended", at("03-17", "09:21"), duration_seconds=1200.0),  # 20 min
    ev("lesson_started", at("03-18")),
    ev("lesson_completed", at("03-18", "09:05"), duration_seconds=120.0),  # no session: 2 min
    ev("login", at("03-19", "12:00")),  # the last login
    ev("notification_delivered", at("03-19", "12:30")),
    ev("notification_opened", at("03-19", "13:00")),  # the last event, not an activity
]
AS_OF = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def build(events: list[dict[str, Any]], state: UserState | None = None) -> UserState:
    result = apply_events(state, "u1", events)
    return result.state


def test_scenario_events_are_valid_contract_events() -> None:
    for e in SCENARIO:
        parse_event(e)


def test_windows_and_trends_match_hand_computed_values() -> None:
    snap = snapshot(build(SCENARIO), AS_OF)
    assert snap.events_total == len(SCENARIO)
    assert snap.first_seen == datetime(2026, 2, 10, 9, tzinfo=UTC)
    assert snap.last_event_time == datetime(2026, 3, 19, 13, tzinfo=UTC)
    # login: 3 logins in 7 d, 1 in the week before, 6 in 30 d; session days count as login days
    assert (snap.logins_7d, snap.logins_30d, snap.login_days_7d) == (3, 6, 3)
    assert snap.login_trend == pytest.approx((3 - 1) / 1)
    assert snap.days_since_last_login == pytest.approx(1.0)
    # sessions: 10 + 20 min this week, 30 min the week before
    assert (snap.sessions_7d, snap.sessions_30d) == (2, 3)
    assert snap.avg_session_minutes_7d == pytest.approx(15.0)
    assert snap.session_minutes_trend == pytest.approx(0.0)
    # time on platform: session time, or lesson time on days without a session: 10 + 20 + 5 + 2, + 30 + 1
    assert snap.minutes_on_platform_7d == pytest.approx(37.0)
    assert snap.minutes_on_platform_30d == pytest.approx(68.0)
    # progress: 2 lessons completed this week, 1 the week before, 4 started in 30 d
    assert (snap.lessons_completed_7d, snap.lessons_completed_30d) == (2, 3)
    assert snap.lessons_per_week_30d == pytest.approx(3 / 30 * 7)
    assert snap.lesson_completion_rate_30d == pytest.approx(0.75)
    assert snap.lessons_trend == pytest.approx(1.0)
    # quizzes: 80 % this week, 60 % the week before, 100 % earlier in the month
    assert snap.quizzes_30d == 3
    assert snap.avg_quiz_score_pct_30d == pytest.approx(80.0)
    assert snap.quiz_score_trend == pytest.approx((80 - 60) / 60)
    # courses: c1 (40 %) and c2 (no progress yet) enrolled, c3 unenrolled
    assert (snap.courses_enrolled, snap.courses_unenrolled) == (2, 1)
    assert snap.course_progress_pct == pytest.approx(20.0)
    # consistency: active Mar 14-19 (6 of 7 days); in 30 d also Feb 20, 21, 22, 25, Mar 1, 8, 9, 10
    assert (snap.active_days_7d, snap.active_days_30d, snap.days_observed) == (6, 14, 30)
    assert snap.study_consistency_30d == pytest.approx(14 / 30)
    # streak: Mar 14-19 is current on Mar 20; the 3-day run Mar 8-10 was lost on Mar 12, more than 7 days ago
    assert (snap.current_streak_days, snap.longest_streak_days, snap.streak_freezes_held) == (6, 6, 0)
    assert snap.streak_broken_recently is False
    assert snap.days_since_last_activity == pytest.approx(1.0)
    assert (snap.content_views_30d, snap.notifications_delivered_30d, snap.notifications_opened_30d) == (2, 2, 1)
    assert snap.timezone == "UTC"
    SignalSnapshot.model_validate(snap.model_dump())  # every field within the contract


def test_silence_shows_when_as_of_moves_forward() -> None:
    state = build(SCENARIO)
    later = snapshot(state, datetime(2026, 3, 22, 12, tzinfo=UTC))
    assert later.days_since_last_login == pytest.approx(3.0)
    assert (later.current_streak_days, later.streak_broken_recently) == (0, True)  # lost on Mar 21
    much_later = snapshot(state, datetime(2026, 3, 30, 12, tzinfo=UTC))
    assert much_later.days_since_last_login == pytest.approx(11.0)
    assert much_later.days_since_last_activity == pytest.approx(11.0)
    assert (much_later.logins_7d, much_later.logins_30d) == (0, 4)  # 30 d is now Mar 1..30
    assert much_later.login_trend == pytest.approx(-1.0)  # 0 this week vs Mar 17 and 19 the week before
    assert much_later.sessions_7d == 0 and much_later.avg_session_minutes_7d is None
    assert much_later.streak_broken_recently is False  # lost on Mar 21, more than 7 days before Mar 30
    gone = snapshot(state, datetime(2026, 6, 1, tzinfo=UTC))
    assert (gone.logins_30d, gone.active_days_30d, gone.quizzes_30d, gone.minutes_on_platform_30d) == (0, 0, 0, 0)
    assert gone.login_trend is None and gone.lessons_trend is None and gone.session_minutes_trend is None
    assert gone.quiz_score_trend is None and gone.avg_quiz_score_pct_30d is None
    assert gone.lesson_completion_rate_30d is None
    assert gone.study_consistency_30d == 0.0
    # the snapshot is a pure function of state and as_of: asking again gives the same answer
    assert snapshot(state, AS_OF) == snapshot(state, AS_OF)


def test_quiz_trend_needs_a_quiz_in_both_weeks() -> None:
    state = build([ev("quiz_submitted", at("03-16"), score=9.0, max_score=10.0)])
    snap = snapshot(state, AS_OF)
    assert snap.avg_quiz_score_pct_30d == pytest.approx(90.0)
    assert snap.quiz_score_trend is None


def test_late_and_out_of_order_events_land_on_their_day() -> None:
    state = build([ev("login", at("03-19")), ev("login", at("03-18"))])  # out of order within a batch
    assert snapshot(state, AS_OF).login_trend == pytest.approx(2.0)  # 2 vs 0
    # late: one at each edge of the previous week (Mar 7 00:00, Mar 13 23:59) and one just before it (Mar 6)
    build(
        [ev("login", at("03-07", "00:00")), ev("login", at("03-06", "23:59")), ev("login", at("03-13", "23:59"))], state
    )
    snap = snapshot(state, AS_OF)
    assert (snap.logins_7d, snap.logins_30d) == (2, 5)
    assert snap.login_trend == pytest.approx(0.0)  # 2 vs 2
    assert snap.days_since_last_login == pytest.approx(1 + 3 / 24)  # the late logins do not move it
    assert snap.first_seen == datetime(2026, 3, 6, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("seed", range(4))
def test_any_arrival_order_and_batching_gives_the_same_snapshot(seed: int) -> None:
    rng = random.Random(seed)
    events = SCENARIO[:]
    rng.shuffle(events)
    events += rng.sample(SCENARIO, 8)  # duplicates, too
    state: UserState | None = None
    i = 0
    while i < len(events):
        k = rng.randint(1, 15)
        state = build(events[i : i + k], state)
        i += k
    assert state is not None
    reference = build(SCENARIO)
    for as_of in (AS_OF, AS_OF + timedelta(days=5), AS_OF - timedelta(days=9)):
        assert snapshot(state, as_of) == snapshot(reference, as_of)


def test_duplicates_count_once_within_a_batch_and_across_batches() -> None:
    a, b = ev("login", at("03-19")), ev("quiz_submitted", at("03-19", "10:00"), score=4.0, max_score=10.0)
    first = apply_events(None, "u1", [a, dict(a), b])
    assert (first.new_events, first.duplicates) == (2, 1)
    second = apply_events(first.state, "u1", [dict(b), dict(a)])
    assert (second.new_events, second.duplicates, second.meaningful) == (0, 2, False)
    snap = snapshot(second.state, AS_OF)
    assert (snap.events_total, snap.logins_7d, snap.quizzes_30d) == (2, 1, 1)
    assert snap.avg_quiz_score_pct_30d == pytest.approx(40.0)


@pytest.mark.parametrize("batch", [1, 50])
def test_dedupe_remembers_the_last_ids_and_documents_its_window(batch: int) -> None:
    """Small batches search the packed ring, big ones index it; both must agree, and evict the oldest."""
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [ev("content_viewed", (start + timedelta(minutes=i)).isoformat()) for i in range(DEDUPE_CAPACITY + 88)]
    state: UserState | None = None
    for i in range(0, len(events), batch):
        state = build(events[i : i + batch], state)
    assert state is not None
    assert len(state.seen) == DEDUPE_CAPACITY * 8
    recent = events[-DEDUPE_CAPACITY:]
    for i in range(0, len(recent), batch):
        result = apply_events(state, "u1", recent[i : i + batch])
        assert result.new_events == 0
    # the trade-off: an id older than the window is no longer known and counts again
    stale = apply_events(state, "u1", events[:3])
    assert (stale.new_events, stale.duplicates) == (3, 0)
    assert state.events_total == len(events) + 3


def test_newest_is_the_newest_new_event_not_a_duplicate_or_a_rejected_one() -> None:
    first = apply_events(None, "u1", [ev("login", at("03-18")), ev("login", at("03-19", "08:00"))])
    assert first.newest == datetime.fromisoformat(at("03-19", "08:00"))
    later, out_of_range = ev("login", at("03-19", "09:00")), ev("login", "9999-12-31T23:00:00+00:00")
    second = apply_events(first.state, "u1", [later, ev("login", at("03-17")), out_of_range])
    assert [r[0] for r in second.rejected] == [out_of_range["event_id"]]
    assert second.newest == datetime.fromisoformat(at("03-19", "09:00"))
    assert apply_events(second.state, "u1", [dict(later)]).newest is None  # only a duplicate: nothing new


def test_meaningful_changes() -> None:
    delivered = apply_events(None, "u1", [ev("notification_delivered", at("03-19"))])
    assert delivered.new_events == 1 and delivered.meaningful is False
    assert snapshot(delivered.state, AS_OF).notifications_delivered_30d == 1
    opened = apply_events(delivered.state, "u1", [ev("notification_opened", at("03-19", "10:00"))])
    assert opened.meaningful is True


def test_events_that_cannot_be_placed_in_time_are_rejected_and_change_nothing() -> None:
    naive = ev("login", "2026-03-19T09:00:00")
    garbage = ev("login", "yesterday")
    other = {**ev("login", at("03-19")), "user_id": "u2"}
    no_id = {k: v for k, v in ev("login", at("03-19")).items() if k != "event_id"}
    result = apply_events(None, "u1", [naive, garbage, other, no_id])
    assert [r[0] for r in result.rejected] == [naive["event_id"], garbage["event_id"], other["event_id"], None]
    assert result.new_events == 0 and result.meaningful is False
    assert snapshot(result.state, AS_OF).events_total == 0
    # the corrected event with the same id is still accepted: rejected ids are not remembered
    fixed = apply_events(result.state, "u1", [{**naive, "event_time": at("03-19")}])
    assert fixed.new_events == 1


def test_an_event_after_not_after_is_rejected_as_from_the_future_and_not_remembered() -> None:
    limit = datetime.fromisoformat(at("03-19", "10:00")).timestamp()
    on_time, ahead = ev("login", at("03-19", "10:00")), ev("login", at("03-20", "02:00"))
    result = apply_events(None, "u1", [on_time, ahead], not_after=limit)
    assert [r[0] for r in result.rejected] == [ahead["event_id"]] and "in the future" in result.rejected[0][1]
    assert result.new_events == 1 and result.newest == datetime.fromisoformat(at("03-19", "10:00"))
    later = apply_events(result.state, "u1", [ahead])  # arrived again once its time had come: counted
    assert later.new_events == 1


def test_course_status_and_progress_follow_event_time() -> None:
    state = build(
        [
            ev("course_progress", at("03-15"), course="c1", progress_pct=60.0),
            ev("course_progress", at("03-10"), course="c1", progress_pct=20.0),  # older: ignored
            ev("course_progress", at("03-16"), course="c2", progress_pct=10.0),  # no enrolled event: counts
        ]
    )
    snap = snapshot(state, AS_OF)
    assert (snap.courses_enrolled, snap.course_progress_pct) == (2, pytest.approx(35.0))
    build([ev("unenrolled", at("03-17"), course="c1"), ev("enrolled", at("03-01"), course="c1")], state)
    snap = snapshot(state, AS_OF)
    assert (snap.courses_enrolled, snap.courses_unenrolled, snap.course_progress_pct) == (1, 1, pytest.approx(10.0))


def test_days_observed_and_consistency_for_a_new_student() -> None:
    state = build([ev("login", at("03-18")), ev("lesson_started", at("03-20", "08:00"))])
    snap = snapshot(state, AS_OF)
    assert (snap.days_observed, snap.active_days_30d) == (3, 2)
    assert snap.study_consistency_30d == pytest.approx(2 / 3)
    assert snap.current_streak_days == 1  # Mar 19 missed, no freeze: the run is Mar 20 alone


# --- time zones -----------------------------------------------------------------------------------------


def test_tokyo_evening_counts_on_the_tokyo_date_not_the_utc_date() -> None:
    # 2026-03-02 08:30 Tokyo = 2026-03-01 23:30 UTC
    instant = "2026-03-01T23:30:00+00:00"
    tokyo = build([ev("login", instant, tz="Asia/Tokyo")])
    utc = build([ev("login", instant, tz="UTC")])
    # 7-day windows ending Mar 8 (Mar 2..8) and Mar 7 (Mar 1..7), read in each student's zone
    assert snapshot(tokyo, datetime.fromisoformat("2026-03-08T20:00:00+09:00")).logins_7d == 1
    assert snapshot(tokyo, datetime.fromisoformat("2026-03-09T20:00:00+09:00")).logins_7d == 0
    assert snapshot(utc, datetime.fromisoformat("2026-03-07T20:00:00+00:00")).logins_7d == 1
    assert snapshot(utc, datetime.fromisoformat("2026-03-08T20:00:00+00:00")).logins_7d == 0
    # one as_of instant, two local days: 2026-03-08 14:59 UTC is 23:59 on Mar 8 in Tokyo, so Tokyo's window is
    # Mar 2..8 (holds the login) while the UTC student's is Mar 2..8 UTC (the login was on Mar 1 UTC)
    as_of = datetime.fromisoformat("2026-03-08T14:59:00+00:00")
    assert (snapshot(tokyo, as_of).logins_7d, snapshot(utc, as_of).logins_7d) == (1, 0)
    assert snapshot(tokyo, as_of + timedelta(minutes=2)).logins_7d == 0  # 00:01 on Mar 9 in Tokyo
    assert snapshot(tokyo, as_of).timezone == "Asia/Tokyo"


def test_half_past_eleven_local_in_tokyo_stays_on_that_tokyo_day() -> None:
    state = build([ev("login", "2026-03-01T23:30:00+09:00", tz="Asia/Tokyo")])  # 14:30 UTC, also Mar 1 in UTC
    late = build([ev("lesson_started", "2026-03-02T00:10:00+09:00", tz="Asia/Tokyo")], state)  # Mar 1 in UTC!
    snap = snapshot(late, datetime.fromisoformat("2026-03-02T12:00:00+09:00"))
    assert (snap.active_days_7d, snap.current_streak_days, snap.logins_7d) == (2, 2, 1)


def test_latest_named_zone_wins_and_offsets_are_the_fallback() -> None:
    no_zone = build([ev("login", "2026-03-19T23:30:00+09:00", tz=None)])
    assert no_zone.tz == "Etc/GMT-9"  # an IANA name for UTC+9
    snap = snapshot(no_zone, datetime.fromisoformat("2026-03-19T23:45:00+09:00"))
    assert (snap.active_days_7d, snap.timezone) == (1, "Etc/GMT-9")
    india = build([ev("login", "2026-03-19T10:00:00+05:30", tz=None)])
    assert india.tz == "+05:30"
    assert snapshot(india, datetime.fromisoformat("2026-03-19T23:00:00+05:30")).logins_7d == 1
    # a named zone replaces the fallback; an older event's zone does not replace a newer one
    build([ev("login", at("03-19", "10:00"), tz="Europe/Paris")], no_zone)
    build([ev("login", at("03-18", "10:00"), tz="America/New_York")], no_zone)
    assert no_zone.tz == "Europe/Paris"
    build([ev("login", at("03-20", "10:00"), tz="America/New_York")], no_zone)
    assert no_zone.tz == "America/New_York"


@pytest.mark.parametrize(
    ("first_day", "switch"),
    [(date(2026, 3, 26), date(2026, 3, 29)), (date(2026, 10, 22), date(2026, 10, 25))],
)
def test_london_dst_switch_neither_doubles_nor_drops_a_day(first_day: date, switch: date) -> None:
    london = ZoneInfo("Europe/London")
    events = []
    for k in range(7):
        d = first_day + timedelta(days=k)
        for hh, mm in ((0, 30), (1, 30), (23, 30)):  # around midnight, and inside the hour that moves
            local = datetime(d.year, d.month, d.day, hh, mm, tzinfo=london)
            events.append(ev("login", local.isoformat(), tz="Europe/London"))
    # sent as UTC instants: the local date must come from the zone, not from the offset on the wire
    for e in events:
        e["event_time"] = datetime.fromisoformat(e["event_time"]).astimezone(UTC).isoformat()
    state = build(events)
    last_day = first_day + timedelta(days=6)
    as_of = datetime(last_day.year, last_day.month, last_day.day, 23, 59, tzinfo=london)
    snap = snapshot(state, as_of)
    assert (snap.logins_7d, snap.login_days_7d, snap.active_days_7d, snap.current_streak_days) == (21, 7, 7, 7)
    # the switch day itself holds its three logins, whatever its length (23 or 25 hours)
    switch_as_of = datetime(switch.year, switch.month, switch.day, 23, 59, tzinfo=london)
    day_before = switch_as_of - timedelta(days=1)
    assert snapshot(state, switch_as_of).logins_7d - snapshot(state, day_before).logins_7d == 3


def test_utc_instant_just_before_midnight_is_the_next_day_in_london_summer_time() -> None:
    state = build([ev("login", "2026-03-29T23:30:00+00:00", tz="Europe/London")])  # 00:30 BST, Mar 30
    assert state.streak.is_active(date(2026, 3, 30).toordinal())
    assert not state.streak.is_active(date(2026, 3, 29).toordinal())


# --- the state ------------------------------------------------------------------------------------------


def test_state_round_trip_through_json_gives_identical_snapshots() -> None:
    state = build(SCENARIO)
    restored = UserState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    for as_of in (AS_OF, AS_OF + timedelta(days=3), AS_OF + timedelta(days=40)):
        assert snapshot(restored, as_of) == snapshot(state, as_of)
    assert restored.to_dict() == state.to_dict()
    # and both keep evolving the same way (including dedupe)
    more = [ev("login", at("03-20", "08:00")), SCENARIO[3]]
    r1, r2 = apply_events(state, "u1", [dict(e) for e in more]), apply_events(restored, "u1", more)
    assert (r1.new_events, r1.duplicates) == (r2.new_events, r2.duplicates) == (1, 1)
    assert snapshot(r1.state, AS_OF) == snapshot(r2.state, AS_OF)


def test_copy_is_independent() -> None:
    state = build(SCENARIO[:5])
    before = state.copy()
    build([ev("login", at("03-19"))], state)
    assert before.events_total == 5 and state.events_total == 6


def test_state_stays_small_after_400_days_of_daily_activity() -> None:
    state: UserState | None = None
    start = datetime(2025, 1, 1, 18, tzinfo=UTC)
    milestones = 0
    for k in range(400):
        t = start + timedelta(days=k)
        courses = [f"course-{(k // 15 + j) % 30}" for j in range(2)]  # 30 courses over the year
        batch = [
            ev("login", t.isoformat(), tz="Europe/Berlin"),
            ev("session_started", (t + timedelta(minutes=1)).isoformat(), tz="Europe/Berlin"),
            ev("lesson_started", (t + timedelta(minutes=2)).isoformat(), tz="Europe/Berlin", course=courses[0]),
            ev("lesson_completed", (t + timedelta(minutes=20)).isoformat(), tz="Europe/Berlin", course=courses[0]),
            ev("course_progress", (t + timedelta(minutes=21)).isoformat(), tz="Europe/Berlin", course=courses[1]),
            ev("quiz_submitted", (t + timedelta(minutes=25)).isoformat(), tz="Europe/Berlin", course=courses[1]),
            ev("content_viewed", (t + timedelta(minutes=30)).isoformat(), tz="Europe/Berlin", seconds_viewed=312.5),
            ev("notification_delivered", (t + timedelta(minutes=40)).isoformat(), tz="Europe/Berlin"),
            ev("notification_opened", (t + timedelta(minutes=41)).isoformat(), tz="Europe/Berlin"),
            ev("session_ended", (t + timedelta(minutes=45)).isoformat(), tz="Europe/Berlin", duration_seconds=2640.0),
        ]
        result = apply_events(state, "u1", batch)
        state = result.state
        milestones += len(result.milestones)
    assert state is not None
    size = len(orjson.dumps(state.to_dict()))
    assert size < 10_000, size  # ~5.5 KB of it is the 512-id dedupe ring
    assert len(state.buckets) <= BUCKET_DAYS
    assert len(state.courses) <= 20
    assert len(state.seen) == DEDUPE_CAPACITY * 8
    assert milestones == 5
    snap = snapshot(state, start + timedelta(days=399, hours=2))
    assert (snap.current_streak_days, snap.longest_streak_days, snap.events_total) == (400, 400, 4000)
    assert (snap.logins_30d, snap.active_days_30d, snap.streak_freezes_held) == (30, 30, 2)
    assert snap.minutes_on_platform_7d == pytest.approx(7 * 44.0)


def test_snapshot_needs_an_aware_as_of() -> None:
    with pytest.raises(ValueError, match="aware"):
        snapshot(build(SCENARIO[:2]), datetime(2026, 3, 20))
