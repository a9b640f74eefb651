"""ClickHouse columns derived from the pydantic contracts, so a field is declared once (in ``schemas``).

Every leaf field of the envelope and of every payload becomes one column (nested models flattened with a
prefix: ``device_os``), plus the payload kept whole as JSON text (lossless). Each column carries the SQL
expression that extracts it from the event's JSON, so the sink only ships the raw JSON of each event and
ClickHouse does the per-field work in C++ (a landing table and a materialized view, see
``sinks.clickhouse.tables``). Only ``event_time`` and its UTC offset are computed in Python: they are the
sort key and must be exact.

No column is ``Nullable`` or ``LowCardinality`` (old-server safety, and no null maps): a payload field an
event does not carry reads as ``''``/``0``; filter payload columns by ``event_type``. The JSON extraction
(``visitParamExtract*``) matches a key anywhere in the event, so leaf names must be unique across envelope,
device and payloads: ``behavior_event_columns`` refuses a contract where they are not.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from schemas.events import PAYLOAD_MODELS, EventEnvelope


@dataclass(frozen=True)
class Column:
    name: str
    ch_type: str
    path: tuple[str, ...]  # where the value sits in the event's JSON object
    kind: str  # str | int | float | bool | datetime | date | json | tz_offset | lineage
    expr: str | None = None  # SQL computing it from the landing row's ``event_json``; None: sent by the sink

    def ddl(self) -> str:
        return f"{self.name} {self.ch_type}"

    @property
    def default(self) -> object:
        return "" if self.kind in ("str", "json") else 0


def _unwrap(annotation: Any) -> Any:
    """The inner type, with Annotated and Optional peeled off."""
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else str
        else:
            return annotation


def _kind_and_type(annotation: Any) -> tuple[str, str]:
    if get_origin(annotation) in (list, dict, tuple):
        return "json", "String"  # lists of objects (factors, channels, errors) are kept as JSON text
    if get_origin(annotation) is Literal:
        if all(isinstance(a, int) for a in get_args(annotation)):
            return "int", "UInt8"
        return "str", "String"
    if annotation is AwareDatetime:
        return "datetime", "DateTime('UTC')"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "str", "String"
        if issubclass(annotation, bool):
            return "bool", "UInt8"
        if issubclass(annotation, int):
            return "int", "Int64"
        if issubclass(annotation, float):
            return "float", "Float64"
        if issubclass(annotation, datetime):
            return "datetime", "DateTime('UTC')"
        if issubclass(annotation, date):
            return "date", "Date"
    return "str", "String"


NOT_WAREHOUSED: dict[str, Any] = {"warehouse": False}


def warehoused(info: FieldInfo) -> bool:
    """False for a field marked ``json_schema_extra=NOT_WAREHOUSED``: it travels on the topic for a consumer that
    needs it, while the warehouse already holds the same facts elsewhere (a contract says why beside the field)."""
    extra = info.json_schema_extra
    return not (isinstance(extra, dict) and extra.get("warehouse") is False)


def _model_columns(model: type[BaseModel], path: tuple[str, ...], prefix: str) -> list[Column]:
    cols: list[Column] = []
    for name, info in model.model_fields.items():
        if not warehoused(info):
            continue
        inner = _unwrap(info.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            cols.extend(_model_columns(inner, (*path, name), f"{prefix}{name}_"))
            continue
        kind, ch_type = _kind_and_type(inner)
        cols.append(Column(f"{prefix}{name}", ch_type, (*path, name), kind))
    return cols


def model_columns(model: type[BaseModel]) -> list[Column]:
    """Columns for any contract: one per leaf field, nested models flattened (``signals_logins_7d``)."""
    return _model_columns(model, (), "")


_ENVELOPE_SKIP = {"event_type", "payload"}


# Simple JSON extraction exists under these names on ClickHouse 18.16 and on current releases.
_EXTRACT = {
    "str": "visitParamExtractString({src}, '{key}')",
    "int": "visitParamExtractInt({src}, '{key}')",
    "float": "visitParamExtractFloat({src}, '{key}')",
    "bool": "visitParamExtractBool({src}, '{key}')",
    "datetime": "parseDateTimeBestEffortOrZero(visitParamExtractString({src}, '{key}'))",
    "date": "toDate(parseDateTimeBestEffortOrZero(visitParamExtractString({src}, '{key}')))",
}
EVENT_JSON = "event_json"


def _extracted(col: Column) -> Column:
    template = _EXTRACT.get(col.kind)
    if template is None:
        raise TypeError(f"field {col.name!r} of kind {col.kind} cannot be extracted from JSON")
    # Nested fields are read from their object's raw JSON (extracted once per row: ClickHouse reuses identical
    # subexpressions), so each lookup scans a short string instead of the whole event.
    src = EVENT_JSON if len(col.path) == 1 else f"visitParamExtractRaw({EVENT_JSON}, '{col.path[0]}')"
    expr = template.format(src=src, key=col.path[-1])
    if col.ch_type == "UInt8" and col.kind == "int":
        expr = f"toUInt8({expr})"
    return Column(col.name, col.ch_type, col.path, col.kind, expr)


def behavior_event_columns() -> list[Column]:
    """Table columns in order: sort-key columns from Python, extracted columns, the payload JSON."""
    envelope = [c for c in _model_columns(EventEnvelope, (), "") if c.name not in _ENVELOPE_SKIP]
    by_name: dict[str, Column] = {}
    for model in PAYLOAD_MODELS.values():
        for col in _model_columns(model, ("payload",), ""):
            seen = by_name.get(col.name)
            if seen is not None and seen.ch_type != col.ch_type:
                raise TypeError(f"payload field {col.name!r} has two types: {seen.ch_type} and {col.ch_type}")
            by_name[col.name] = col
    clash = {c.name for c in envelope} & set(by_name)
    if clash:
        raise TypeError(f"payload fields clash with envelope fields: {sorted(clash)}")
    leaves = [c.path[-1] for c in envelope] + [c.path[-1] for c in by_name.values()]
    repeated = {k for k in leaves if leaves.count(k) > 1}
    if repeated:
        raise TypeError(f"JSON keys must be unique across the event for extraction; repeated: {sorted(repeated)}")
    from_python = [
        Column("event_time", "DateTime('UTC')", ("event_time",), "datetime"),
        Column("tz_offset_minutes", "Int16", ("event_time",), "tz_offset"),
    ]
    extracted = [Column("event_type", "String", ("event_type",), "str")]
    extracted += [c for c in envelope if c.name != "event_time"]
    extracted += sorted(by_name.values(), key=lambda c: c.name)
    payload_json = Column(
        "payload_json", "String", ("payload",), "json", f"visitParamExtractRaw({EVENT_JSON}, 'payload')"
    )
    return from_python + [_extracted(c) for c in extracted] + [payload_json]
