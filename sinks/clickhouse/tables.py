"""Table definitions, derived from ``schemas.columns`` so ClickHouse follows the contracts.

``behavior_events`` is fed through a landing table: the sink inserts each event's raw JSON (plus the sort
key and Kafka lineage) into ``behavior_events_landing`` (engine Null: nothing is stored there), and the
materialized view ``behavior_events_mv`` extracts every column into ``behavior_events``. The per-field work
happens in ClickHouse's C++ instead of Python, which is what lets one sink process pass 200k rows/s.

Daily aggregates are materialized views too: ``user_daily_activity`` (one row per student per UTC day, fed
from the landing table, counting distinct event ids so a re-delivered event is not counted twice) and
``user_daily_signals`` (the last risk update of each student-day: the point-in-time feature rows training
reads). On 18.16 a view does not fire for rows another view writes, so every view reads a table the sinks
insert into directly.

The same definitions render a cluster variant (``Settings.clickhouse_cluster``): each table becomes a
``Replicated*MergeTree`` ``<name>_local`` on every node plus a ``Distributed`` ``<name>`` sharded by user,
so one student's rows stay on one shard; see ``deploy/SCALING.md``.

Only SQL both ClickHouse 18.16 (the local server) and current releases accept is used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from processors.streaks import ACTIVE_EVENT_TYPES
from schemas.columns import EVENT_JSON, Column, behavior_event_columns, model_columns
from schemas.experiments import ArmOutcome, Exposure
from schemas.gamification import AchievementUnlocked, Celebration, LeaderboardRow, LeagueResult, LevelUp, XpAward
from schemas.interventions import InterventionOutcome, InterventionRequest
from schemas.messages import DeadLetter
from schemas.profile import Profile
from schemas.risk import RiskUpdate
from schemas.streaks import StreakMilestone

LINEAGE = [
    Column("kafka_partition", "UInt16", (), "lineage"),
    Column("kafka_offset", "UInt64", (), "lineage"),
]


@dataclass(frozen=True)
class Cluster:
    """Render DDL for a ClickHouse cluster: replicated local tables on every node, a Distributed table on top."""

    name: str

    def local(self, table: str) -> str:
        return f"{table}_local"


@dataclass(frozen=True)
class Table:
    name: str
    columns: Sequence[Column]
    engine: str
    partition_by: str | None = None
    order_by: str | None = None
    #: Months of partitions ``engage db retention`` keeps (None: keep forever). Partitions are months.
    retention_months: int | None = None
    #: How a cluster shards rows: by student, so per-user queries and aggregates stay on one shard.
    shard_key: str = "cityHash64(user_id)"

    def ddl(self, database: str, cluster: Cluster | None = None) -> str:
        cols = ",\n  ".join(c.ddl() for c in self.columns)
        name, engine, on = self.name, self.engine, ""
        if cluster is not None:
            name, on = cluster.local(self.name), f" ON CLUSTER {cluster.name}"
            engine = _replicated(engine, database, name)
        sql = f"CREATE TABLE IF NOT EXISTS {database}.{name}{on} (\n  {cols}\n)\nENGINE = {engine}"
        if self.partition_by:
            sql += f"\nPARTITION BY {self.partition_by}"
        if self.order_by:
            sql += f"\nORDER BY {self.order_by}"
        if cluster is not None:
            sql += ";\n" + (
                f"CREATE TABLE IF NOT EXISTS {database}.{self.name}{on} AS {database}.{name}\n"
                f"ENGINE = Distributed({cluster.name}, {database}, {name}, {self.shard_key})"
            )
        return sql

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _replicated(engine: str, database: str, table: str) -> str:
    """``ReplacingMergeTree(v)`` -> ``ReplicatedReplacingMergeTree('<zk path>', '{replica}', v)``; Null stays."""
    if "MergeTree" not in engine:
        return engine
    family, _, args = engine.partition("(")
    args = args.rstrip(")")
    replication = f"'/clickhouse/tables/{{shard}}/{database}/{table}', '{{replica}}'"
    return f"Replicated{family}({replication}{', ' + args if args else ''})"


def _target(database: str, table: Table, cluster: Cluster | None) -> str:
    return f"{database}.{cluster.local(table.name) if cluster else table.name}"


@dataclass(frozen=True)
class LandingView:
    """A materialized view moving rows from a Null landing table into the real table, computing columns."""

    name: str
    landing: Table
    target: Table

    def ddl(self, database: str, cluster: Cluster | None = None) -> str:
        landing_names = set(self.landing.column_names)
        unfillable = [c.name for c in self.target.columns if c.expr is None and c.name not in landing_names]
        if unfillable:
            raise ValueError(f"{self.name}: columns neither landed nor computed: {unfillable}")
        select = ",\n  ".join(c.name if c.expr is None else f"{c.expr} AS {c.name}" for c in self.target.columns)
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{self.name}{on} "
            f"TO {_target(database, self.target, cluster)}\n"
            f"AS SELECT\n  {select}\nFROM {_target(database, self.landing, cluster)}"
        )


@dataclass(frozen=True)
class AggregateView:
    """A materialized view computing ``target`` rows from each block inserted into ``source``."""

    name: str
    source: Table
    target: Table
    select: str  # "SELECT ... FROM {source} ...": the target's columns, by name

    def ddl(self, database: str, cluster: Cluster | None = None) -> str:
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        body = self.select.format(source=_target(database, self.source, cluster))
        return (
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{self.name}{on} "
            f"TO {_target(database, self.target, cluster)}\nAS {body}"
        )


_EVENT_COLUMNS = behavior_event_columns()

_EXPR = {c.name: c.expr for c in _EVENT_COLUMNS}

BEHAVIOR_EVENTS = Table(
    name="behavior_events",
    columns=[*_EVENT_COLUMNS, *LINEAGE],
    # Re-delivered events share (user_id, event_time, event_id) and collapse into one row on merge;
    # read with FINAL for exact counts before background merges ran.
    engine="ReplacingMergeTree()",
    partition_by="toYYYYMM(event_time)",
    order_by="(user_id, event_time, event_id)",
    retention_months=13,
)

BEHAVIOR_EVENTS_LANDING = Table(
    name="behavior_events_landing",
    columns=[
        *(c for c in _EVENT_COLUMNS if c.expr is None),
        *LINEAGE,
        Column(EVENT_JSON, "String", (), "json"),
    ],
    engine="Null",
    shard_key=f"cityHash64({_EXPR['user_id']})",
)

BEHAVIOR_EVENTS_VIEW = LandingView("behavior_events_mv", BEHAVIOR_EVENTS_LANDING, BEHAVIOR_EVENTS)


# The engine's own outputs, one row per message; columns derived from their contracts. Re-delivered messages
# carry the same natural id and collapse on merge (ReplacingMergeTree, read with FINAL).
def _contract_table(
    name: str,
    model: type[BaseModel],
    partition_by: str | None,
    order_by: str,
    retention_months: int | None,
    shard_key: str = "cityHash64(user_id)",
) -> Table:
    return Table(
        name=name,
        columns=[*model_columns(model), *LINEAGE],
        engine="ReplacingMergeTree()",
        partition_by=partition_by,
        order_by=order_by,
        retention_months=retention_months,
        shard_key=shard_key,
    )


RISK_UPDATES = _contract_table("risk_updates", RiskUpdate, "toYYYYMM(as_of)", "(user_id, as_of, update_id)", 13)
INTERVENTION_REQUESTS = _contract_table(
    "intervention_requests",
    InterventionRequest,
    "toYYYYMM(created_at)",
    "(user_id, created_at, intervention_id)",
    25,
)
INTERVENTION_OUTCOMES = _contract_table(
    "intervention_outcomes", InterventionOutcome, "toYYYYMM(at)", "(user_id, intervention_id, outcome, at)", 25
)
STREAK_MILESTONES = _contract_table(
    "streak_milestones", StreakMilestone, "toYYYYMM(reached_on)", "(user_id, milestone_id)", None
)
DEAD_LETTERS = _contract_table(
    "dead_letters", DeadLetter, "toYYYYMM(received_at)", "(source, received_at, dead_letter_id)", 3, "rand()"
)

# Gamification (PRODUCT.md §7). Each sort key is the message's deterministic id (or what it is made of), so a
# re-sent message collapses into one row. Rows collapse only within a partition, so each month partition is
# of a time the id fixes (an award's event, a level-up's batch, a snapshot's moment). An unlock has no such
# time: ``engage gamification backfill`` may find an unlock at another event than the worker did (the
# warehouse keeps 13 months of events), so ``achievements_unlocked`` is not partitioned (a few dozen rows per
# student, kept forever). XP awards and celebrations are kept 25 months (a student's total is on their newest
# award, ``total_xp``: dropping old months loses no total), leaderboard snapshots 13. Standings are not
# warehoused: they are derived, and the snapshots are what is kept of them.
XP_AWARDS = _contract_table("xp_awards", XpAward, "toYYYYMM(event_time)", "(user_id, award_id)", 25)
LEVEL_UPS = _contract_table("level_ups", LevelUp, "toYYYYMM(event_time)", "(user_id, level_up_id)", None)
ACHIEVEMENTS_UNLOCKED = _contract_table(
    "achievements_unlocked", AchievementUnlocked, None, "(user_id, unlock_id)", None
)
CELEBRATIONS = _contract_table("celebrations", Celebration, "toYYYYMM(event_time)", "(user_id, celebration_id)", 25)
LEADERBOARD_SNAPSHOTS = _contract_table(
    "leaderboard_snapshots", LeaderboardRow, "toYYYYMM(taken_at)", "(board, period, taken_at, rank)", 13
)
# Weekly leagues: one row per student and closed week they played (the id is ``{user}:league:{week}``, the month
# partition the week's Monday's, both fixed by the week: a result published again collapses). Kept 25 months.
LEAGUE_RESULTS = _contract_table(
    "league_results", LeagueResult, "toYYYYMM(week_start)", "(user_id, league_result_id)", 25
)
GAMIFICATION_TABLES = (
    XP_AWARDS,
    LEVEL_UPS,
    ACHIEVEMENTS_UNLOCKED,
    CELEBRATIONS,
    LEADERBOARD_SNAPSHOTS,
    LEAGUE_RESULTS,
)

# Experiments (PRODUCT.md §6): every exposure, one row each. The sort key starts with the experiment (a readout
# reads one) and ends in the moment and the message, so a re-delivered exposure collapses and a second message to
# the same student in the same variant (the same ``exposure_id``) is kept: opens and clicks are attributed to it.
EXPERIMENT_EXPOSURES = _contract_table(
    "experiment_exposures", Exposure, "toYYYYMM(at)", "(experiment, user_id, exposure_id, at, intervention_id)", 25
)

# The bandit (PRODUCT.md §8): what became of each intervention it chose, one row per intervention. The sort key is
# the intervention, so a copy the worker re-sends after a crash collapses into the same row (its ``at``, the
# window's close, is fixed by the intervention: the copy lands in the same month). Kept 25 months, like the
# intervention outcomes it summarises.
BANDIT_OUTCOMES = _contract_table("bandit_outcomes", ArmOutcome, "toYYYYMM(at)", "(user_id, intervention_id)", 25)

# Personalisation (PRODUCT.md §8): one row per student and local day (the worker sends a day's profile on the
# student's first re-score that day; a re-sent one collapses into the same row). Kept 13 months like the signals.
USER_PROFILES_DAILY = _contract_table("user_profiles_daily", Profile, "toYYYYMM(day)", "(user_id, day)", 13)


# --- daily aggregates ------------------------------------------------------------------------------------
_ACTIVE_TYPES = ", ".join(f"'{t}'" for t in sorted(ACTIVE_EVENT_TYPES))

USER_DAILY_ACTIVITY = Table(
    name="user_daily_activity",
    columns=[
        Column("day", "Date", (), "date"),
        Column("user_id", "String", (), "str"),
        # 1 when any event that day makes it an active day (streak rules); read with maxMerge(active) = 1.
        # A max is cheap to merge and a replay cannot change it.
        Column("active", "AggregateFunction(max, UInt8)", (), "aggregate"),
        # Distinct event ids, not row counts: a re-delivered event lands twice here and still counts once.
        # Read with uniqExactMerge(events), uniqExactIfMerge(lessons_completed), ...
        Column("events", "AggregateFunction(uniqExact, String)", (), "aggregate"),
        Column("active_events", "AggregateFunction(uniqExactIf, String, UInt8)", (), "aggregate"),
        Column("lessons_completed", "AggregateFunction(uniqExactIf, String, UInt8)", (), "aggregate"),
        Column("quizzes_submitted", "AggregateFunction(uniqExactIf, String, UInt8)", (), "aggregate"),
        Column("first_event_time", "AggregateFunction(min, DateTime('UTC'))", (), "aggregate"),
        Column("last_event_time", "AggregateFunction(max, DateTime('UTC'))", (), "aggregate"),
    ],
    engine="AggregatingMergeTree()",
    partition_by="toYYYYMM(day)",
    order_by="(day, user_id)",  # per-day scans for DAU/WAU/MAU and cohorts; a student's days are adjacent
    retention_months=37,
)

USER_DAILY_ACTIVITY_VIEW = AggregateView(
    "user_daily_activity_mv",
    BEHAVIOR_EVENTS_LANDING,
    USER_DAILY_ACTIVITY,
    f"""SELECT
  toDate(event_time) AS day,
  {_EXPR["user_id"]} AS user_id,
  maxState(toUInt8({_EXPR["event_type"]} IN ({_ACTIVE_TYPES}))) AS active,
  uniqExactState({_EXPR["event_id"]}) AS events,
  uniqExactIfState({_EXPR["event_id"]}, toUInt8({_EXPR["event_type"]} IN ({_ACTIVE_TYPES}))) AS active_events,
  uniqExactIfState({_EXPR["event_id"]}, toUInt8({_EXPR["event_type"]} = 'lesson_completed')) AS lessons_completed,
  uniqExactIfState({_EXPR["event_id"]}, toUInt8({_EXPR["event_type"]} = 'quiz_submitted')) AS quizzes_submitted,
  minState(event_time) AS first_event_time,
  maxState(event_time) AS last_event_time
