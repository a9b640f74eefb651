"""What `engage db copy` moves (sinks.clickhouse.copy): what the sinks store and what no copied table refills."""

from __future__ import annotations

from sinks.clickhouse.copy import copied_tables


def test_stored_tables_are_copied_and_those_views_fill_again_from_copied_rows_are_not() -> None:
    names = {t.name for t in copied_tables()}
    assert {"behavior_events", "risk_updates", "xp_awards", "bandit_outcomes"} <= names
    assert "behavior_events_landing" not in names  # engine Null: nothing stored
    assert "user_daily_signals" not in names  # its view refills it from the copied risk updates
    assert "user_daily_activity" in names  # its view reads the landing table, which a copy never writes
