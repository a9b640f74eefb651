"""Kafka locked down (#27): every client kind speaks SCRAM over TLS from the same settings, and wrong credentials
or an untrusted certificate stop a component at start with an error that says so, in about a second.

A broker of its own (the same code as `engage infra up`, plus a SASL_SSL listener with SCRAM users created at
format time and a certificate from ``deploy.tls``), on free ports, stopped by PID at the end. Through that
listener only: the collector (confluent-kafka producer, admin), a real `engage worker` process (Faust and
aiokafka: consumer, changelog, outputs), the sinks (confluent-kafka consumer) into the session's ClickHouse.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy import server
from deploy.infra import Infra
from deploy.kafka_server import KafkaServer
from deploy.process import free_port, free_ports
from kafka_io.admin import KafkaUnavailable, check_kafka, ensure_topics
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.service import run_sinks
from tests.integration.helpers import read_topic, running_collector
from tests.integration.workers import WorkerProcess

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
WRITE = {"Authorization": "Bearer wk_demo_web"}


@pytest.fixture(scope="module")
def broker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaServer]:
    port, controller, scram = free_ports(3)
    kafka = KafkaServer(
        workdir=tmp_path_factory.mktemp("kafka-scram"),
        cache_dir=settings.cache_dir,
        version=settings.kafka_version,
        port=port,
        controller_port=controller,
        heap="512m",
        default_partitions=2,
        scram_port=scram,
        scram_users=(("engage", PASSWORD),),
    )
    server.start(kafka)
    try:
        yield kafka
    finally:
        server.stop(kafka)


@pytest.fixture(scope="module")
def locked(infra: Infra, settings: Settings, broker: KafkaServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's settings (its ClickHouse) with Kafka through the SCRAM listener only."""
    s = settings.model_copy(
        update={
            "kafka_bootstrap_servers": broker.secure_bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "engage",
            "kafka_sasl_password": SecretStr(PASSWORD),
            "kafka_ssl_ca_file": str(broker.tls.ca_file),
            "topic_prefix": f"scram-{uuid.uuid4().hex[:8]}",
            "event_partitions": 2,
            "run_dir": tmp_path_factory.mktemp("scram-run"),
            "collector_port": free_port(),
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def _events(users: list[str]) -> list[dict[str, object]]:
    at = datetime.now(UTC) - timedelta(minutes=5)

    def event(user: str, kind: str, **extra: object) -> dict[str, object]:
        return {"event_id": f"ev-{user}-{kind}", "user_id": user, "event_type": kind, "event_time": at.isoformat(),
                "platform": "web", "timezone": "UTC", **extra}  # fmt: skip

    return [
        e
        for u in users
        for e in (
            event(u, "login"),
            event(u, "session_started", session_id=f"s-{u}"),
            event(u, "lesson_completed", course_id="c1", payload={"lesson_id": "l1", "duration_seconds": 300}),
        )
    ]


def test_collector_worker_and_sinks_run_through_scram_over_tls(locked: Settings, tmp_path: Path) -> None:
    topics = catalogue(locked.topic_prefix, locked.event_partitions)
    users = [f"scram-{uuid.uuid4().hex[:6]}" for _ in range(4)]
    events = _events(users)
    with running_collector(locked) as collector:
        sent = httpx.post(f"{collector}/v1/events", json=events, headers=WRITE, timeout=30)
        assert sent.status_code == 200, sent.text
        assert len(sent.json()["accepted"]) == len(events), sent.text
    worker = WorkerProcess(locked, free_port(), tmp_path / "worker.log").start()
    try:
        updates = read_topic(locked.kafka, topics.risk_updates.name, expect=len(users), timeout=60)
        assert {u["user_id"] for u in updates} >= set(users)
        # the worker's own table, through its API: the events were folded, not only passed on
        deadline = time.monotonic() + 30
        while worker.engagement(users[0]).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert worker.engagement(users[0]).json()["user_id"] == users[0]
    finally:
        worker.stop()
    run_sinks(locked, ["events"], idle_exit=3.0)
    stored = connect(locked).execute(
        f"SELECT count() FROM {locked.clickhouse_database}.behavior_events FINAL WHERE user_id IN %(u)s",
        {"u": tuple(users)},
    )
    assert stored == [(len(events),)]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"kafka_sasl_password": SecretStr("wrong")}, "SASL authentication error"),
        ({"kafka_sasl_username": "nobody"}, "SASL authentication error"),
        ({"kafka_sasl_mechanism": "PLAIN"}, "SASL"),  # the listener offers SCRAM only
        ({"kafka_ssl_ca_file": ""}, "certificate verify failed"),  # the system's CAs do not know ours
    ],
)
def test_wrong_credentials_or_an_untrusted_certificate_are_refused_at_once(
    locked: Settings, change: dict[str, object], says: str
) -> None:
    wrong = locked.model_copy(update=change)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable) as refused:
        check_kafka(wrong.kafka, timeout=30)
    assert time.monotonic() - started < 10  # not the 30 s timeout: waiting would not cure it
    message = str(refused.value)
    assert says in message and "refused this client" in message
    assert "ENGAGE_KAFKA_SASL_PASSWORD" in message
    assert PASSWORD not in message


def test_a_worker_with_a_wrong_password_exits_at_start_saying_why(locked: Settings, tmp_path: Path) -> None:
    wrong = locked.model_copy(update={"kafka_sasl_password": SecretStr("wrong")})
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "engage.cli", "worker"],
        env={**os.environ, **settings_env(wrong)},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SASL authentication error" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert time.monotonic() - started < 60
