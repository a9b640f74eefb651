"""Sinks for the engine's own topics (risk updates, interventions and their outcomes, milestones, dead letters,
gamification's XP awards, level-ups, unlocks, celebrations, leaderboard snapshots and league results, experiment
exposures, the daily profiles and the bandit's outcomes).

Each message is one contract instance (JSON), one row; columns come from the contract (``schemas.columns``). A
spec with ``fan_out`` reads a message that carries several rows (an ``XpAwardBatch``: a student's awards from one
events message) and stores one row for each.
These topics carry far fewer messages than the events topic, so rows are built in Python, one tuple each.
A spec with ``contract`` set also validates each message against it first: one that fails is dead-lettered with
pydantic's reason instead of being stored with defaults (exposures, bandit outcomes: a readout must never count a
guessed one). A spec with ``tombstones`` reads a compacted topic on which an erased student's key gets an empty
value: nothing to store (the warehouse half of the erasure deletes the rows), not a message to dead-letter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from config.settings import Settings
from schemas.columns import Column
from schemas.experiments import ArmOutcome, Exposure
from schemas.gamification import LeagueResult, award_rows
from schemas.topics import TopicCatalogue
from sinks.base import BatchingSink, Row, SinkBatch, UndecodableMessage
from sinks.clickhouse.client import connect, insert_columns
from sinks.clickhouse.migrations import create_all
from sinks.clickhouse.tables import (
    ACHIEVEMENTS_UNLOCKED,
    BANDIT_OUTCOMES,
    CELEBRATIONS,
    DEAD_LETTERS,
    EXPERIMENT_EXPOSURES,
    INTERVENTION_OUTCOMES,
    INTERVENTION_REQUESTS,
    LEADERBOARD_SNAPSHOTS,
    LEAGUE_RESULTS,
    LEVEL_UPS,
    RISK_UPDATES,
    STREAK_MILESTONES,
    USER_PROFILES_DAILY,
    XP_AWARDS,
    Table,
    cluster_for,
)


def _value(message: dict[str, Any], col: Column, partition: int, offset: int) -> Any:
    if col.kind == "lineage":
        return partition if col.name == "kafka_partition" else offset
    value: Any = message
    for part in col.path:
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:  # an unknown measure is NaN, never 0 (0 days since the last login means "today")
        return math.nan if col.kind == "float" else (col.default if col.kind != "datetime" else 0)
    if col.kind == "datetime":
        return int(datetime.fromisoformat(value).timestamp())
    if col.kind == "date":
        return datetime.fromisoformat(value).date()
    if col.kind == "json":
        return orjson.dumps(value).decode()
    if col.kind == "bool":
        return int(value)
    if col.kind == "str":
        return str(value)
    return value


def contract_row(table: Table, message: dict[str, Any], partition: int, offset: int) -> tuple[Any, ...]:
    """One table row for one contract message (its JSON as a dict), in the table's column order."""
    return tuple(_value(message, c, partition, offset) for c in table.columns)


@dataclass(frozen=True)
class ContractSinkSpec:
    name: str
    table: Table
    topic: Callable[[TopicCatalogue], str]
    contract: type[BaseModel] | None = None  # validate each message against it before storing
    fan_out: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None  # one message -> its rows' messages
    tombstones: bool = False  # a compacted topic: an empty value is an erasure's tombstone, no row


SPECS: dict[str, ContractSinkSpec] = {
    "risk-updates": ContractSinkSpec("risk_updates", RISK_UPDATES, lambda t: t.risk_updates.name),
    "interventions": ContractSinkSpec("intervention_requests", INTERVENTION_REQUESTS, lambda t: t.interventions.name),
    "outcomes": ContractSinkSpec(
        "intervention_outcomes", INTERVENTION_OUTCOMES, lambda t: t.intervention_outcomes.name
    ),
    "milestones": ContractSinkSpec("streak_milestones", STREAK_MILESTONES, lambda t: t.streak_milestones.name),
    "dead-letters": ContractSinkSpec("dead_letters", DEAD_LETTERS, lambda t: t.dead_letters.name),
    # Gamification. Standings are not stored: derived state, kept as the leaderboard snapshots.
    "xp-awards": ContractSinkSpec("xp_awards", XP_AWARDS, lambda t: t.xp_awards.name, fan_out=award_rows),
    "level-ups": ContractSinkSpec("level_ups", LEVEL_UPS, lambda t: t.level_ups.name),
    "achievements": ContractSinkSpec("achievements_unlocked", ACHIEVEMENTS_UNLOCKED, lambda t: t.achievements.name),
    "celebrations": ContractSinkSpec("celebrations", CELEBRATIONS, lambda t: t.celebrations.name),
    "leaderboard-snapshots": ContractSinkSpec(
        "leaderboard_snapshots", LEADERBOARD_SNAPSHOTS, lambda t: t.leaderboard_snapshots.name
    ),
    # Published by the leaderboard service when a week closes; validated (a tier must be one of the tiers).
    "league-results": ContractSinkSpec(
        "league_results", LEAGUE_RESULTS, lambda t: t.league_results.name, LeagueResult, tombstones=True
    ),
    # Experiments: validated, so an exposure that fails its contract is dead-lettered, never counted.
    "exposures": ContractSinkSpec("experiment_exposures", EXPERIMENT_EXPOSURES, lambda t: t.exposures.name, Exposure),
    "profiles": ContractSinkSpec("user_profiles_daily", USER_PROFILES_DAILY, lambda t: t.profiles.name),
    # The bandit's outcomes: validated like exposures, so an analyst's arm rates never count a malformed one.
    "bandit-outcomes": ContractSinkSpec(
        "bandit_outcomes", BANDIT_OUTCOMES, lambda t: t.bandit_outcomes.name, ArmOutcome
    ),
}


class ContractSink(BatchingSink):
    """One contract topic into its table."""

    def __init__(self, settings: Settings, spec: ContractSinkSpec) -> None:
        self.name = spec.name
        self.settings = settings
        self.table = spec.table
        self.contract = spec.contract
        self.fan_out = spec.fan_out
        self.tombstones = spec.tombstones
        self._target = f"{settings.clickhouse_database}.{spec.table.name}"
        self._client = connect(settings)

    def setup(self) -> None:
        create_all(self._client, self.settings.clickhouse_database, cluster_for(self.settings.clickhouse_cluster))

    def decode(self, value: bytes, partition: int, offset: int) -> Sequence[Row]:
        if not value and self.tombstones:
            return []
        try:
            message = orjson.loads(value)
            if not isinstance(message, dict):
                raise TypeError(f"expected a JSON object, got {type(message).__name__}")
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise UndecodableMessage(f"not a {self.table.name} message: {exc!r}") from exc
        if self.contract is not None:
            self._validate(message)
        try:
            if self.fan_out is None:
                return [contract_row(self.table, message, partition, offset)]
            return [contract_row(self.table, m, partition, offset) for m in self.fan_out(message)]
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise UndecodableMessage(f"not a {self.table.name} message: {exc!r}") from exc

    def _validate(self, message: dict[str, Any]) -> None:
        assert self.contract is not None
        try:
            self.contract.model_validate(message)
        except ValidationError as exc:
            errors = exc.errors()
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}" for e in errors)
            raise UndecodableMessage(f"not a valid {self.contract.__name__}: {problems}") from exc

    def write(self, batch: SinkBatch) -> None:
        columns = [list(c) for c in zip(*batch.rows, strict=True)]
        insert_columns(self._client, self._target, self.table.column_names, columns)
