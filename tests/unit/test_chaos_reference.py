"""The chaos verifier's reference numbers: written apart from the processors, so the two must agree."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engage.chaos.reference import expected_by_user, walk_streak
from processors.streaks import StreakState

BASE = date(2026, 3, 1).toordinal()


@settings(max_examples=400, deadline=None)
@given(st.sets(st.integers(0, 60), max_size=45), st.integers(0, 8))
def test_the_day_by_day_walk_agrees_with_the_processors_streak_scan(offsets: set[int], after: int) -> None:
    active = {BASE + o for o in offsets}
    today = BASE + (max(offsets) if offsets else 0) + after
    state = StreakState()
    reached: list[int] = []
    for day in sorted(active):  # in day order, as a student lives them
        new, _ = state.add_days([day])
        reached += [r.milestone for r in new]
    view = state.as_of(today)
    walk = walk_streak(active, today)
    assert (walk.current, walk.longest) == (view.current, view.longest)
    assert walk.milestones == tuple(sorted(reached))  # a milestone once per run: 7 twice for two runs


def test_walk_examples() -> None:
    days = set(range(BASE, BASE + 7)) | {BASE + 8}  # 7 in a row earn a freeze; it covers day 7's gap
    assert walk_streak(days, BASE + 8) == walk_streak(days, BASE + 9)
    assert walk_streak(days, BASE + 9).current == 8
    assert walk_streak(days, BASE + 10).current == 0  # day 9 missed, and the one freeze was spent on day 7
    assert walk_streak(days, BASE + 10).longest == 8
    assert walk_streak(days, BASE + 10).milestones == (7,)
    two_runs = set(range(BASE, BASE + 7)) | set(range(BASE + 10, BASE + 17))  # days 7-9 missed, 1 freeze
    assert walk_streak(two_runs, BASE + 17).milestones == (7, 7)
    assert walk_streak(days - {BASE + 8}, BASE + 8).current == 7  # day 7 missed, the freeze covers it


def _event(event_id: str, user: str, kind: str, at: datetime, **payload: float) -> dict[str, object]:
    return {
        "event_id": event_id,
        "user_id": user,
        "event_type": kind,
        "event_time": at.isoformat(),
        "timezone": "America/New_York",
        "payload": payload,
    }


def test_expected_numbers_count_repeated_ids_once_and_use_local_days() -> None:
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    late_evening = datetime(2026, 3, 9, 2, tzinfo=UTC)  # 21:00 on 8 March in New York
    events = [
        _event("a", "u", "login", late_evening),
        _event("a", "u", "login", late_evening),  # a client retry
        _event("b", "u", "quiz_submitted", now - timedelta(hours=1), score=3, max_score=5),
        _event("c", "u", "quiz_submitted", now - timedelta(hours=1), score=3, max_score=0),
        _event("d", "u", "notification_delivered", now - timedelta(days=3)),
    ]
    exp = expected_by_user(events, now)["u"]
    assert (exp.events, exp.logins, exp.quizzes) == (4, 1, 1)
    assert exp.active_days_30d == 2  # 8 and 10 March local; the delivery is not activity
    assert exp.current_streak == 1  # 9 March missed with no freeze: the run of 8 March ended
    assert exp.longest_streak == 1
    assert exp.utc_active_days == 2  # 9 and 10 March UTC


def test_the_fault_schedule_is_repeatable_and_covers_every_kind_of_fault() -> None:
    from engage.chaos.schedule import fault_schedule

    workers, sinks = ["worker-1", "worker-2"], ["sink-1", "sink-2"]
    for seed in range(20):
        plan = fault_schedule(seed, 60.0, workers, sinks, kills=4)
        assert plan == fault_schedule(seed, 60.0, workers, sinks, kills=4)
        assert [f.at for f in plan] == sorted(f.at for f in plan)
        kinds = {(f.action, f.target.split("-")[0]) for f in plan}
        assert {("SIGKILL", "worker"), ("SIGTERM", "worker"), ("SIGKILL", "sink"), ("SIGTERM", "sink")} <= kinds
        assert [f.action for f in plan].count("restart-kafka") == 1
        assert [f.action for f in plan].count("restart-clickhouse") == 1


def test_each_notification_process_is_killed_once_mid_stream_and_the_rest_of_the_plan_stays() -> None:
    from engage.chaos.schedule import fault_schedule

    workers, sinks, notifiers = ["worker-1", "worker-2"], ["sink-1", "sink-2"], ["notify-1", "notify-2"]
    for seed in range(20):
        without = fault_schedule(seed, 60.0, workers, sinks, kills=4)
        plan = fault_schedule(seed, 60.0, workers, sinks, kills=4, notifiers=notifiers)
        kills = [f for f in plan if f.target.startswith("notify-")]
        assert sorted(f.target for f in kills) == notifiers
        assert all(f.action == "SIGKILL" and 18.0 <= f.at <= 54.0 for f in kills)
        assert [f for f in plan if not f.target.startswith("notify-")] == without
