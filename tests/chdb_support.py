"""A current ClickHouse engine in-process (chdb), answering like clickhouse-driver's ``Client.execute``.

The local server is 18.16; every DDL and analyst query must also run on a current release, and chdb is
how the suite checks that without a second server.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from chdb import session
from clickhouse_driver.util.escape import escape_params

# what escape_params reads of a connection: the server's time zone, for datetimes
_UTC_SERVER = SimpleNamespace(server_info=SimpleNamespace(get_timezone=lambda: "UTC"))


class ChdbClient:
    def __init__(self, database: str | None = None) -> None:
        self._session = session.Session()
        if database:
            self._session.query(f"CREATE DATABASE IF NOT EXISTS {database}")
            self._session.query(f"USE {database}")

    def execute(
        self,
        sql: str,
        data: list[list[Any]] | dict[str, Any] | None = None,
        columnar: bool = False,
        types_check: bool = False,
        with_column_types: bool = False,
    ) -> Any:
        if isinstance(data, dict):  # ``%(name)s`` parameters, escaped by clickhouse-driver's own function
            sql = sql % escape_params(data, _UTC_SERVER)
        elif data is not None:  # clickhouse-driver's columnar insert, as literals (fine in-process, not for 18.16)
            rows = zip(*data, strict=True) if columnar else data
            sql = sql + " " + ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        result = self._session.query(sql, "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        if not text.strip():
            return ([], []) if with_column_types else []
        doc = json.loads(text)
        types = [(m["name"], m["type"]) for m in doc["meta"]]
        rows = [tuple(_value(v, t) for v, (_, t) in zip(row, types, strict=True)) for row in doc["data"]]
        return (rows, types) if with_column_types else rows

    def close(self) -> None:
        self._session.close()


def _value(value: Any, ch_type: str) -> Any:
    """JSON values back to what clickhouse-driver returns: dates, datetimes, ints, NaN for null floats."""
    if value is None:
        return float("nan") if ch_type.startswith("Float") else None
    if ch_type == "Date":
        return date.fromisoformat(value)
    if ch_type.startswith("DateTime"):
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if "'" in ch_type else datetime.fromisoformat(value)
    if ch_type.startswith(("UInt", "Int")) and isinstance(value, str):
        return int(value)
    return value


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, datetime):
        return f"'{value.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}'"
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    if isinstance(value, float) and value != value:
        return "nan"
    return str(value)
