"""ClickHouse connections and the one way we insert: rows passed as columnar data, never inline literals.

(Inline ``INSERT ... VALUES (...)`` literals hang clickhouse-driver against the 18.16 server.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client

from config.settings import Settings


def connect(settings: Settings, database: str | None = None) -> Client:
    return Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        database=database or "default",
        connect_timeout=3,
        send_receive_timeout=60,
        settings={"allow_experimental_low_cardinality_type": 1},
    )


def insert_columns(client: Client, table: str, names: Sequence[str], columns: Sequence[Sequence[Any]]) -> int:
    """Insert column-major data; returns the number of rows written."""
    if not columns or not len(columns[0]):
        return 0
    client.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES",
        list(columns),
        columnar=True,
        types_check=False,
    )
    return len(columns[0])
