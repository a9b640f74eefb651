"""Raw behaviour events (the events topic) into ``behavior_events``, one row per event.

The sink sends ClickHouse each event's JSON text plus the exact sort key (event time and its UTC offset)
and the Kafka lineage; ClickHouse extracts all other columns (see ``sinks.clickhouse.tables``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from config.settings import Settings
from sinks.base import BatchingSink, SinkBatch, UndecodableMessage
from sinks.clickhouse.client import connect, insert_columns
from sinks.clickhouse.migrations import create_all
from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING, cluster_for

LandingRow = tuple[int, int, int, int, str]  # event_time, tz_offset_minutes, partition, offset, event_json


def landing_rows(value: bytes, partition: int, offset: int) -> list[LandingRow]:
    """Rows for the landing table from one ``EventBatch`` or ``PartitionBatch`` message (the sink's hot loop:
    locals bound)."""
    rows: list[LandingRow] = []
    append, parse, dumps = rows.append, datetime.fromisoformat, orjson.dumps
    message = orjson.loads(value)
    if "erase" in message:
        return rows  # an erasure request (schemas.privacy), not events: nothing to store
    batches = message.get("batches", (message,))
    for event in (e for batch in batches for e in batch["events"]):
        when = parse(event["event_time"])
        utc_offset = when.utcoffset()
        if utc_offset is None:
            raise ValueError(f"event_time {event['event_time']!r} has no UTC offset")
        append(
            (
                int(when.timestamp()),
                utc_offset.seconds // 60 + utc_offset.days * 1440,
                partition,
                offset,
                dumps(event).decode(),
            )
        )
    return rows


class BehaviorEventsSink(BatchingSink):
    name = "behavior_events"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = f"{settings.clickhouse_database}.{BEHAVIOR_EVENTS_LANDING.name}"
        self._client = connect(settings)

    def setup(self) -> None:
        create_all(self._client, self.settings.clickhouse_database, cluster_for(self.settings.clickhouse_cluster))

    def decode(self, value: bytes, partition: int, offset: int) -> Sequence[LandingRow]:
        try:
            return landing_rows(value, partition, offset)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UndecodableMessage(
                f"not an EventBatch or PartitionBatch the behavior_events sink can store: {exc!r}"
            ) from exc

    def write(self, batch: SinkBatch) -> None:
        columns = [list(c) for c in zip(*batch.rows, strict=True)]
        insert_columns(self._client, self.table, BEHAVIOR_EVENTS_LANDING.column_names, columns)