FROM {{source}}
GROUP BY day, user_id""",
)

_SNAPSHOT_COLUMNS = [c for c in RISK_UPDATES.columns if c.kind != "lineage"]

USER_DAILY_SIGNALS = Table(
    name="user_daily_signals",
    columns=[Column("day", "Date", (), "date"), *_SNAPSHOT_COLUMNS],
    # The newest update of each student-day wins (version as_of): features exactly as the scorer saw them at
    # the end of that day, never later. Silent students are re-scored at least daily, so each day has a row.
    engine="ReplacingMergeTree(as_of)",
    partition_by="toYYYYMM(day)",
    order_by="(user_id, day)",
    retention_months=37,
)

USER_DAILY_SIGNALS_VIEW = AggregateView(
    "user_daily_signals_mv",
    RISK_UPDATES,
    USER_DAILY_SIGNALS,
    "SELECT\n  toDate(as_of) AS day,\n  " + ",\n  ".join(c.name for c in _SNAPSHOT_COLUMNS) + "\nFROM {source}",
)


@dataclass(frozen=True)
class QueryView:
    """A plain view: a SELECT written once that several analyst queries read (it stores nothing).

    ``select`` names its tables as ``{table_name}``; each becomes ``database.table_name``, which on a cluster
    is the Distributed table, so the view reads every shard."""

    name: str
    sources: tuple[Table, ...]
    select: str

    def ddl(self, database: str, cluster: Cluster | None = None) -> str:
        on = f" ON CLUSTER {cluster.name}" if cluster else ""
        body = self.select.format(**{t.name: f"{database}.{t.name}" for t in self.sources})
        return f"CREATE VIEW IF NOT EXISTS {database}.{self.name}{on} AS\n{body}"


# Each student-day's 7-day prediction (the day's last risk, as training's rows) with what the student did
# after it, for prediction_accuracy and prediction_calibration. The label (``models.labels``) also needs the
# day the data is complete to (a query parameter, which a view cannot take), so the view gives its two parts:
# unenrolled within the 7 days after, and the first active day after (a day number; 0: none); the queries
# finish it as
#   dropped = unenrolled_within_7d OR next_active_on = 0 OR next_active_on > as_of
# ``predicted_on`` is ``day`` as a day number. The lambdas capture no column: they get the day as an array
# (``replicate``), because 18.16 does not count a column used only inside a lambda as needed, and drops it
# from a view read for fewer columns ("Unknown identifier: predicted_on").
LABELLED_PREDICTIONS = QueryView(
    "labelled_predictions",
    (USER_DAILY_SIGNALS, USER_DAILY_ACTIVITY, BEHAVIOR_EVENTS),
    """SELECT
    user_id,
    day,
    predicted_on,
    risk_7d,
    arrayExists((x, p) -> x > p AND x <= p + 7, unenrol_days, replicate(predicted_on, unenrol_days))
        AS unenrolled_within_7d,
    arrayFirst((x, p) -> x > p, active_days, replicate(predicted_on, active_days)) AS next_active_on
