"""Raw behaviour events (the events topic) into ``behavior_events``, one row per event."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from engage.settings import Settings
from schemas.columns import Column
from schemas.events import utc_naive
from sinks.base import BatchingSink, Row, SinkBatch, UndecodableMessage
from sinks.clickhouse.client import connect, insert_columns
from sinks.clickhouse.tables import BEHAVIOR_EVENTS, create_all

Extractor = Callable[[dict[str, Any]], Any]


def _timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _extractor(col: Column) -> Extractor:
    """A small function reading one column's value from an event's JSON object."""
    path = col.path
    if col.kind == "datetime":
        key = path[0]
        return lambda e: utc_naive(_timestamp(e[key])) if e.get(key) else datetime(1970, 1, 1)
    if col.kind == "date":
        key = path[0]
        return lambda e: utc_naive(_timestamp(e[key])).date() if e.get(key) else date(1970, 1, 1)
    if col.kind == "tz_offset":
        key = path[0]

        def offset(e: dict[str, Any]) -> int:
            delta = _timestamp(e[key]).utcoffset()
            return int(delta.total_seconds() // 60) if delta is not None else 0

        return offset
    if col.kind == "json":
        return lambda e: orjson.dumps(e.get("payload") or {}).decode()
    nullable = col.ch_type.startswith("Nullable")
    if col.kind == "bool":
        cast: Callable[[Any], Any] = int
    elif col.kind == "str":
        cast = str
    else:
        cast = lambda v: v  # noqa: E731
    empty: Any = None if nullable else ("" if col.kind == "str" else 0)
    if len(path) == 1:
        key = path[0]
        return lambda e: cast(v) if (v := e.get(key)) is not None else empty
    outer, inner = path

    def nested(e: dict[str, Any]) -> Any:
        v = (e.get(outer) or {}).get(inner)
        return cast(v) if v is not None else empty

    return nested


class BehaviorEventsSink(BatchingSink):
    name = "behavior_events"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table = f"{settings.clickhouse_database}.{BEHAVIOR_EVENTS.name}"
        self._event_columns = [c for c in BEHAVIOR_EVENTS.columns if c.kind != "lineage"]
        self._extractors = [_extractor(c) for c in self._event_columns]
        self._client = connect(settings)

    def setup(self) -> None:
        create_all(self._client, self.settings.clickhouse_database)

    def decode(self, value: bytes, partition: int, offset: int) -> Sequence[Row]:
        try:
            batch = orjson.loads(value)
            events = batch["events"]
            extractors = self._extractors
            return [(*(f(e) for f in extractors), partition, offset) for e in events]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UndecodableMessage(f"not an EventBatch the behavior_events sink can store: {exc!r}") from exc

    def write(self, batch: SinkBatch) -> None:
        columns = list(zip(*batch.rows, strict=True)) if batch.rows else []
        insert_columns(self._client, self.table, BEHAVIOR_EVENTS.column_names, columns)
