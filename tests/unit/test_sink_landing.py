"""The behavior_events sink's rows, sink batches, and the ClickHouse DDL they land in (no server needed)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.columns import Column
from sinks.base import SinkBatch
from sinks.behavior_events import landing_rows
from sinks.clickhouse.tables import (
    BEHAVIOR_EVENTS,
    BEHAVIOR_EVENTS_LANDING,
    BEHAVIOR_EVENTS_VIEW,
    OBJECTS,
    TABLES,
    AggregateView,
    Cluster,
    LandingView,
    QueryView,
    Table,
)

DB = "unit_db"
LANDING_COLUMNS = ["event_time", "tz_offset_minutes", "kafka_partition", "kafka_offset", "event_json"]


def message(events: list[dict[str, Any]], user_id: str = "student-42") -> bytes:
    return orjson.dumps({"schema_version": 1, "user_id": user_id, "source": "test", "events": events})


def unix(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


# ------------------------------------------------------------------------------------------------------
# landing_rows
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_time", "seconds", "offset_minutes"),
    [
        ("2024-05-01T10:00:00+02:00", unix(2024, 5, 1, 8, 0), 120),
        ("2024-05-01T08:00:00+00:00", unix(2024, 5, 1, 8, 0), 0),
        ("2024-05-01T08:00:00Z", unix(2024, 5, 1, 8, 0), 0),
        ("2024-05-01T03:00:00-05:00", unix(2024, 5, 1, 8, 0), -300),
        ("2024-05-01T04:30:00-03:30", unix(2024, 5, 1, 8, 0), -210),
        ("2024-05-01T13:45:00+05:45", unix(2024, 5, 1, 8, 0), 345),
        ("2024-01-01T00:30:00+14:00", unix(2023, 12, 31, 10, 30), 840),
        ("2023-12-31T13:00:00-11:00", unix(2024, 1, 1, 0, 0), -660),
        ("2024-05-01T08:00:00.999+00:00", unix(2024, 5, 1, 8, 0), 0),
    ],
)
def test_event_time_becomes_unix_seconds_and_offset_minutes(make_event, event_time, seconds, offset_minutes):
    [row] = landing_rows(message([make_event("login", event_time=event_time)]), 3, 1234)
    assert row[:4] == (seconds, offset_minutes, 3, 1234)


def test_one_row_per_event_in_order_with_lineage_and_json(make_event):
    events = [
        make_event("login", event_id="e1"),
        make_event("quiz_submitted", event_id="e2", event_time="2024-05-01T03:00:00-05:00"),
        make_event("content_viewed", event_id="e3", event_time="2024-05-01T13:45:00+05:45"),
    ]
    rows = landing_rows(message(events), 2, 77)
    assert len(rows) == 3
    assert [r[1] for r in rows] == [120, -300, 345]
    assert all(r[2:4] == (2, 77) for r in rows)
    assert [orjson.loads(r[4]) for r in rows] == events
    assert all(isinstance(r[4], str) for r in rows)


def test_a_partition_batch_gives_a_row_per_event_of_every_student_in_it(make_event):
    a = [make_event("login", event_id="a1", user_id="a"), make_event("login", event_id="a2", user_id="a")]
    b = [make_event("quiz_submitted", event_id="b1", user_id="b")]
    packed = orjson.dumps(
        {"schema_version": 1, "source": "t", "partition": 2, "batches": [{"user_id": "a", "events": a},
                                                                          {"user_id": "b", "events": b}]}
    )  # fmt: skip
    rows = landing_rows(packed, 2, 9)
    assert [orjson.loads(r[4]) for r in rows] == [*a, *b]
    assert all(r[2:4] == (2, 9) for r in rows)  # one message: the same lineage for all its students


def test_row_shape_matches_the_landing_table(make_event):
    [row] = landing_rows(message([make_event("login")]), 0, 0)
    assert len(row) == len(BEHAVIOR_EVENTS_LANDING.columns)
    assert [type(v) for v in row] == [int, int, int, int, str]


def test_non_ascii_text_round_trips(make_event):
    event = make_event("login", user_id="élève-7", app_version="ü-1")
    [row] = landing_rows(message([event], user_id="élève-7"), 0, 5)
    assert orjson.loads(row[4]) == event


def test_a_naive_event_time_is_refused(make_event):
    value = message([make_event("login"), make_event("login", event_time="2024-05-01T10:00:00")])
    with pytest.raises(ValueError, match="no UTC offset"):
        landing_rows(value, 0, 0)


def test_garbage_event_time_is_a_value_error(make_event):
    with pytest.raises(ValueError):
        landing_rows(message([make_event("login", event_time="yesterday")]), 0, 0)


# ------------------------------------------------------------------------------------------------------
# SinkBatch
# ------------------------------------------------------------------------------------------------------


def test_a_new_batch_is_empty():
    batch = SinkBatch("engage.events.v1")
    assert batch.empty
    assert len(batch) == 0
    assert batch.range_label() == "engage.events.v1[]"


def test_add_tracks_first_and_last_offsets_per_partition():
    batch = SinkBatch("engage.events.v1")
    batch.add(1, 7, ["a"])
    batch.add(0, 10, ["b", "c"])
    batch.add(0, 11, [])
    batch.add(1, 9, ["d"])
    batch.add(0, 42, ["e"])
    assert batch.rows == ["a", "b", "c", "d", "e"]
    assert len(batch) == 5
    assert not batch.empty
    assert batch.first_offsets == {1: 7, 0: 10}
    assert batch.last_offsets == {1: 9, 0: 42}
    assert batch.range_label() == "engage.events.v1[0:10-42,1:7-9]"


def test_a_message_without_rows_still_needs_committing():
    batch = SinkBatch("t")
    batch.add(4, 100, [])
    assert len(batch) == 0
    assert not batch.empty
    assert batch.range_label() == "t[4:100-100]"


def test_batches_do_not_share_state():
    one, two = SinkBatch("t"), SinkBatch("t")
    one.add(0, 1, ["x"])
    assert two.empty
    assert two.rows == []


# ------------------------------------------------------------------------------------------------------
# DDL
# ------------------------------------------------------------------------------------------------------


def select_list(view_sql: str) -> list[str]:
    body = view_sql.split("AS SELECT\n  ", 1)[1].split("\nFROM ", 1)[0]
    return body.split(",\n  ")


def test_landing_table_columns_are_exactly_what_the_sink_sends():
    assert BEHAVIOR_EVENTS_LANDING.column_names == LANDING_COLUMNS


def test_every_target_column_comes_from_the_landing_table_or_an_expression():
    landing = set(BEHAVIOR_EVENTS_LANDING.column_names)
    for col in BEHAVIOR_EVENTS.columns:
        assert col.name in landing or col.expr is not None, col.name
    assert "event_json" not in BEHAVIOR_EVENTS.column_names  # the raw JSON is not stored twice


def test_target_ddl():
    sql = BEHAVIOR_EVENTS.ddl(DB)
    assert sql.startswith(f"CREATE TABLE IF NOT EXISTS {DB}.behavior_events (")
    assert "ENGINE = ReplacingMergeTree()" in sql
    assert "PARTITION BY toYYYYMM(event_time)" in sql
    assert "ORDER BY (user_id, event_time, event_id)" in sql
    for col in BEHAVIOR_EVENTS.columns:
        assert re.search(rf"^  {re.escape(col.ddl())},?$", sql, re.MULTILINE), col.name


def test_landing_ddl_uses_the_null_engine():
    sql = BEHAVIOR_EVENTS_LANDING.ddl(DB)
    assert sql.startswith(f"CREATE TABLE IF NOT EXISTS {DB}.behavior_events_landing (")
    assert sql.endswith("ENGINE = Null")
    assert "ORDER BY" not in sql
    assert "PARTITION BY" not in sql
    for name in LANDING_COLUMNS:
        assert re.search(rf"^  {name} \S", sql, re.MULTILINE), name


def test_view_ddl_reads_landing_into_target():
    sql = BEHAVIOR_EVENTS_VIEW.ddl(DB)
    assert sql.startswith(f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DB}.behavior_events_mv TO {DB}.behavior_events\n")
    assert sql.endswith(f"FROM {DB}.behavior_events_landing")


def test_view_selects_every_target_column_in_order():
    landing = set(BEHAVIOR_EVENTS_LANDING.column_names)
    items = select_list(BEHAVIOR_EVENTS_VIEW.ddl(DB))
    assert len(items) == len(BEHAVIOR_EVENTS.columns)
    computed = 0
    for item, col in zip(items, BEHAVIOR_EVENTS.columns, strict=True):
        if col.name in landing and col.expr is None:
            assert item == col.name
        else:
            assert item == f"{col.expr} AS {col.name}"
            assert "event_json" in col.expr
            computed += 1
    assert computed == len(BEHAVIOR_EVENTS.columns) - 4  # all but event_time, tz offset and the lineage pair
    assert "None" not in " ".join(items)


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda o: o.name)
def test_ddl_uses_the_given_database_only(obj):
    sql = obj.ddl("other_db")
    assert "IF NOT EXISTS other_db." in sql
    assert DB not in sql
    assert "engage." not in sql


def test_targets_are_created_before_the_view():
    view_at = OBJECTS.index(BEHAVIOR_EVENTS_VIEW)
    assert OBJECTS.index(BEHAVIOR_EVENTS) < view_at
    assert OBJECTS.index(BEHAVIOR_EVENTS_LANDING) < view_at
    assert TABLES[:2] == [BEHAVIOR_EVENTS, BEHAVIOR_EVENTS_LANDING]


def test_every_object_is_created_by_exactly_one_migration_in_order():
    from sinks.clickhouse.migrations import MIGRATIONS, AddColumns, RecreateView

    created = [step for m in MIGRATIONS for step in m.steps if not isinstance(step, AddColumns | RecreateView)]
    assert sorted(o.name for o in created) == sorted(o.name for o in OBJECTS)
    versions = [m.version for m in MIGRATIONS]  # applied in this order: 1, 2, ... with no gap
    assert versions == list(range(1, len(versions) + 1))
    for view in (o for o in created if isinstance(o, LandingView | AggregateView)):
        source = view.landing if isinstance(view, LandingView) else view.source
        assert created.index(source) < created.index(view) and created.index(view.target) < created.index(view)
    for query_view in (o for o in created if isinstance(o, QueryView)):
        assert all(created.index(t) < created.index(query_view) for t in query_view.sources)


def test_added_columns_exist_in_their_table_definition():
    from sinks.clickhouse.migrations import MIGRATIONS, AddColumns

    for step in (s for m in MIGRATIONS for s in m.steps if isinstance(s, AddColumns)):
        table = next(t for t in TABLES if t.name == step.table)
        assert set(step.columns) <= set(table.column_names)


def test_cluster_variant_replicates_every_merge_tree_and_shards_by_user():
    cluster = Cluster("analytics")
    for table in TABLES:
        create_local, create_distributed = table.ddl("db", cluster).split(";\n")
        assert create_local.startswith(f"CREATE TABLE IF NOT EXISTS db.{table.name}_local ON CLUSTER analytics (")
        if "MergeTree" in table.engine:
            family, _, args = table.engine.partition("(")
            zk = f"'/clickhouse/tables/{{shard}}/db/{table.name}_local', '{{replica}}'"
            extra = args.rstrip(")")
            assert f"ENGINE = Replicated{family}({zk}{', ' + extra if extra else ''})" in create_local
        else:
            assert "ENGINE = Null" in create_local
        assert create_distributed == (
            f"CREATE TABLE IF NOT EXISTS db.{table.name} ON CLUSTER analytics AS db.{table.name}_local\n"
            f"ENGINE = Distributed(analytics, db, {table.name}_local, {table.shard_key})"
        )
    for view in (o for o in OBJECTS if isinstance(o, LandingView | AggregateView)):
        sql = view.ddl("db", cluster)
        assert f"db.{view.name} ON CLUSTER analytics TO db.{view.target.name}_local" in sql
        assert "FROM db." in sql and sql.split("FROM db.")[1].split()[0].endswith("_local")
    for query_view in (o for o in OBJECTS if isinstance(o, QueryView)):  # reads every shard: the Distributed tables
        sql = query_view.ddl("db", cluster)
        assert sql.startswith(f"CREATE VIEW IF NOT EXISTS db.{query_view.name} ON CLUSTER analytics AS\n")
        assert {name.split()[0] for name in sql.split("FROM db.")[1:]} == {t.name for t in query_view.sources}


def test_optional_clauses_are_left_out():
    sql = Table("t", [Column("a", "UInt8", ("a",), "int")], "Memory").ddl("d")
    assert sql == "CREATE TABLE IF NOT EXISTS d.t (\n  a UInt8\n)\nENGINE = Memory"


def test_a_view_refuses_a_column_it_cannot_fill():
    landing = Table("l", [Column("a", "UInt8", ("a",), "int")], "Null")
    target = Table("t", [Column("a", "UInt8", ("a",), "int"), Column("b", "UInt8", ("b",), "int")], "Memory")
    with pytest.raises((TypeError, ValueError)):
        LandingView("v", landing, target).ddl("d")


def test_an_erasure_request_on_the_events_topic_stores_nothing_and_is_no_dead_letter() -> None:
    from sinks.behavior_events import landing_rows

    erase = {"schema_version": 1, "user_id": "u1", "erase": {"erasure_id": "e1", "user_id": "u1",
             "requested_at": "2026-11-25T10:00:00+00:00", "requested_by": "cli"}}  # fmt: skip
    assert landing_rows(orjson.dumps(erase), 0, 7) == []
