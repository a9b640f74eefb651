"""Versioned, idempotent schema migrations: `engage db migrate` and `engage db status`.

Each migration creates objects defined in ``sinks.clickhouse.tables`` (so DDL still follows the contracts) and
is recorded in ``schema_migrations``. Every statement is ``IF NOT EXISTS`` (or, for added columns, checked
against ``system.columns``: 18.16 has no ``ADD COLUMN IF NOT EXISTS``), so a migration interrupted halfway is
simply run again. A change to an existing table gets a new migration (``AddColumns``), never an edit of an
old one; a fresh database creates the table with the column already there and the step finds nothing to add.

With ``cluster`` set, the same migrations render the cluster variant (see ``sinks.clickhouse.tables``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.columns import model_columns
from schemas.profile import Profile
from sinks.clickhouse.client import insert_columns
from sinks.clickhouse.tables import (
    ACHIEVEMENTS_UNLOCKED,
    BANDIT_OUTCOMES,
    BEHAVIOR_EVENTS,
    BEHAVIOR_EVENTS_LANDING,
    BEHAVIOR_EVENTS_VIEW,
    CELEBRATIONS,
    DEAD_LETTERS,
    EXPERIMENT_EXPOSURES,
    INTERVENTION_OUTCOMES,
    INTERVENTION_REQUESTS,
    LABELLED_PREDICTIONS,
    LEADERBOARD_SNAPSHOTS,
    LEAGUE_RESULTS,
    LEVEL_UPS,
    RISK_UPDATES,
    STREAK_MILESTONES,
    TABLES,
    USER_DAILY_ACTIVITY,
    USER_DAILY_ACTIVITY_VIEW,
    USER_DAILY_SIGNALS,
    USER_DAILY_SIGNALS_VIEW,
    USER_PROFILES_DAILY,
    XP_AWARDS,
    AggregateView,
    Cluster,
    SchemaObject,
)

LEDGER = "schema_migrations"
_COHORT_COLUMNS = tuple(
    f"signals_{name}"
    for name in (
        "course_submissions",
        "course_avg_score_pct",
        "course_peers",
        "course_activity_rank_7d",
        "course_activity_rank_30d",
        "course_submitted_rank",
        "course_score_rank",
    )
)
_CALENDAR_COLUMNS = tuple(
    f"signals_{name}"
    for name in (
        "course_day",
        "assessments_due",
        "assessments_missed",
        "assessment_weight_missed_pct",
        "days_since_missed_due",
        "days_to_next_due",
    )
)


@dataclass(frozen=True)
class AddColumns:
    """Columns a contract gained after its table was created; added where missing, in the table's order."""

    table: str
    columns: tuple[str, ...]

    def statements(self, client: Any, database: str, cluster: Cluster | None) -> list[str]:
        table = next(t for t in TABLES if t.name == self.table)
        names = [cluster.local(table.name), table.name] if cluster else [table.name]
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        out = []
        for name in names:
            existing = {
                r[0]
                for r in client.execute(
                    f"SELECT name FROM system.columns WHERE database = '{database}' AND table = '{name}'"
                )
            }
            order = table.column_names
            for col in table.columns:
                if col.name in self.columns and col.name not in existing:
                    before = order[order.index(col.name) - 1]
                    # Rows written before the column existed did not know its value: for a float that is NaN,
                    # what the sinks write for an unknown float (0 would claim e.g. "least active").
                    default = " DEFAULT nan" if col.kind == "float" else ""
                    out.append(f"ALTER TABLE {database}.{name}{on} ADD COLUMN {col.ddl()}{default} AFTER {before}")
        return out


@dataclass(frozen=True)
class RecreateView:
    """A materialized view whose SELECT lists columns its source gained: dropped and created again."""

    view: AggregateView

    def statements(self, database: str, cluster: Cluster | None) -> list[str]:
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        return [f"DROP TABLE IF EXISTS {database}.{self.view.name}{on}", self.view.ddl(database, cluster)]


Step = SchemaObject | AddColumns | RecreateView


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    steps: tuple[Step, ...]

    def statements(self, client: Any, database: str, cluster: Cluster | None = None) -> list[str]:
        out: list[str] = []
        for step in self.steps:
            if isinstance(step, AddColumns):
                out += step.statements(client, database, cluster)
            elif isinstance(step, RecreateView):
                out += step.statements(database, cluster)
            else:
                out += step.ddl(database, cluster).split(";\n")
        return out


