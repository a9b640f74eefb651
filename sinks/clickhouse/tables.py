"""Table definitions, derived from ``schemas.columns`` so ClickHouse follows the contracts.

``behavior_events`` is fed through a landing table: the sink inserts each event's raw JSON (plus the sort
key and Kafka lineage) into ``behavior_events_landing`` (engine Null: nothing is stored there), and the
materialized view ``behavior_events_mv`` extracts every column into ``behavior_events``. The per-field work
happens in ClickHouse's C++ instead of Python, which is what lets one sink process pass 200k rows/s.

Only SQL both ClickHouse 18.16 (the local server) and current releases accept is used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from schemas.columns import EVENT_JSON, Column, behavior_event_columns, model_columns
from schemas.interventions import InterventionRequest
from schemas.messages import DeadLetter
from schemas.risk import RiskUpdate
from schemas.streaks import StreakMilestone

LINEAGE = [
    Column("kafka_partition", "UInt16", (), "lineage"),
    Column("kafka_offset", "UInt64", (), "lineage"),
]


@dataclass(frozen=True)
class Table:
    name: str
    columns: Sequence[Column]
    engine: str
    partition_by: str | None = None
    order_by: str | None = None

    def ddl(self, database: str) -> str:
        cols = ",\n  ".join(c.ddl() for c in self.columns)
        sql = f"CREATE TABLE IF NOT EXISTS {database}.{self.name} (\n  {cols}\n)\nENGINE = {self.engine}"
        if self.partition_by:
            sql += f"\nPARTITION BY {self.partition_by}"
        if self.order_by:
            sql += f"\nORDER BY {self.order_by}"
        return sql

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class LandingView:
    """A materialized view moving rows from a Null landing table into the real table, computing columns."""

    name: str
    landing: Table
    target: Table

    def ddl(self, database: str) -> str:
        landing_names = set(self.landing.column_names)
        unfillable = [c.name for c in self.target.columns if c.expr is None and c.name not in landing_names]
        if unfillable:
            raise ValueError(f"{self.name}: columns neither landed nor computed: {unfillable}")
        select = ",\n  ".join(c.name if c.expr is None else f"{c.expr} AS {c.name}" for c in self.target.columns)
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{self.name} TO {database}.{self.target.name}\n"
            f"AS SELECT\n  {select}\nFROM {database}.{self.landing.name}"
        )


_EVENT_COLUMNS = behavior_event_columns()

BEHAVIOR_EVENTS = Table(
    name="behavior_events",
    columns=[*_EVENT_COLUMNS, *LINEAGE],
    # Re-delivered events share (user_id, event_time, event_id) and collapse into one row on merge;
    # read with FINAL for exact counts before background merges ran.
    engine="ReplacingMergeTree()",
    partition_by="toYYYYMM(event_time)",
    order_by="(user_id, event_time, event_id)",
)

BEHAVIOR_EVENTS_LANDING = Table(
    name="behavior_events_landing",
    columns=[
        *(c for c in _EVENT_COLUMNS if c.expr is None),
        *LINEAGE,
        Column(EVENT_JSON, "String", (), "json"),
    ],
    engine="Null",
)

BEHAVIOR_EVENTS_VIEW = LandingView("behavior_events_mv", BEHAVIOR_EVENTS_LANDING, BEHAVIOR_EVENTS)


# The engine's own outputs, one row per message; columns derived from their contracts. Re-delivered messages
# carry the same natural id and collapse on merge (ReplacingMergeTree, read with FINAL).
def _contract_table(name: str, model: type[BaseModel], partition_by: str, order_by: str) -> Table:
    return Table(
        name=name,
        columns=[*model_columns(model), *LINEAGE],
        engine="ReplacingMergeTree()",
        partition_by=partition_by,
        order_by=order_by,
    )


RISK_UPDATES = _contract_table("risk_updates", RiskUpdate, "toYYYYMM(as_of)", "(user_id, as_of, update_id)")
INTERVENTION_REQUESTS = _contract_table(
    "intervention_requests", InterventionRequest, "toYYYYMM(created_at)", "(user_id, created_at, intervention_id)"
)
STREAK_MILESTONES = _contract_table(
    "streak_milestones", StreakMilestone, "toYYYYMM(reached_on)", "(user_id, milestone_id)"
)
DEAD_LETTERS = _contract_table(
    "dead_letters", DeadLetter, "toYYYYMM(received_at)", "(source, received_at, dead_letter_id)"
)

# In creation order: targets before the views that write into them.
OBJECTS: list[Table | LandingView] = [
    BEHAVIOR_EVENTS,
    BEHAVIOR_EVENTS_LANDING,
    BEHAVIOR_EVENTS_VIEW,
    RISK_UPDATES,
    INTERVENTION_REQUESTS,
    STREAK_MILESTONES,
    DEAD_LETTERS,
]
TABLES = [o for o in OBJECTS if isinstance(o, Table)]


def create_all(client: Any, database: str) -> None:
    """Bring the database up to date (idempotent): every sink calls this before consuming."""
    from sinks.clickhouse.migrations import migrate

    migrate(client, database)
