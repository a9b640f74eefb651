"""Versioned, idempotent schema migrations: `engage db migrate` and `engage db status`.

Each migration creates objects defined in ``sinks.clickhouse.tables`` (so DDL still follows the contracts) and
is recorded in ``schema_migrations``. Every statement is ``IF NOT EXISTS``, so a migration interrupted halfway
is simply run again. A change to an existing table gets a new migration (``ALTER TABLE ... ADD COLUMN``),
never an edit of an old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sinks.clickhouse.client import insert_columns
from sinks.clickhouse.tables import (
    BEHAVIOR_EVENTS,
    BEHAVIOR_EVENTS_LANDING,
    BEHAVIOR_EVENTS_VIEW,
    DEAD_LETTERS,
    INTERVENTION_REQUESTS,
    RISK_UPDATES,
    STREAK_MILESTONES,
    LandingView,
    Table,
)

LEDGER = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    objects: tuple[Table | LandingView, ...]

    def statements(self, database: str) -> list[str]:
        return [obj.ddl(database) for obj in self.objects]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "raw behaviour events: table, Null landing table, extracting materialized view",
        (BEHAVIOR_EVENTS, BEHAVIOR_EVENTS_LANDING, BEHAVIOR_EVENTS_VIEW),
    ),
    Migration(
        2,
        "engine outputs: risk updates (with their signals), intervention requests, streak milestones, dead letters",
        (RISK_UPDATES, INTERVENTION_REQUESTS, STREAK_MILESTONES, DEAD_LETTERS),
    ),
)


def _ensure_ledger(client: Any, database: str) -> None:
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.execute(
        f"CREATE TABLE IF NOT EXISTS {database}.{LEDGER} "
        "(version UInt32, description String, applied_at DateTime('UTC')) "
        "ENGINE = ReplacingMergeTree() ORDER BY version"
    )


def applied_versions(client: Any, database: str) -> dict[int, datetime]:
    _ensure_ledger(client, database)
    rows = client.execute(f"SELECT version, max(applied_at) FROM {database}.{LEDGER} GROUP BY version")
    return {int(v): at for v, at in rows}


def migrate(client: Any, database: str) -> list[Migration]:
    """Apply every migration not yet recorded; return those applied now."""
    done = applied_versions(client, database)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements(database):
            client.execute(statement)
        insert_columns(
            client,
            f"{database}.{LEDGER}",
            ["version", "description", "applied_at"],
            [[migration.version], [migration.description], [int(datetime.now(UTC).timestamp())]],
        )
        applied.append(migration)
    return applied


def status(client: Any, database: str) -> list[tuple[int, str, datetime | None]]:
    done = applied_versions(client, database)
    return [(m.version, m.description, done.get(m.version)) for m in MIGRATIONS]
