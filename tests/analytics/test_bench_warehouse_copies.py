"""The queries bench copies simulated students server-side; the copies must look like students of their own."""

from __future__ import annotations

from engage.bench.queries import copy_students
from schemas.interventions import InterventionType
from tests.analytics.conftest import REQUESTS, RISK, Warehouse, event, request, risk


def _ids(warehouse: Warehouse, sql: str) -> list[tuple[str, ...]]:
    return sorted(warehouse.client.execute(sql.format(db=warehouse.database)))


def test_each_copy_renames_every_id_and_fills_the_daily_views(warehouse: Warehouse) -> None:
    warehouse.events(
        event("p0-a", "2026-11-02", "lesson_completed", event_id="p0-e1"),
        event("p0-a", "2026-11-03", "login", event_id="p0-e2"),
    )
    warehouse.contract(RISK, risk("p0-a", "2026-11-03", 70.0))
    warehouse.contract(REQUESTS, request("p0-a", "2026-11-03", "send", InterventionType.gentle_reminder, "high"))

    added = copy_students(warehouse.client, warehouse.database, copies=3)

    # 2 events, 2 activity days, 1 update, 1 request: twice over
    assert added == 2 * (2 + 2 + 1 + 1)
    assert _ids(warehouse, "SELECT user_id, event_id FROM {db}.behavior_events") == [
        ("c1-p0-a", "c1-p0-e1"),
        ("c1-p0-a", "c1-p0-e2"),
        ("c2-p0-a", "c2-p0-e1"),
        ("c2-p0-a", "c2-p0-e2"),
        ("p0-a", "p0-e1"),
        ("p0-a", "p0-e2"),
    ]
    # an event that answers no intervention keeps an empty intervention id
    assert _ids(warehouse, "SELECT DISTINCT intervention_id FROM {db}.behavior_events") == [("",)]
    assert _ids(warehouse, "SELECT user_id, signals_user_id FROM {db}.user_daily_signals") == [
        ("c1-p0-a", "c1-p0-a"),
        ("c2-p0-a", "c2-p0-a"),
        ("p0-a", "p0-a"),
    ]
    assert _ids(warehouse, "SELECT user_id, intervention_id FROM {db}.intervention_requests") == [
        ("c1-p0-a", "c1-p0-a:2026-11-03:gentle_reminder:0"),
        ("c2-p0-a", "c2-p0-a:2026-11-03:gentle_reminder:0"),
        ("p0-a", "p0-a:2026-11-03:gentle_reminder:0"),
    ]
    active_days = "SELECT user_id, day FROM {db}.user_daily_activity GROUP BY user_id, day HAVING maxMerge(active) = 1"
    days = ["2026-11-02", "2026-11-03"]
    assert [(u, str(d)) for u, d in _ids(warehouse, active_days)] == [
        (u, d) for u in ("c1-p0-a", "c2-p0-a", "p0-a") for d in days
    ]
    at_risk = warehouse.query("at_risk_now")
    assert sorted(row[0] for row in at_risk.rows) == ["c1-p0-a", "c2-p0-a", "p0-a"]
