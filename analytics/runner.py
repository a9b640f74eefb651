"""Run a named query and print its result as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson

from analytics.catalog import get


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, (_plain(v) for v in row), strict=True)) for row in self.rows]


def run(client: Any, name: str, params: dict[str, str] | None = None) -> Result:
    """``client`` is connected with the engine's database selected (clickhouse-driver, or chdb in tests)."""
    sql = get(name).render(params)
    rows, types = client.execute(sql, with_column_types=True)
    return Result([n for n, _ in types], [tuple(r) for r in rows])


def _plain(value: Any) -> Any:
    """JSON/CSV-friendly: dates as ISO text, NaN and infinities as null."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def as_csv(result: Result) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    for record in result.records():
        writer.writerow("" if v is None else v for v in record.values())
    return out.getvalue()


def as_json(result: Result) -> str:
    return orjson.dumps(result.records(), option=orjson.OPT_INDENT_2).decode()


def as_text_rows(result: Result) -> list[list[str]]:
    """Cells as a person reads them (for the table view): floats trimmed, null as '-'."""
    return [
        ["-" if v is None else f"{v:g}" if isinstance(v, float) else str(v) for v in rec.values()]
        for rec in result.records()
    ]
