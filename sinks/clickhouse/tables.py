"""Table definitions, derived from ``schemas.columns`` so ClickHouse follows the contracts.

Only SQL both ClickHouse 18.16 (the local server) and current releases accept is used here.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.columns import Column, behavior_event_columns

LINEAGE = [
    Column("kafka_partition", "UInt16", (), "lineage"),
    Column("kafka_offset", "UInt64", (), "lineage"),
]


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[Column]
    engine: str
    partition_by: str
    order_by: str

    def ddl(self, database: str) -> str:
        cols = ",\n  ".join(f"{c.name} {c.ch_type}" for c in self.columns)
        return (
            f"CREATE TABLE IF NOT EXISTS {database}.{self.name} (\n  {cols}\n)\n"
            f"ENGINE = {self.engine}\nPARTITION BY {self.partition_by}\nORDER BY {self.order_by}"
        )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


BEHAVIOR_EVENTS = Table(
    name="behavior_events",
    columns=[*behavior_event_columns(), *LINEAGE],
    # Re-delivered events share (user_id, event_time, event_id) and collapse into one row.
    engine="ReplacingMergeTree()",
    partition_by="toYYYYMM(event_date)",
    order_by="(user_id, event_time, event_id)",
)

TABLES = [BEHAVIOR_EVENTS]


def create_all(client: object, database: str) -> None:
    """Create the database and every table if missing (idempotent)."""
    execute = client.execute  # type: ignore[attr-defined]
    execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    for table in TABLES:
        execute(table.ddl(database))
