"""The same DDL the local 18.16 server runs also runs on a current ClickHouse (chdb), with the same result."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from sinks.behavior_events import landing_rows
from sinks.clickhouse.migrations import create_all
from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING
from tests.chdb_support import ChdbClient


@pytest.fixture(scope="module")
def chdb() -> Iterator[ChdbClient]:
    client = ChdbClient()
    create_all(client, "compat")
    create_all(client, "compat")  # idempotent
    yield client
    client.close()


def _insert(client: ChdbClient, rows: list[tuple[object, ...]]) -> None:
    # chdb is in-process, so literals are fine here (never through clickhouse-driver to the 18.16 server).
    values = ", ".join(
        f"({t}, {o}, {p}, {off}, '{js.replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}')"
        for t, o, p, off, js in rows
    )
    names = ", ".join(BEHAVIOR_EVENTS_LANDING.column_names)
    client.execute(f"INSERT INTO compat.behavior_events_landing ({names}) VALUES {values}")


def test_landing_rows_are_extracted_into_behavior_events(chdb: ChdbClient, make_event) -> None:
    quiz = make_event(
        "quiz_submitted",
        event_id="q-1",
        event_time="2026-03-01T09:30:00+05:45",
        payload={"quiz_id": "q9", "score": 7.5, "max_score": 10.0, "passed": True},
    )
    quiz["received_at"] = "2026-03-01T04:00:01+00:00"
    view = make_event("content_viewed", event_id="v-1", payload={"content_id": "it's", "content_format": "video"})
    message = orjson.dumps({"schema_version": 1, "user_id": quiz["user_id"], "events": [quiz, view]})
    _insert(chdb, landing_rows(message, partition=3, offset=42))
    rows = chdb.execute(
        "SELECT event_id, event_type, toString(event_time), tz_offset_minutes, toString(received_at), score, "
        "max_score, passed, quiz_id, content_id, content_format, kafka_partition, kafka_offset "
        "FROM compat.behavior_events FINAL ORDER BY event_id"
    )
    assert rows == [
        ("q-1", "quiz_submitted", "2026-03-01 03:45:00", 345, "2026-03-01 04:00:01", 7.5, 10, 1, "q9", "", "", 3, 42),
        ("v-1", "content_viewed", rows[1][2], rows[1][3], rows[1][4], 0, 0, 0, "", "it's", "video", 3, 42),
    ]


def test_migrations_are_recorded_once_and_every_table_exists(chdb: ChdbClient) -> None:
    from sinks.clickhouse.migrations import MIGRATIONS, migrate, status
    from sinks.clickhouse.tables import TABLES

    assert migrate(chdb, "compat") == []  # the fixture already migrated (twice)
    assert [(v, at is not None) for v, _, at in status(chdb, "compat")] == [(m.version, True) for m in MIGRATIONS]
    assert chdb.execute("SELECT count() FROM compat.schema_migrations FINAL") == [(len(MIGRATIONS),)]
    names = {row[0] for row in chdb.execute("SELECT name FROM system.tables WHERE database = 'compat'")}
    assert {t.name for t in TABLES} <= names


def test_cluster_variant_parses_on_current_clickhouse(chdb: ChdbClient) -> None:
    """18.16 cannot parse without executing, and ON CLUSTER needs ZooKeeper there; a current engine can."""
    from sinks.clickhouse.tables import OBJECTS, Cluster

    for obj in OBJECTS:
        for statement in obj.ddl("engage", Cluster("analytics")).split(";\n"):
            assert chdb.execute("EXPLAIN AST " + statement), statement
