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

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        result = self._session.query(sql, "JSONCompact")
        text = result.bytes().decode() if hasattr(result, "bytes") else str(result)
        if not text.strip():
            return []
        return [tuple(row) for row in json.loads(text)["data"]]

    def close(self) -> None:
        self._session.close()
