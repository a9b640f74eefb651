"""A current ClickHouse engine in-process (chdb), with the one method our DDL helpers call.

The local server is 18.16; every DDL and analyst query must also run on a current release, and chdb is
how the suite checks that without a second server.
"""

from __future__ import annotations

import json
from typing import Any

from chdb import session


class ChdbClient:
    def __init__(self) -> None:
        self._session = session.Session()

    def execute(
        self, sql: str, data: list[list[Any]] | None = None, columnar: bool = False, types_check: bool = False
    ) -> list[tuple[Any, ...]]:
        if data is not None:  # clickhouse-driver's columnar insert, as literals (fine in-process, not for 18.16)
            rows = zip(*data, strict=True) if columnar else data
            sql = sql + " " + ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
        result = self._session.query(sql, "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        if not text.strip():
            return []
        return [tuple(row) for row in json.loads(text)["data"]]

    def close(self) -> None:
        self._session.close()


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)
