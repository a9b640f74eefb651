"""Three Kafka brokers, replication factor 3 and min ISR 2, SCRAM over TLS (#27, the short form of the multi-node
run): one broker SIGKILLed while events stream and restarted; nothing lost, nothing counted twice.

The brokers are started by the project's own code (``deploy.kafka_cluster``: KRaft, every node a controller, one
cluster id, one certificate authority), on free ports, stopped by PID at the end. The collector, a real
`engage worker` (Faust) and the sinks reach Kafka only through the SASL_SSL listeners; ClickHouse is the session's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource
from pydantic import SecretStr

from config.settings import Settings
from deploy.infra import Infra
from deploy.kafka_cluster import KafkaCluster
from deploy.process import free_port
from kafka_io.admin import Replication, ensure_topics
from kafka_io.client import kafka_conf
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.service import run_sinks
from tests.integration.helpers import running_collector
from tests.integration.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "three brokers"
WRITE = {"Authorization": "Bearer wk_demo_web"}
USERS, ROUNDS = 40, 12


@pytest.fixture(scope="module")
def cluster(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    kafka = KafkaCluster.local(
        tmp_path_factory.mktemp("kafka-cluster"),
        settings.cache_dir,
        size=3,
        version=settings.kafka_version,
        heap="384m",
        scram_users=(("engage", PASSWORD),),
    )
    try:
        for started in kafka.up():
            print(f"\n[cluster] {started.name} ready in {started.seconds_to_ready:.1f} s (pid {started.pid})")
        yield kafka
    finally:
        kafka.down()


@pytest.fixture(scope="module")
def replicated(
    infra: Infra, settings: Settings, cluster: KafkaCluster, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = settings.model_copy(
        update={
            "kafka_bootstrap_servers": cluster.secure_bootstrap,
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_username": "engage",
            "kafka_sasl_password": SecretStr(PASSWORD),
            "kafka_ssl_ca_file": str(cluster.ca_file),
            "kafka_replication_factor": 3,
            "kafka_min_insync_replicas": 2,
            "topic_prefix": f"rf3-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path_factory.mktemp("rf3-run"),
            "collector_port": free_port(),
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all(), replication=Replication(3, 2))
    return s


def _copies(s: Settings, topic: str) -> tuple[set[int], str]:
    """The replica counts of ``topic``'s partitions, and its min.insync.replicas."""
    admin = AdminClient(kafka_conf(s.kafka))
    meta = admin.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        return set(), ""  # not created yet, or not every broker knows it yet
    (described,) = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
    try:
        min_insync = described.result()["min.insync.replicas"].value
    except KafkaException:  # asked a broker that has not learnt of the topic yet
        return set(), ""
    return {len(p.replicas) for p in meta.partitions.values()}, min_insync


def _brokers(s: Settings) -> int:
    return len(AdminClient(kafka_conf(s.kafka)).list_topics(timeout=5).brokers)


def _batch(round_: int) -> list[dict[str, object]]:
    at = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    return [{"event_id": f"rf3-{u}-{round_}", "user_id": f"rf3-u{u}", "event_type": "login", "event_time": at,
             "platform": "web", "timezone": "UTC"} for u in range(USERS)]  # fmt: skip


def _send_until_accepted(url: str, batch: list[dict[str, object]], deadline: float) -> int:
    """POST the batch until the collector says Kafka has it (503 while partitions move to new leaders); the
    attempts made. A retry carries the same event ids, as a client's would."""
    attempts = 0
    while True:
        attempts += 1
        try:
            answer = httpx.post(f"{url}/v1/events", json=batch, headers=WRITE, timeout=30)
            if answer.status_code == 200:
                assert len(answer.json()["accepted"]) == len(batch), answer.text
                return attempts
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the collector did not get the batch into Kafka in time"
        time.sleep(0.5)


def test_the_topics_and_the_worker_changelog_have_three_copies_and_need_two(replicated: Settings) -> None:
    topics = catalogue(replicated.topic_prefix, replicated.event_partitions)
    for topic in (topics.events.name, topics.risk_updates.name):  # each broker learns a new topic a moment apart
        assert wait_for(lambda t=topic: _copies(replicated, t) == ({3}, "2"), 30), _copies(replicated, topic)


def test_a_broker_killed_and_restarted_while_events_stream_loses_nothing_and_counts_nothing_twice(
    replicated: Settings, cluster: KafkaCluster, tmp_path: Path
) -> None:
    worker = WorkerProcess(replicated, free_port(), tmp_path / "worker.log").start()
    try:
        changelog = f"{replicated.topic_prefix}-worker-user-state-changelog"
        # created by the worker's Faust as it starts: listed first, its partitions a moment later
        assert wait_for(lambda: _copies(replicated, changelog) == ({3}, "2"), 30), _copies(replicated, changelog)
        attempts: list[int] = []
        with running_collector(replicated) as url:
            deadline = time.monotonic() + 240
            restarter: threading.Thread | None = None
            for round_ in range(ROUNDS):
                if round_ == ROUNDS // 3:
                    killed = cluster.kill(0)  # node 1: leader of about a third of the partitions, a quorum voter
                    print(f"\n[cluster] SIGKILLed node 1 (pid {killed})")
                    assert wait_for(lambda: _brokers(replicated) == 2, 60), "the cluster should see node 1 gone"
                if round_ == 2 * ROUNDS // 3:
                    restarter = threading.Thread(target=cluster.restart, args=(0,))
                    restarter.start()  # it rejoins while the last rounds are sent
                attempts.append(_send_until_accepted(url, _batch(round_), deadline))
                time.sleep(0.5)
            assert restarter is not None
            restarter.join()
            assert wait_for(lambda: _brokers(replicated) == 3, 60), "node 1 should be back in the cluster"
        print(f"[cluster] attempts per round: {attempts}")

        def folded() -> bool:
            answers = [worker.engagement(f"rf3-u{u}") for u in range(USERS)]
            return all(a.status_code == 200 and a.json()["signals"]["events_total"] == ROUNDS for a in answers)

        assert wait_for(folded, 90), "every student's state should hold each event exactly once"
    finally:
        worker.stop()
    run_sinks(replicated, ["events"], idle_exit=5.0)
    stored = connect(replicated).execute(
        f"SELECT count(), uniqExact(event_id) FROM {replicated.clickhouse_database}.behavior_events FINAL "
        "WHERE event_id LIKE 'rf3-%'"
    )
    assert stored == [(USERS * ROUNDS, USERS * ROUNDS)]
