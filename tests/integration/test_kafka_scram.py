"""Kafka locked down (#27): every client kind speaks SCRAM over TLS from the same settings, and wrong credentials
or an untrusted certificate stop a component at start with an error that says so, in about a second.

A broker of its own (the same code as `engage infra up`, plus a SASL_SSL listener with SCRAM users created at
format time and a certificate from ``deploy.tls``), on free ports, stopped by PID at the end. Through that
listener only: the collector (confluent-kafka producer, admin), a real `engage worker` process (Faust and
aiokafka: consumer, changelog, outputs), the sinks (confluent-kafka consumer) into the session's ClickHouse.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy import server
from deploy.infra import Infra
from deploy.kafka_server import KafkaServer
from deploy.process import free_port, free_ports
from deploy.tls import renew_server_certificate
from kafka_io.admin import KafkaUnavailable, check_kafka, ensure_topics, scram_users, set_scram_password
from kafka_io.producer import EventProducer
from schemas.topics import TopicSpec, catalogue
from sinks.clickhouse.client import connect
from sinks.service import run_sinks
from tests.integration.helpers import read_topic, running_collector
from tests.integration.workers import WorkerProcess, wait_for

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


def _as(s: Settings, user: str, password: str) -> Settings:
    return s.model_copy(update={"kafka_sasl_username": user, "kafka_sasl_password": SecretStr(password)})


def _refusal(s: Settings) -> str:
    """'' when Kafka accepts the settings' user, else why not. A credential change is applied by every broker
    from the cluster's metadata a moment after the controller took it: callers wait for the answer they expect."""
    try:
        check_kafka(s.kafka, timeout=15)
        return ""
    except KafkaUnavailable as exc:
        return str(exc)


def test_a_password_is_rotated_through_a_second_user_without_an_outage(locked: Settings) -> None:
    """The runbook's rotation (deploy/SCALING.md) with the commands it names: `engage kafka set-password` creates
    the next user, the components move to it, `engage kafka delete-user` removes the old one."""
    old, new = f"app-{uuid.uuid4().hex[:6]}", f"app-{uuid.uuid4().hex[:6]}"
    as_old, as_new = _as(locked, old, "first secret"), _as(locked, new, "second secret")
    set_scram_password(locked.kafka, old, "first secret")
    assert wait_for(lambda: _refusal(as_old) == "", 10), _refusal(as_old)

    def cli(s: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "engage.cli", "kafka", *args], input=stdin, text=True,
                              capture_output=True, env={**os.environ, **settings_env(s)}, cwd=PROJECT_ROOT,
                              timeout=60)  # fmt: skip

    made = cli(as_old, "set-password", new, "--password-stdin", stdin="second secret\n")
    assert made.returncode == 0, made.stdout + made.stderr
    assert wait_for(lambda: _refusal(as_new) == "", 10), _refusal(as_new)
    assert _refusal(as_old) == ""  # both work while the components move to the new user
    listed = cli(as_new, "users")
    assert old in listed.stdout and new in listed.stdout and "second secret" not in listed.stdout

    gone = cli(as_new, "delete-user", old)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert wait_for(lambda: "SASL authentication error" in _refusal(as_old), 10), _refusal(as_old)
    assert _refusal(as_new) == ""
    assert old not in scram_users(locked.kafka)


def _served_serial(broker: KafkaServer) -> int:
    """The serial of the certificate the SCRAM listener presents to a new connection (verified against the CA)."""
    context = ssl.create_default_context(cafile=str(broker.tls.ca_file))
    raw = socket.create_connection((broker.host, broker.scram_port or 0), timeout=10)
    with context.wrap_socket(raw, server_hostname=broker.host) as tls:  # closes the socket too
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_certificate_is_served_without_a_restart_and_clients_keep_working(
    locked: Settings, broker: KafkaServer
) -> None:
    """The runbook's certificate rotation (deploy/SCALING.md): a new key and certificate from the same CA,
    `engage kafka keystore` points the listener at it, the broker reloads it; new connections get it and verify,
    components keep producing and consuming, and the broker process is the same."""
    pid = server.status(broker)
    before = _served_serial(broker)
    renewed = broker.tls.keystore.with_name("server-renewed.p12")
    serial = renew_server_certificate(broker.tls.ca_file.parent, renewed, (broker.host, "localhost"))
    assert serial != before
    done = subprocess.run([sys.executable, "-m", "engage.cli", "kafka", "keystore", str(renewed), "--broker", "1"],
                          text=True, capture_output=True, env={**os.environ, **settings_env(locked)}, cwd=PROJECT_ROOT,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert wait_for(lambda: _served_serial(broker) == serial, 30)
    check_kafka(locked.kafka)  # a new client connection verifies the renewed certificate
    topic = f"{locked.topic_prefix}.renewed-check"
    ensure_topics(locked.kafka, [TopicSpec(topic, 1)])
    with EventProducer(locked.kafka, catalogue(locked.topic_prefix, locked.event_partitions), source="test") as p:
        p.send_encoded(b"k", b'{"check": "after the rotation"}', topic=topic)
        assert p.flush(30) == 0
    assert read_topic(locked.kafka, topic, expect=1) == [{"check": "after the rotation"}]
    assert server.status(broker) == pid  # reloaded, not restarted
