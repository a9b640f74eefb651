"""ClickHouse columns derived from the pydantic contracts, so a field is declared once (in ``schemas``).

Envelope fields become non-null columns (``''``/``0`` when absent: cheap to store and to filter); nested
models are flattened with a prefix (``device_os``); payload fields from every event type become one
``Nullable`` column each (null where the event type has no such field). The whole payload is also kept
as JSON text, so nothing a client sent is lost even if a column is added later.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime, BaseModel

from schemas.events import PAYLOAD_MODELS, EventEnvelope


@dataclass(frozen=True)
class Column:
    name: str
    ch_type: str
    path: tuple[str, ...]  # where the value sits in the event's JSON object
    kind: str  # str | int | float | bool | datetime | json | date


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) with Annotated and Optional peeled off."""
    optional = False
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(get_args(annotation))
            annotation = args[0] if len(args) == 1 else str
        else:
            return annotation, optional


def _kind_and_type(annotation: Any) -> tuple[str, str]:
    if get_origin(annotation) is Literal:
        if all(isinstance(a, int) for a in get_args(annotation)):
            return "int", "UInt8"
        return "str", "LowCardinality(String)"
    if annotation is AwareDatetime:
        return "datetime", "DateTime('UTC')"
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return "str", "LowCardinality(String)"
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


def _model_columns(model: type[BaseModel], path: tuple[str, ...], prefix: str, nullable: bool) -> list[Column]:
    cols: list[Column] = []
    for name, info in model.model_fields.items():
        inner, optional = _unwrap(info.annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            cols.extend(_model_columns(inner, (*path, name), f"{prefix}{name}_", nullable))
            continue
        kind, ch_type = _kind_and_type(inner)
        if nullable:
            ch_type = f"Nullable({ch_type.removeprefix('LowCardinality(').removesuffix(')')})"
        cols.append(Column(f"{prefix}{name}", ch_type, (*path, name), kind))
    return cols


_ENVELOPE_SKIP = {"event_type", "payload"}


def behavior_event_columns() -> list[Column]:
    envelope = [c for c in _model_columns(EventEnvelope, (), "", nullable=False) if c.name not in _ENVELOPE_SKIP]
    by_name: dict[str, Column] = {}
    for model in PAYLOAD_MODELS.values():
        for col in _model_columns(model, ("payload",), "", nullable=True):
            seen = by_name.get(col.name)
            if seen is not None and seen.ch_type != col.ch_type:
                raise TypeError(f"payload field {col.name!r} has two types: {seen.ch_type} and {col.ch_type}")
            by_name[col.name] = col
    clash = {c.name for c in envelope} & set(by_name)
    if clash:
        raise TypeError(f"payload fields clash with envelope fields: {sorted(clash)}")
    derived = [
        Column("event_type", "LowCardinality(String)", ("event_type",), "str"),
        Column("event_date", "Date", ("event_time",), "date"),
        Column("tz_offset_minutes", "Int16", ("event_time",), "tz_offset"),
    ]
    tail = [Column("payload_json", "String", ("payload",), "json")]
    return derived + envelope + sorted(by_name.values(), key=lambda c: c.name) + tail
