"""Risk updates, interventions, milestones and dead letters into ClickHouse, on the real servers."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.infra import Infra
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from schemas.interventions import InterventionRequest, InterventionType
from schemas.messages import DeadLetter
from schemas.risk import RiskUpdate
from schemas.signals import RiskFactor, SignalSnapshot
from schemas.streaks import StreakMilestone, milestone_id
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.positions import sink_lag
from sinks.service import run_sinks

pytestmark = pytest.mark.integration


def test_contract_topics_are_stored_once_each(infra: Infra, settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"topic_prefix": f"cs-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka_bootstrap, topics.all())
    now = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    update = RiskUpdate(
        update_id="u1:1",
        user_id="u1",
        scored_at=now,
        as_of=now,
        trigger="events",
        risk_7d=82.5,
        risk_30d=90.0,
        tier="critical",
        confidence=0.7,
        factors=[
            RiskFactor(
                signal="days_since_last_login", group="login", description="No login for 9 days", contribution=30.0
            )
        ],
        model_version="heuristic-1",
        signals=SignalSnapshot(user_id="u1", as_of=now, logins_30d=4, days_since_last_login=9.0),
    )
    request = InterventionRequest(
        intervention_id="i-1",
        user_id="u1",
        created_at=now,
        status="held_out",
        tier="critical",
        intervention_type=InterventionType.human_outreach,
        reason="No login for 9 days",
        deadline=now + timedelta(hours=4),
        risk_7d=82.5,
        model_version="heuristic-1",
        triggered_by_event_time=now,
    )
    milestone = StreakMilestone(
        milestone_id=milestone_id("u2", date(2026, 11, 1), 7),
        user_id="u2",
        milestone_days=7,
        streak_days=7,
        run_start=date(2026, 11, 1),
        reached_on=date(2026, 11, 7),
        timezone="Europe/London",
        event_time=now,
    )
    letter = DeadLetter(dead_letter_id="d-1", received_at=now, source="collector", reason="bad", raw="{}")
    with EventProducer(s.kafka_bootstrap, topics) as producer:
        for _ in range(2):  # everything twice: a re-delivery must not show up as a second row
            for topic, value in (
                (topics.risk_updates.name, update.model_dump_json()),
                (topics.interventions.name, request.model_dump_json()),
                (topics.streak_milestones.name, milestone.model_dump_json()),
                (topics.dead_letters.name, letter.model_dump_json()),
            ):
                producer.send_encoded(b"k", value.encode(), topic=topic)
        producer.send_encoded(b"k", b"not json", topic=topics.risk_updates.name)
    names = ["risk-updates", "interventions", "milestones", "dead-letters"]
    assert sink_lag(s, names) == {"risk-updates": 3, "interventions": 2, "milestones": 2, "dead-letters": 2}
    stats = run_sinks(s, names, idle_exit=2.0)
    assert stats["risk_updates"].dead_letters == 1
    assert sink_lag(s, names[:3]) == dict.fromkeys(names[:3], 0)  # (the new dead letter may still be in flight)

    client = connect(s)
    db = s.clickhouse_database
    rows = client.execute(
        f"SELECT user_id, tier, risk_7d, signals_logins_30d, signals_days_since_last_login, factors, as_of "
        f"FROM {db}.risk_updates FINAL WHERE update_id = 'u1:1'"
    )
    assert len(rows) == 1
    user, tier, risk, logins, since, factors, as_of = rows[0]
    assert (user, tier, risk, logins, since) == ("u1", "critical", 82.5, 4, 9.0)
    assert "No login for 9 days" in factors and as_of.replace(tzinfo=UTC) == now
    requests = client.execute(
        f"SELECT status, intervention_type, channels FROM {db}.intervention_requests FINAL "
        "WHERE intervention_id = 'i-1'"
    )
    assert requests == [("held_out", "human_outreach", "[]")]
    assert client.execute(
        f"SELECT milestone_days, run_start, reached_on FROM {db}.streak_milestones FINAL WHERE user_id = 'u2'"
    ) == [(7, date(2026, 11, 1), date(2026, 11, 7))]
    letters = client.execute(f"SELECT source, reason FROM {db}.dead_letters FINAL ORDER BY source")
    assert ("collector", "bad") in letters


def test_migrations_on_the_local_server(infra: Infra, settings: Settings) -> None:
    from sinks.clickhouse.migrations import MIGRATIONS, migrate, status

    client = connect(settings)
    db = f"mig_{uuid.uuid4().hex[:6]}"
    assert [m.version for m in migrate(client, db)] == [m.version for m in MIGRATIONS]
    assert migrate(client, db) == []
    assert all(at is not None for _, _, at in status(client, db))
    tables = {r[0] for r in client.execute(f"SELECT name FROM system.tables WHERE database = '{db}'")}
    assert {"behavior_events", "risk_updates", "intervention_requests", "streak_milestones", "dead_letters"} <= tables


def test_intervention_outcomes_reported_over_http_land_in_clickhouse(infra: Infra, settings: Settings) -> None:
    import httpx

    from tests.integration.helpers import read_topic, running_collector

    s = settings.model_copy(update={"topic_prefix": f"oc-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    good = {"intervention_id": "i-9", "user_id": "u9", "outcome": "opened", "at": "2026-11-20T10:00:00+00:00"}
    bad = {"intervention_id": "i-10", "user_id": "u10", "outcome": "liked", "at": "2026-11-20T10:00:00+00:00"}
    with running_collector(s) as base:
        url = f"{base}/v1/interventions/outcomes"
        refused = httpx.post(url, json={"outcomes": [good]}, headers={"Authorization": "Bearer wk_demo_web"})
        assert refused.status_code == 403 and "server key" in refused.json()["detail"]
        assert httpx.post(url, json={"outcomes": [good]}).status_code == 401
        answer = httpx.post(url, json={"outcomes": [good, bad]}, headers={"Authorization": "Bearer sk_demo_backend"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["accepted"] == 1
        assert body["rejected"][0]["index"] == 1 and body["rejected"][0]["reason"].startswith("outcome: ")
        empty = httpx.post(url, json={"outcomes": []}, headers={"Authorization": "Bearer sk_demo_backend"})
        assert empty.status_code == 400 and "at least one outcome" in empty.json()["detail"]
    letters = read_topic(s.kafka_bootstrap, topics.dead_letters.name, expect=2, timeout=10)
    assert any('"liked"' in letter["raw"] and letter["reason"].startswith("outcome: ") for letter in letters)
    run_sinks(s, ["outcomes"], idle_exit=2.0)
    client = connect(s)
    stored = client.execute(
        f"SELECT intervention_id, outcome, at FROM {s.clickhouse_database}.intervention_outcomes FINAL "
        "WHERE user_id = 'u9'"
    )
    assert stored == [("i-9", "opened", datetime(2026, 11, 20, 10, 0, tzinfo=UTC))]
