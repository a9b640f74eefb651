"""The named queries the admin dashboard reads (live numbers, tiers over time, the at-risk page and count, one
student's history and interventions, the delivery funnel), on data whose answer is worked out by hand.

Each test runs twice: on the local ClickHouse 18.16 server and on a current ClickHouse (chdb).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.events import Channel
from schemas.interventions import InterventionOutcome, InterventionType, OutcomeKind
from sinks.clickhouse.tables import INTERVENTION_OUTCOMES as OUTCOMES
from tests.analytics.conftest import REQUESTS, RISK, Warehouse, at, event, request, risk


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in result.records()]


def test_live_activity_counts_now_today_week_and_the_last_minute(warehouse: Warehouse) -> None:
    now = "2026-11-12T10:00:00+00:00"
    warehouse.events(
        event("l1", "2026-11-12", hour=9) | {"event_time": "2026-11-12T09:59:30+00:00"},  # last minute, now
        event("l1", "2026-11-12", hour=9) | {"event_time": "2026-11-12T09:58:00+00:00"},  # now, not last minute
        event("l2", "2026-11-12", hour=9) | {"event_time": "2026-11-12T09:59:59+00:00"},  # last minute, now
        event("l3", "2026-11-12", hour=8),  # today, not now
        event("l4", "2026-11-07"),  # this week (7 days up to today)
        event("l5", "2026-11-05"),  # 7 days before: not this week
        event("l6", "2026-11-12", "notification_delivered", hour=9) | {"event_time": "2026-11-12T09:59:10+00:00"},
        event("l7", "2026-11-12", hour=10) | {"event_time": "2026-11-12T10:00:30+00:00"},  # after now
    )
    result = warehouse.query("live_activity", now=now)
    assert result.columns == ["active_now", "active_today", "active_week", "events_per_minute"]
    # now: l1, l2, l6 (any event); today active: l1, l2, l3, l7 (a later event the same day counts for the day);
    # week: those and l4; last minute: l1's, l2's and l6's events.
    assert rows(result) == [(3, 4, 5, 3)]


def test_tiers_over_time_counts_each_students_last_tier_of_the_day(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("t1", "2026-11-10", 85.0, hour=8),
        risk("t1", "2026-11-10", 65.0, hour=20),  # the day's last: high
        risk("t2", "2026-11-10", 10.0),
        risk("t1", "2026-11-11", 90.0),
        risk("t2", "2026-11-11", 95.0),
        risk("t3", "2026-11-13", 50.0),  # after to
    )
    result = warehouse.query("tiers_over_time", **{"from": "2026-11-10", "to": "2026-11-12"})
    assert rows(result) == [("2026-11-10", "high", 1), ("2026-11-10", "minimal", 1), ("2026-11-11", "critical", 2)]


def _risk_population(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("p1", "2026-11-01", 40.0),
        risk("p1", "2026-11-11", 90.0, factors=("No login for 9 days", "Streak lost", "Lessons down", "Extra")),
        risk("p2", "2026-11-11", 70.0, timezone="Europe/Berlin"),
        risk("p3", "2026-11-09", 75.0),
        risk("p3", "2026-11-11", 65.0),  # trend against the first score (no score 7+ days before now): -10
        risk("p4", "2026-11-11", 30.0, timezone="Europe/Berlin"),
        risk("p5", "2026-11-11", 90.0),  # ties p1 on risk: user id breaks it
    )
    warehouse.events(event("p2", "2026-11-10", "lesson_completed") | {"course_id": "c-1"})


def test_at_risk_page_sorts_filters_and_pages(warehouse: Warehouse) -> None:
    _risk_population(warehouse)
    now = "2026-11-12T00:00:00+00:00"
    page = warehouse.query("at_risk_page", now=now)
    assert [r["user_id"] for r in page.records()] == ["p1", "p5", "p2", "p3", "p4"]
    first = page.records()[0]
    assert (first["tier"], first["risk_7d"], first["trend_7d"], first["trigger"]) == ("critical", 90.0, 50.0, "events")
    assert first["top_factors"] == "No login for 9 days; Streak lost; Lessons down"
    assert page.records()[3]["trend_7d"] == -10.0
    ascending = warehouse.query("at_risk_page", now=now, dir="asc", offset=1, limit=2)
    assert [r["user_id"] for r in ascending.records()] == ["p3", "p2"]
    by_user = warehouse.query("at_risk_page", now=now, sort="user", dir="desc", limit=2)
    assert [r["user_id"] for r in by_user.records()] == ["p5", "p4"]
    berlin = warehouse.query("at_risk_page", now=now, tz="Europe/Berlin")
    assert [(r["user_id"], r["timezone"]) for r in berlin.records()] == [
        ("p2", "Europe/Berlin"),
        ("p4", "Europe/Berlin"),
    ]
    assert [r["user_id"] for r in warehouse.query("at_risk_page", now=now, tier="critical").records()] == ["p1", "p5"]
    assert [r["user_id"] for r in warehouse.query("at_risk_page", now=now, course="c-1").records()] == ["p2"]
    assert rows(warehouse.query("at_risk_count")) == [(5, 2, 2, 0, 1, 0)]
    assert rows(warehouse.query("at_risk_count", tz="Europe/Berlin", min_risk=50)) == [(1, 0, 1, 0, 0, 0)]


def test_student_history_and_interventions(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("h1", "2026-11-10", 50.0, current_streak_days=3, factors=("Fewer lessons",)),
        risk("h1", "2026-11-11", 70.0, current_streak_days=0, longest_streak_days=3),
        risk("h2", "2026-11-11", 10.0),
    )
    history = warehouse.query("student_history", user="h1", **{"from": "2026-11-01"})
    assert [(r["day"], r["risk_7d"], r["tier"], r["current_streak"], r["top_factor"]) for r in history.records()] == [
        ("2026-11-10", 50.0, "medium", 3, "Fewer lessons"),
        ("2026-11-11", 70.0, "high", 0, "No login for a while"),
    ]
    remind = InterventionType.gentle_reminder
    sent, held = (
        request("h1", "2026-11-10", "send", remind, "medium"),
        request("h1", "2026-11-11", "held_out", remind, "high"),
    )
    warehouse.contract(REQUESTS, sent, held, request("h2", "2026-11-11", "send", remind, "low"))

    def outcome(kind: OutcomeKind, channel: Channel | None = None) -> InterventionOutcome:
        return InterventionOutcome(intervention_id=sent.intervention_id, user_id="h1", outcome=kind,
                                   at=at("2026-11-10", 12), channel=channel)  # fmt: skip

    warehouse.contract(
        OUTCOMES,
        outcome(OutcomeKind.sent, Channel.email),
        outcome(OutcomeKind.delivered, Channel.email),
        outcome(OutcomeKind.clicked, Channel.email),
        outcome(OutcomeKind.returned_within_7d),
    )
    got = warehouse.query("student_interventions", user="h1")
    assert [
        (
            r["intervention_id"],
            r["status"],
            r["sent"],
            r["delivered"],
            r["opened"],
            r["clicked"],
            r["returned"],
            r["channel"],
        )
        for r in got.records()
    ] == [
        (held.intervention_id, "held_out", 0, 0, 0, 0, "", ""),
        (sent.intervention_id, "send", 1, 1, 1, 1, "yes", "email"),
    ]
    funnel = warehouse.query("delivery_funnel", **{"from": "2026-11-01"})
    assert rows(funnel) == [("email", 1, 1, 1, 1, 1)]
    assert datetime.fromisoformat(got.records()[1]["created_at"]).astimezone(UTC) == at("2026-11-10", 11)
