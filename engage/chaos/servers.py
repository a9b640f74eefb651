"""The servers a chaos run stands on, and what "Kafka fails" and "ClickHouse fails" mean for them.

- ``OneNode``: one Kafka broker and one ClickHouse server (``make chaos``): each is stopped and started again, and
  the supervisor holds the workers back while Kafka is away (a worker started without Kafka only dies again).
- ``Clusters``: three Kafka brokers (replication factor 3, min ISR 2, SCRAM over TLS only) and a ClickHouse
  cluster of 2 shards x 2 replicas with ZooKeeper (``make cluster-chaos``): one broker and one replica are
  SIGKILLed, as machines fail, and started again; everything keeps running meanwhile.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from config.settings import Settings
from deploy import server
from deploy.clickhouse_cluster import ClickHouseCluster
from deploy.infra import Infra
from deploy.kafka_cluster import KafkaCluster
from deploy.process import Started


@dataclass
class OneNode:
    infra: Infra
    holds_workers_during_kafka_outage = True

    @classmethod
    def of(cls, settings: Settings) -> tuple[OneNode, Settings]:
        return cls(Infra.from_settings(settings)), settings

    def up(self) -> list[Started]:
        return self.infra.up()

    def down(self) -> None:
        self.infra.down()

    def fail(self, target: str) -> str:
        server.stop(self.infra.kafka if target == "kafka" else self.infra.clickhouse)
        return "stopped"

    def recover(self, target: str) -> str:
        """Start ``target`` again; anything it took beyond a plain start, for the report."""
        server.start(self.infra.kafka if target == "kafka" else self.infra.clickhouse)
        return ""


@dataclass
class Clusters:
    kafka: KafkaCluster
    clickhouse: ClickHouseCluster
    broker: int = 1  # the broker that fails: node 2 (any node leads about a third of the partitions)
    replica: int = 3  # the replica that fails: shard 2's second (the components connect to node s1r1)
    holds_workers_during_kafka_outage = False

    @classmethod
    def of(cls, settings: Settings) -> tuple[Clusters, Settings]:
        """The clusters under the run's directory, and the run's settings pointed at them: every client through
        the brokers' SASL_SSL listeners, topics and changelogs with 3 copies, the ClickHouse cluster's DDL."""
        run = Path(settings.run_dir)
        kafka_password, clickhouse_password = secrets.token_hex(12), secrets.token_hex(12)
        kafka = KafkaCluster.local(run / "kafka-cluster", settings.cache_dir, size=3, version=settings.kafka_version,
                                   heap="512m", partitions=settings.event_partitions,
                                   scram_users=(("engage", kafka_password),))  # fmt: skip
        clickhouse = ClickHouseCluster.local(run / "clickhouse-cluster", settings.cache_dir, user="engage",
                                             password=clickhouse_password)  # fmt: skip
        clustered = settings.model_copy(
            update={
                "kafka_bootstrap_servers": kafka.secure_bootstrap,
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": "SCRAM-SHA-512",
                "kafka_sasl_username": "engage",
                "kafka_sasl_password": SecretStr(kafka_password),
                "kafka_ssl_ca_file": str(kafka.ca_file),
                "kafka_replication_factor": 3,
                "kafka_min_insync_replicas": 2,
                "clickhouse_port": clickhouse.first.tcp_port,
                "clickhouse_http_port": clickhouse.first.http_port,
                "clickhouse_user": "engage",
                "clickhouse_password": SecretStr(clickhouse_password),
                "clickhouse_cluster": clickhouse.name,
            }
        )
        return cls(kafka, clickhouse), clustered

    def up(self) -> list[Started]:
        return self.clickhouse.up() + self.kafka.up()

    def down(self) -> None:
        self.kafka.down()
        self.clickhouse.down()

    def fail(self, target: str) -> str:
        if target == "kafka":
            return f"SIGKILLed broker {self.broker + 1} of 3 (pid {self.kafka.kill(self.broker)})"
        node = self.clickhouse.nodes[self.replica]
        replica = node.role.replica if node.role is not None else str(self.replica)
        return f"SIGKILLed replica {replica} of 4 (pid {self.clickhouse.kill(self.replica)})"

    def recover(self, target: str) -> str:
        """Start ``target`` again; anything it took beyond a plain start, for the report."""
        if target == "kafka":
            self.kafka.restart(self.broker)
            return ""
        forced = self.clickhouse.forced_restores.get(self.replica, 0)
        self.clickhouse.restart(self.replica)
        if self.clickhouse.forced_restores.get(self.replica, 0) > forced:
            return "; refused its unknown parts, started with force_restore_data"
        return ""


Servers = OneNode | Clusters