_PROFILE_CHANNEL_COLUMNS = tuple(
    c.name for c in model_columns(Profile) if c.name.startswith("channels_") or c.name == "preferred_channel"
)

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
    Migration(
        3,
        "analytics: freezes used in risk updates, intervention outcomes, daily activity and daily signal aggregates",
        (
            AddColumns("risk_updates", ("signals_streak_freezes_used",)),
            INTERVENTION_OUTCOMES,
            USER_DAILY_ACTIVITY,
            USER_DAILY_ACTIVITY_VIEW,
            USER_DAILY_SIGNALS,
            USER_DAILY_SIGNALS_VIEW,
        ),
    ),
    Migration(
        4,
        "course calendar signals in risk updates and daily signals",
        (
            AddColumns("risk_updates", _CALENDAR_COLUMNS),
            AddColumns("user_daily_signals", _CALENDAR_COLUMNS),
            RecreateView(USER_DAILY_SIGNALS_VIEW),
        ),
    ),
    Migration(
        5,
        "course scores and standing (ranks among the students of the same course) in risk updates and daily signals",
        (
            AddColumns("risk_updates", _COHORT_COLUMNS),
            AddColumns("user_daily_signals", _COHORT_COLUMNS),
            RecreateView(USER_DAILY_SIGNALS_VIEW),
        ),
    ),
    Migration(
        6,
        "how long before its start a student enrolled in their course, in risk updates and daily signals",
        (
            AddColumns("risk_updates", ("signals_enrolled_days_before_start",)),
            AddColumns("user_daily_signals", ("signals_enrolled_days_before_start",)),
            RecreateView(USER_DAILY_SIGNALS_VIEW),
        ),
    ),
    Migration(
        7,
        "analytics: labelled predictions, each daily 7-day risk with what the student did after it (one view)",
        (LABELLED_PREDICTIONS,),
    ),
    Migration(
        8,
        "the student's time zone and locale on intervention requests (what their message was rendered in)",
        (AddColumns("intervention_requests", ("timezone", "locale")),),
    ),
    Migration(
        9,
        "gamification: XP awards, level-ups, achievement unlocks, celebrations, leaderboard snapshots",
        (XP_AWARDS, LEVEL_UPS, ACHIEVEMENTS_UNLOCKED, CELEBRATIONS, LEADERBOARD_SNAPSHOTS),
    ),
    Migration(10, "experiments: exposures (each time a service acted on a student's variant)", (EXPERIMENT_EXPOSURES,)),
    Migration(
        11,
        "personalisation: each student's daily profile (formats, study time, pace, difficulty, triggers)",
        (USER_PROFILES_DAILY,),
    ),
    Migration(
        12,
        "what chose each intervention's type (policy, experiment, bandit) and the experiments that shaped it",
        (AddColumns("intervention_requests", ("chosen_by", "arms")),),
    ),
    Migration(
        13,
        "the bandit: what became of each intervention it chose (the student came back within the window or not)",
        (BANDIT_OUTCOMES,),
    ),
    Migration(
        14,
        "personalisation: each student's open rate per channel and preferred channel in the daily profile",
        (AddColumns("user_profiles_daily", _PROFILE_CHANNEL_COLUMNS),),
    ),
    Migration(
        15,
        "weekly leagues: each student's result in each closed week (group, rank, promoted or not)",
        (LEAGUE_RESULTS,),
    ),
)


def create_on_new_nodes(client: Any, database: str, cluster: Cluster) -> int:
    """Create the database, the ledger and every table on nodes that joined ``cluster`` after the migrations ran
    (a new shard): each statement again ``ON CLUSTER``, all ``IF NOT EXISTS``, so the nodes that have them are left
    as they are and the new ones get today's tables (empty) and a replica of the ledger. Until then a read of a
    ``Distributed`` table fails on the new shard. The statements run."""
    _ensure_ledger(client, database, cluster, force=True)
    statements = [s for m in MIGRATIONS for s in m.statements(client, database, cluster)]
    for statement in statements:
        client.execute(statement)
    return len(statements)


def _ensure_ledger(client: Any, database: str, cluster: Cluster | None = None, force: bool = False) -> None:
    """The database and the ledger, unless they exist. On a cluster both are created ``ON CLUSTER`` and the ledger
    is replicated to every node (one ZooKeeper path for all shards), so any node knows what was applied. Looked up
    first: ``ON CLUSTER`` waits for every node, and a sink restarting while a replica is down must not."""
    if not force and client.execute(f"EXISTS TABLE {database}.{LEDGER}") == [(1,)]:
        return
    on = f" ON CLUSTER {cluster.name}" if cluster else ""
    engine = (
        f"ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{LEDGER}', '{{replica}}')"
        if cluster
        else "ReplacingMergeTree()"
    )
    client.execute(f"CREATE DATABASE IF NOT EXISTS {database}{on}")
    client.execute(
        f"CREATE TABLE IF NOT EXISTS {database}.{LEDGER}{on} "
        f"(version UInt32, description String, applied_at DateTime('UTC')) ENGINE = {engine} ORDER BY version"
    )


def applied_versions(client: Any, database: str, cluster: Cluster | None = None) -> dict[int, datetime]:
    _ensure_ledger(client, database, cluster)
    rows = client.execute(f"SELECT version, max(applied_at) FROM {database}.{LEDGER} GROUP BY version")
    return {int(v): at for v, at in rows}


def migrate(client: Any, database: str, cluster: Cluster | None = None) -> list[Migration]:
    """Apply every migration not yet recorded; return those applied now."""
    done = applied_versions(client, database, cluster)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements(client, database, cluster):
            client.execute(statement)
        insert_columns(
            client,
            f"{database}.{LEDGER}",
            ["version", "description", "applied_at"],
            [[migration.version], [migration.description], [int(datetime.now(UTC).timestamp())]],
        )
        applied.append(migration)
    return applied


def status(client: Any, database: str, cluster: Cluster | None = None) -> list[tuple[int, str, datetime | None]]:
    done = applied_versions(client, database, cluster)
    return [(m.version, m.description, done.get(m.version)) for m in MIGRATIONS]


def create_all(client: Any, database: str, cluster: Cluster | None = None) -> None:
    """Bring the database up to date (idempotent): every sink calls this before consuming."""
    migrate(client, database, cluster)