FROM
(
    SELECT user_id, day, toUInt32(day) AS predicted_on, risk_7d
    FROM {user_daily_signals} FINAL
) AS snap
ANY LEFT JOIN
(
    SELECT
        user_id,
        arraySort(groupArrayIf(d, kind = 'active')) AS active_days,
        groupArrayIf(d, kind = 'unenrolled') AS unenrol_days
    FROM
    (
        SELECT user_id, toUInt32(day) AS d, 'active' AS kind
        FROM
        (
            SELECT user_id, day
            FROM {user_daily_activity}
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS days
        UNION ALL
        SELECT user_id, toUInt32(toDate(event_time)) AS d, 'unenrolled' AS kind
        FROM {behavior_events} FINAL
        WHERE event_type = 'unenrolled'
    ) AS outcomes
    GROUP BY user_id
) AS act USING user_id""",
)

SchemaObject = Table | LandingView | AggregateView | QueryView

# In creation order: targets before the views that write into them.
OBJECTS: list[SchemaObject] = [
    BEHAVIOR_EVENTS,
    BEHAVIOR_EVENTS_LANDING,
    BEHAVIOR_EVENTS_VIEW,
    RISK_UPDATES,
    INTERVENTION_REQUESTS,
    STREAK_MILESTONES,
    DEAD_LETTERS,
    INTERVENTION_OUTCOMES,
    USER_DAILY_ACTIVITY,
    USER_DAILY_ACTIVITY_VIEW,
    USER_DAILY_SIGNALS,
    USER_DAILY_SIGNALS_VIEW,
    LABELLED_PREDICTIONS,
    *GAMIFICATION_TABLES,
    EXPERIMENT_EXPOSURES,
    USER_PROFILES_DAILY,
    BANDIT_OUTCOMES,
]
TABLES = [o for o in OBJECTS if isinstance(o, Table)]


def cluster_for(name: str) -> Cluster | None:
    return Cluster(name) if name else None
