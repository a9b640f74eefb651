"""`engage db copy --to DB`: copy the warehouse into another database, for a change of layout that ClickHouse
cannot make in place (a cluster that gained a shard: ``deploy/SCALING.md``, "Adding a shard").

The tables the sinks write are copied. A table a materialized view fills from a copied table (the daily signals,
from the risk updates) fills again from the copied rows, as it did from the sinks' inserts. One filled from a
landing table (the daily activity, from the events' landing table, engine Null: it holds nothing to copy) is
copied as it is, aggregate states and all. On a cluster each copy reads and writes the ``Distributed`` tables,
so every row lands on the shard its student hashes to in the new layout.
"""

from __future__ import annotations

from typing import Any

from sinks.clickhouse.tables import OBJECTS, TABLES, AggregateView, Table


def copied_tables() -> list[Table]:
    """The tables a copy moves: stored, and not filled by a view from a table the copy fills."""
    stored = [t for t in TABLES if t.engine != "Null"]
    names = {t.name for t in stored}
    refilled = {o.target.name for o in OBJECTS if isinstance(o, AggregateView) and o.source.name in names}
    return [t for t in stored if t.name not in refilled]


def copy_database(client: Any, source: str, target: str) -> dict[str, int]:
    """Copy every table of ``copied_tables`` from ``source`` into ``target`` (migrated already, empty); the rows
    per table as ``target`` holds them after (FINAL: re-deliveries collapse as they did in ``source``)."""
    counts = {}
    for table in copied_tables():
        names = [
            name
            for name, kind in client.execute(
                "SELECT name, default_kind FROM system.columns WHERE database = %(d)s AND table = %(t)s",
                {"d": target, "t": table.name},
            )
            if kind not in ("MATERIALIZED", "ALIAS")
        ]
        if not names:
            raise RuntimeError(f"{target}.{table.name} does not exist: run `engage db migrate` on {target} first")
        columns = ", ".join(names)
        client.execute(f"INSERT INTO {target}.{table.name} ({columns}) SELECT {columns} FROM {source}.{table.name}")
        counts[table.name] = int(client.execute(f"SELECT count() FROM {target}.{table.name} FINAL")[0][0])
    return counts
