"""Retention by dropping whole monthly partitions (`engage db retention`).

The local ClickHouse (18.16) has no TTL, and dropping a partition is the cheap, exact way anyway: every
table is partitioned by month (``toYYYYMM``), and each table says how many months it keeps
(``Table.retention_months``; raw events 13, daily aggregates 37, dead letters 3, milestones forever).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sinks.clickhouse.tables import TABLES, Cluster


@dataclass(frozen=True)
class ExpiredPartition:
    table: str
    partition: int  # YYYYMM
    rows: int


def oldest_kept_month(today: date, keep_months: int) -> int:
    """YYYYMM of the oldest month kept: the current month counts as one of the ``keep_months``."""
    if keep_months < 1:
        raise ValueError(f"keep_months must be at least 1, got {keep_months}")
    index = today.year * 12 + today.month - 1 - (keep_months - 1)
    return (index // 12) * 100 + index % 12 + 1


def retention_policy(overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Months kept per table: the tables' defaults with ``overrides`` applied (unknown names refused)."""
    policy = {t.name: t.retention_months for t in TABLES if t.retention_months is not None}
    known = {t.name for t in TABLES if t.partition_by}
    for name, months in (overrides or {}).items():
        if name not in known:
            raise ValueError(f"unknown table {name!r}; partitioned tables: {', '.join(sorted(known))}")
        policy[name] = months
    return policy


def expired_partitions(
    client: Any,
    database: str,
    today: date,
    overrides: Mapping[str, int] | None = None,
    cluster: Cluster | None = None,
) -> list[ExpiredPartition]:
    out = []
    for table, months in sorted(retention_policy(overrides).items()):
        physical = cluster.local(table) if cluster else table
        cutoff = oldest_kept_month(today, months)
        rows = client.execute(
            "SELECT partition, sum(rows) FROM system.parts "
            f"WHERE database = '{database}' AND table = '{physical}' AND active "
            "GROUP BY partition ORDER BY partition"
        )
        out += [ExpiredPartition(table, int(p), int(n)) for p, n in rows if int(p) < cutoff]
    return out


def drop_partitions(
    client: Any, database: str, partitions: list[ExpiredPartition], cluster: Cluster | None = None
) -> None:
    for p in partitions:
        physical = cluster.local(p.table) if cluster else p.table
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        client.execute(f"ALTER TABLE {database}.{physical}{on} DROP PARTITION {p.partition}")
