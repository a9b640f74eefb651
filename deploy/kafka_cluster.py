"""Several Kafka brokers (KRaft, every node a controller too) on this machine: what a replicated deployment looks
like, run for real by the tests and the cluster chaos run instead of only described.

Each node is a ``KafkaServer`` with its own directory and ports, formatted with the same cluster id, voting in
one quorum, and (with SCRAM users) serving the same SASL_SSL listener behind one certificate authority, so
clients trust one ``ca.pem`` and list every node's listener as bootstrap servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploy import server
from deploy.kafka_server import KafkaServer, new_cluster_id
from deploy.process import Started, free_ports


@dataclass(frozen=True)
class KafkaCluster:
    nodes: tuple[KafkaServer, ...]

    @classmethod
    def local(
        cls,
        workdir: Path,
        cache_dir: Path,
        *,
        size: int = 3,
        version: str = "4.0.0",
        heap: str = "512m",
        partitions: int = 4,
        scram_users: tuple[tuple[str, str], ...] = (),
    ) -> KafkaCluster:
        """``size`` nodes on free loopback ports under ``workdir`` (node-1, node-2, ...)."""
        ports = free_ports(3 * size)
        plain, controllers, secure = ports[:size], ports[size : 2 * size], ports[2 * size :]
        voters = tuple((i + 1, controllers[i]) for i in range(size))
        cluster_id = new_cluster_id()
        return cls(
            tuple(
                KafkaServer(
                    workdir=workdir / f"node-{i + 1}",
                    cache_dir=cache_dir,
                    version=version,
                    port=plain[i],
                    controller_port=controllers[i],
                    heap=heap,
                    default_partitions=partitions,
                    scram_port=secure[i] if scram_users else None,
                    scram_users=scram_users,
                    node_id=i + 1,
                    voters=voters,
                    cluster_id=cluster_id,
                    tls_dir=workdir / "tls",
                )
                for i in range(size)
            )
        )

    @property
    def bootstrap(self) -> str:
        """Every node's plaintext listener."""
        return ",".join(n.bootstrap for n in self.nodes)

    @property
    def secure_bootstrap(self) -> str:
        """Every node's SASL_SSL listener."""
        return ",".join(n.secure_bootstrap for n in self.nodes)

    @property
    def ca_file(self) -> Path:
        return self.nodes[0].tls.ca_file

    def up(self, timeout: float | None = None) -> list[Started]:
        """Start every node not running, then wait for each (no node is ready before a majority of the quorum)."""
        return server.start_all(list(self.nodes), timeout)

    def down(self) -> None:
        for node in self.nodes:
            server.stop(node)

    def kill(self, index: int) -> int:
        """SIGKILL node ``index`` (0-based), as a machine failure would; its PID."""
        return server.kill(self.nodes[index], f"kafka node {self.nodes[index].node_id}")

    def restart(self, index: int, timeout: float | None = None) -> Started:
        return server.start(self.nodes[index], timeout)
