"""``load_warehouse`` on both engines: snapshots read month by month, filtered by students and days;
outcomes always whole (labels look after a row's day)."""

from __future__ import annotations

from datetime import date

from models.training_data import day_number, load_warehouse
from tests.analytics.conftest import RISK, Warehouse, event, risk


def test_rows_of_several_months_filtered_by_prefixes_and_days(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("a-1", "2026-10-30", 10.0),
        risk("a-1", "2026-11-02", 20.0, hour=8),
        risk("a-1", "2026-11-02", 30.0, hour=20),  # the day's last snapshot is its row
        risk("b-1", "2026-11-02", 40.0),
        risk("c-1", "2026-11-02", 50.0),  # neither prefix
        risk("a-1", "2026-11-05", 60.0),  # not one of the days asked for
    )
    warehouse.events(
        event("a-1", "2026-11-03"),
        event("a-1", "2026-11-20"),
        event("b-1", "2026-11-04", "unenrolled"),
    )
    everything = load_warehouse(warehouse.client)
    assert sorted((r["user_id"], r["day"], r["risk_7d"]) for r in everything.rows) == [
        ("a-1", date(2026, 10, 30), 10.0),
        ("a-1", date(2026, 11, 2), 30.0),
        ("a-1", date(2026, 11, 5), 60.0),
        ("b-1", date(2026, 11, 2), 40.0),
        ("c-1", date(2026, 11, 2), 50.0),
    ]
    some = load_warehouse(warehouse.client, user_prefix=("a-", "b-"), days=[date(2026, 10, 30), date(2026, 11, 2)])
    assert sorted((r["user_id"], r["day"], r["risk_7d"]) for r in some.rows) == [
        ("a-1", date(2026, 10, 30), 10.0),
        ("a-1", date(2026, 11, 2), 30.0),
        ("b-1", date(2026, 11, 2), 40.0),
    ]
    # outcomes are not cut to the days asked for: a label needs everything after its row
    assert some.outcomes["a-1"].active_days == [day_number(date(2026, 11, 3)), day_number(date(2026, 11, 20))]
    assert some.outcomes["b-1"].unenrol_days == [day_number(date(2026, 11, 4))]
    assert "c-1" not in some.outcomes
    assert some.data_end == day_number(date(2026, 11, 20))
    assert load_warehouse(warehouse.client, days=[]).rows == []
