"""A fresh, migrated database per test on both engines: the local 18.16 server and a current one (chdb).

Rows go in through the sinks' own row builders (landing rows for events, contract rows for the engine's
topics), so the materialized views (daily activity, daily signals) are exercised exactly as in production.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from analytics.runner import Result, run
from schemas.interventions import InterventionRequest, InterventionType
from schemas.risk import RiskUpdate
from schemas.signals import RiskFactor, SignalSnapshot, tier_for
from sinks.behavior_events import landing_rows
from sinks.clickhouse.client import insert_columns
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING, INTERVENTION_REQUESTS, RISK_UPDATES, Table
from sinks.contract_sinks import contract_row


@dataclass
class Warehouse:
    """One migrated database on one engine, with helpers that insert like the sinks do."""

    client: Any
    database: str
    engine: str
    _offset: int = 0

    def _insert(self, table: Table | str, rows: list[tuple[Any, ...]], names: list[str]) -> None:
        name = table if isinstance(table, str) else table.name
        insert_columns(self.client, f"{self.database}.{name}", names, [list(c) for c in zip(*rows, strict=True)])

    def events(self, *events: dict[str, Any]) -> None:
        """Events as one EventBatch message per event, through the landing table (so the views fire)."""
        rows = []
        for event in events:
            self._offset += 1
            value = orjson.dumps({"schema_version": 1, "user_id": event["user_id"], "source": "t", "events": [event]})
            rows += landing_rows(value, 0, self._offset)
        self._insert(BEHAVIOR_EVENTS_LANDING, rows, BEHAVIOR_EVENTS_LANDING.column_names)

    def contract(self, table: Table, *messages: Any) -> None:
        rows = []
        for message in messages:
            self._offset += 1
            rows.append(contract_row(table, orjson.loads(message.model_dump_json()), 0, self._offset))
        self._insert(table, rows, table.column_names)

    def query(self, name: str, **params: Any) -> Result:
        return run(self.client, name, {k: str(v) for k, v in params.items()})


@pytest.fixture(params=[pytest.param("server-18.16", marks=pytest.mark.integration), "chdb-current"])
def warehouse(request: pytest.FixtureRequest) -> Iterator[Warehouse]:
    database = f"q_{uuid.uuid4().hex[:8]}"
    if request.param == "chdb-current":
        from tests.chdb_support import ChdbClient

        client: Any = ChdbClient(database)
        migrate(client, database)
        yield Warehouse(client, database, request.param)
        client.close()
        return
    from sinks.clickhouse.client import connect

    settings = request.getfixturevalue("settings")
    request.getfixturevalue("infra")
    migrate(connect(settings), database)
    client = connect(settings, database)
    yield Warehouse(client, database, request.param)
    client.execute(f"DROP DATABASE IF EXISTS {database}")


# --- message builders --------------------------------------------------------------------------------------
def at(day: str, hour: int = 10) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00")


def event(
    user: str, day: str, event_type: str = "login", hour: int = 10, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"{user}-{day}-{event_type}-{hour}-{uuid.uuid4().hex[:6]}",
        "user_id": user,
        "event_type": event_type,
        "event_time": at(day, hour).isoformat(),
        "platform": "web",
        "timezone": "UTC",
    }


def risk(
    user: str,
    day: str,
    risk_7d: float,
    hour: int = 12,
    factors: tuple[str, ...] = ("No login for a while",),
    **signals: Any,
) -> RiskUpdate:
    when = at(day, hour)
    return RiskUpdate(
        update_id=f"{user}:{day}:{hour}",
        user_id=user,
        scored_at=datetime.now(UTC),
        as_of=when,
        trigger="events",
        risk_7d=risk_7d,
        risk_30d=min(100.0, risk_7d + 5),
        tier=tier_for(risk_7d),
        confidence=0.8,
        factors=[
            RiskFactor(signal=f"s{i}", group="login", description=d, contribution=10.0 - i)
            for i, d in enumerate(factors)
        ],
        model_version="heuristic-1",
        signals=SignalSnapshot(user_id=user, as_of=when, last_event_time=at(day, 9), **signals),
    )


def request(user: str, day: str, status: str, kind: InterventionType, tier: str, n: int = 0) -> InterventionRequest:
    when = at(day, 11)
    return InterventionRequest(
        intervention_id=f"{user}:{day}:{kind}:{n}",
        user_id=user,
        created_at=when,
        status=status,  # type: ignore[arg-type]
        send_after=when if status == "deferred" else None,
        tier=tier,  # type: ignore[arg-type]
        intervention_type=kind,
        reason="test",
        deadline=when,
        risk_7d=50.0,
        model_version="heuristic-1",
        triggered_by_event_time=when,
    )


RISK = RISK_UPDATES
REQUESTS = INTERVENTION_REQUESTS
