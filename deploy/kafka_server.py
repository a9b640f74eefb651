"""A single-node Apache Kafka broker in KRaft mode, from Maven Central jars, on loopback.

The jars are resolved once by Maven (``deploy/kafka/pom.xml``) into the cache directory; the broker is
formatted on first start and then started with the machine's Java 17. No download site and no Docker.
Started, stopped and reported by ``deploy.server`` like every local server.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from deploy.maven import ensure_jars
from deploy.process import ServiceError, port_open
from deploy.server import LocalServer
from deploy.tls import TlsFiles, ensure_tls

POM = Path(__file__).with_name("kafka") / "pom.xml"


@dataclass(frozen=True)
class KafkaServer(LocalServer):
    name: ClassVar[str] = "kafka"
    start_timeout: ClassVar[float] = 90.0
    stop_grace: ClassVar[float] = 30.0

    workdir: Path
    cache_dir: Path
    version: str = "4.0.0"
    host: str = "127.0.0.1"
    port: int = 19092
    controller_port: int = 19093
    heap: str = "1g"
    default_partitions: int = 4
    # A SASL_SSL listener (SCRAM-SHA-256 and -512, TLS from ``deploy.tls``) beside the plaintext one, with these
    # (user, password) pairs created when the storage is formatted: how a locked-down cluster is tested here.
    scram_port: int | None = None
    scram_users: tuple[tuple[str, str], ...] = ()
    # One node of several (``deploy.kafka_cluster``): its id, the quorum's (node id, controller port) on ``host``,
    # the cluster id every node is formatted with, and where the cluster's one certificate authority is.
    node_id: int = 1
    voters: tuple[tuple[int, int], ...] = ()  # () = this node alone
    cluster_id: str = ""  # '' = a new one at the first start
    tls_dir: Path | None = None  # None = <workdir>/tls

    @property
    def secure_bootstrap(self) -> str:
        if self.scram_port is None:
            raise ValueError("this broker has no SCRAM listener (scram_port)")
        return f"{self.host}:{self.scram_port}"

    @property
    def tls(self) -> TlsFiles:
        """The listener's CA (``ca_file``, for clients) and keystore, made on first use."""
        return ensure_tls(self.tls_dir or self.workdir / "tls", (self.host, "localhost"))

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"kafka-{self.version}" / "libs"

    @property
    def properties(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.controller_port) + ((self.scram_port,) if self.scram_port is not None else ())

    def install(self) -> None:
        ensure_jars("Kafka", POM, "kafka.version", self.version, self.libs)

    def prepare(self) -> None:
        """Write server.properties; format the storage on the first start (no meta.properties yet)."""
        self.properties.write_text(_server_properties(self))
        if not (self.workdir / "data" / "meta.properties").exists():
            cid = self.cluster_id or new_cluster_id()
            fmt = subprocess.run(
                # "--cluster-id=" form: an id starting with "-" (1 in 64 of them) would be read as an option.
                _java(
                    self,
                    "kafka.tools.StorageTool",
                    "format",
                    f"--cluster-id={cid}",
                    "-c",
                    str(self.properties),
                    *_scram_arguments(self),
                ),
                capture_output=True,
                text=True,
            )
            if fmt.returncode != 0:
                raise ServiceError(f"formatting Kafka storage failed:\n{fmt.stdout[-2000:]}{fmt.stderr[-2000:]}")

    def argv(self) -> list[str]:
        return _java(self, "kafka.Kafka", str(self.properties))

    def env(self) -> dict[str, str]:
        return {"KAFKA_HEAP_OPTS": "", "JAVA_TOOL_OPTIONS": os.environ.get("JAVA_TOOL_OPTIONS", "")}

    def ready(self) -> bool:
        """The broker answers a metadata request and lists itself: an open port alone does not make it usable."""
        from confluent_kafka.admin import AdminClient

        if not port_open(self.host, self.port):
            return False
        try:
            admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 1000, "log_level": 0})
            meta = admin.list_topics(timeout=1.0)
            return bool(meta.brokers)
        except Exception:
            return False

    def describe(self, pid: int, ready: bool) -> str:
        return f"running (pid {pid}, {self.bootstrap})" if ready else f"starting or unhealthy (pid {pid})"


def new_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _scram_arguments(cfg: KafkaServer) -> list[str]:
    """``StorageTool format`` options that create the SCRAM users (both mechanisms) in the new cluster's metadata."""
    return [
        arg
        for user, password in cfg.scram_users
        for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512")
        for arg in ("--add-scram", f"{mechanism}=[name={user},password={password}]")
    ]


def _secure_listener(cfg: KafkaServer) -> list[str]:
    """The SECURE listener's settings: SASL (SCRAM) over TLS with the keystore of ``deploy.tls``."""
    if cfg.scram_port is None:
        return []
    tls = cfg.tls
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    return [
        "sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512",
        f"listener.name.secure.scram-sha-256.sasl.jaas.config={scram}",
        f"listener.name.secure.scram-sha-512.sasl.jaas.config={scram}",
        "listener.name.secure.ssl.keystore.type=PKCS12",
        f"listener.name.secure.ssl.keystore.location={tls.keystore}",
        f"listener.name.secure.ssl.keystore.password={tls.keystore_password}",
        f"listener.name.secure.ssl.key.password={tls.keystore_password}",
    ]


def _server_properties(cfg: KafkaServer) -> str:
    listeners = f"PLAINTEXT://{cfg.host}:{cfg.port}"
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if cfg.scram_port is not None:
        listeners += f",SECURE://{cfg.host}:{cfg.scram_port}"
        protocols += ",SECURE:SASL_SSL"
    voters = cfg.voters or ((cfg.node_id, cfg.controller_port),)
    # the internal topics' copies: three, or one per node below three; and writes acknowledged by two when possible
    internal_rf, internal_isr = min(3, len(voters)), min(2, len(voters))
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={cfg.node_id}",
            "controller.quorum.voters=" + ",".join(f"{n}@{cfg.host}:{port}" for n, port in voters),
            f"listeners={listeners},CONTROLLER://{cfg.host}:{cfg.controller_port}",
            f"advertised.listeners={listeners}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            f"listener.security.protocol.map={protocols}",
            *_secure_listener(cfg),
            f"log.dirs={cfg.workdir / 'data'}",
            f"num.partitions={cfg.default_partitions}",
            f"offsets.topic.replication.factor={internal_rf}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={internal_rf}",
            f"transaction.state.log.min.isr={internal_isr}",
            f"share.coordinator.state.topic.replication.factor={internal_rf}",
            f"share.coordinator.state.topic.min.isr={internal_isr}",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=false",
            "num.network.threads=2",
            "num.io.threads=4",
            "log.segment.bytes=268435456",
            "message.max.bytes=4194304",
            "",
        ]
    )


def _java(cfg: KafkaServer, main: str, *args: str) -> list[str]:
    return [
        "java",
        f"-Xmx{cfg.heap}",
        "-Xms256m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
        "-cp",
        f"{cfg.libs}/*",
        main,
        *args,
    ]
