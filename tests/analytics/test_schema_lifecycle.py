"""Schema as code on both engines: added columns, retention by dropping partitions, the cluster variant."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from schemas.messages import DeadLetter
from sinks.clickhouse.migrations import AddColumns
from sinks.clickhouse.retention import ExpiredPartition, drop_partitions, expired_partitions, oldest_kept_month
from sinks.clickhouse.tables import DEAD_LETTERS, INTERVENTION_OUTCOMES
from tests.analytics.conftest import RISK, Warehouse, risk


def _columns(warehouse: Warehouse, table: str) -> list[str]:
    return [
        r[0]
        for r in warehouse.client.execute(
            # in table order (18.16's system.columns has no position column to sort by)
            f"SELECT name FROM system.columns WHERE database = '{warehouse.database}' AND table = '{table}'"
        )
    ]


def test_a_column_a_contract_gained_is_added_in_place_once(warehouse: Warehouse) -> None:
    table = f"{warehouse.database}.intervention_outcomes"
    warehouse.client.execute(f"ALTER TABLE {table} DROP COLUMN detail")  # as if created before the field existed
    step = AddColumns("intervention_outcomes", ("detail",))
    statements = step.statements(warehouse.client, warehouse.database, None)
    assert statements == [f"ALTER TABLE {table} ADD COLUMN detail String AFTER channel"]
    for sql in statements:
        warehouse.client.execute(sql)
    assert _columns(warehouse, "intervention_outcomes") == INTERVENTION_OUTCOMES.column_names
    assert step.statements(warehouse.client, warehouse.database, None) == []  # nothing left to add


def test_retention_drops_only_partitions_older_than_each_table_keeps(warehouse: Warehouse) -> None:
    warehouse.contract(RISK, risk("old", "2024-01-15", 50.0), risk("new", "2026-11-20", 50.0))
    letters = [
        DeadLetter(dead_letter_id=f"d{i}", received_at=when, source="collector", reason="bad", raw="{}")
        for i, when in enumerate([datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)])
    ]
    warehouse.contract(DEAD_LETTERS, *letters)
    expired = expired_partitions(warehouse.client, warehouse.database, date(2026, 11, 25))
    # risk updates keep 13 months (from 2025-11), dead letters 3 (from 2026-09), daily signals 37 (from 2023-11)
    assert expired == [ExpiredPartition("dead_letters", 202607, 1), ExpiredPartition("risk_updates", 202401, 1)]
    drop_partitions(warehouse.client, warehouse.database, expired)
    db = warehouse.database
    assert warehouse.client.execute(f"SELECT user_id FROM {db}.risk_updates") == [("new",)]
    assert warehouse.client.execute(f"SELECT dead_letter_id FROM {db}.dead_letters") == [("d1",)]
    assert len(warehouse.client.execute(f"SELECT user_id FROM {db}.user_daily_signals")) == 2
    shorter = expired_partitions(warehouse.client, db, date(2026, 11, 25), {"user_daily_signals": 24})
    assert shorter == [ExpiredPartition("user_daily_signals", 202401, 1)]


@pytest.mark.parametrize(
    ("today", "keep", "oldest"),
    [(date(2026, 11, 25), 13, 202511), (date(2026, 1, 1), 1, 202601), (date(2026, 1, 31), 2, 202512)],
)
def test_oldest_kept_month_counts_the_current_month(today: date, keep: int, oldest: int) -> None:
    assert oldest_kept_month(today, keep) == oldest


def test_retention_refuses_unknown_tables_and_zero_months() -> None:
    from sinks.clickhouse.retention import retention_policy

    with pytest.raises(ValueError, match="unknown table 'events'"):
        retention_policy({"events": 3})
    with pytest.raises(ValueError, match="at least 1"):
        oldest_kept_month(date(2026, 1, 1), 0)


def test_the_daily_signals_view_recreated_carries_the_new_calendar_columns(warehouse: Warehouse) -> None:
    from sinks.clickhouse.migrations import RecreateView
    from sinks.clickhouse.tables import USER_DAILY_SIGNALS_VIEW

    for sql in RecreateView(USER_DAILY_SIGNALS_VIEW).statements(warehouse.database, None):
        warehouse.client.execute(sql)
    warehouse.contract(RISK, risk("c1", "2026-11-02", 40.0, course_day=12.0, assessments_missed=2))
    got = warehouse.client.execute(
        f"SELECT signals_course_day, signals_assessments_missed FROM {warehouse.database}.user_daily_signals"
    )
    assert got == [(12.0, 2)]


def test_a_float_column_added_later_reads_unknown_for_older_rows(warehouse: Warehouse) -> None:
    """Rows stored before the course-standing columns existed did not know them: NaN, not 0 ("least active")."""
    table = f"{warehouse.database}.user_daily_signals"  # (a view reads risk_updates: its columns stay)
    warehouse.contract(RISK, risk("old", "2026-11-02", 40.0))
    for column in ("signals_course_activity_rank_7d", "signals_course_peers"):
        warehouse.client.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    step = AddColumns("user_daily_signals", ("signals_course_activity_rank_7d", "signals_course_peers"))
    statements = step.statements(warehouse.client, warehouse.database, None)
    assert statements == [
        f"ALTER TABLE {table} ADD COLUMN signals_course_peers Int64 AFTER signals_course_avg_score_pct",
        f"ALTER TABLE {table} ADD COLUMN signals_course_activity_rank_7d Float64 DEFAULT nan"
        " AFTER signals_course_peers",
    ]
    for sql in statements:
        warehouse.client.execute(sql)
    rows = warehouse.client.execute(
        f"SELECT signals_course_peers, isNaN(signals_course_activity_rank_7d) FROM {table} WHERE user_id = 'old'"
    )
    assert rows == [(0, 1)]
