"""A ClickHouse cluster on this machine: shards of replicas (18.16 servers, each ~75 MB) coordinated by one
ZooKeeper, as ``ENGAGE_CLICKHOUSE_CLUSTER`` expects (``sinks.clickhouse.tables``: replicated ``_local`` tables on
every node, ``Distributed`` tables over them).

Every node gets the same ``remote_servers`` (every replica reached as the one user), its own ``{shard}`` and
``{replica}`` macros and interserver port, so ``ON CLUSTER`` DDL, replication and distributed queries all run
for real; the tests and the cluster chaos run kill and restart single replicas of it.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from deploy import server
from deploy.clickhouse_server import ClickHouseServer, ClusterRole
from deploy.process import Started, free_ports, read_pid
from deploy.zookeeper_server import ZooKeeperServer


@dataclass(frozen=True)
class ClickHouseCluster:
    name: str
    zookeeper: ZooKeeperServer
    nodes: tuple[ClickHouseServer, ...]  # shard by shard: shard 1's replicas, then shard 2's, ...
    password: str = field(default="", repr=False)

    @classmethod
    def local(
        cls,
        workdir: Path,
        cache_dir: Path,
        *,
        name: str = "engage",
        shards: int = 2,
        replicas: int = 2,
        user: str = "default",
        password: str = "",
    ) -> ClickHouseCluster:
        """``shards`` x ``replicas`` servers and a ZooKeeper on free loopback ports under ``workdir``."""
        count = shards * replicas
        ports = free_ports(3 * count + 1)
        tcp, http, interserver = ports[:count], ports[count : 2 * count], ports[2 * count : 3 * count]
        zookeeper = ZooKeeperServer(workdir=workdir / "zookeeper", cache_dir=cache_dir, port=ports[-1])
        layout = tuple(tuple(tcp[s * replicas + r] for r in range(replicas)) for s in range(shards))
        nodes = []
        for s in range(shards):
            for r in range(replicas):
                i = s * replicas + r
                role = ClusterRole(name, layout, s + 1, f"s{s + 1}r{r + 1}", f"{zookeeper.host}:{zookeeper.port}",
                                   interserver[i])  # fmt: skip
                nodes.append(
                    ClickHouseServer(
                        workdir=workdir / f"s{s + 1}r{r + 1}",
                        tcp_port=tcp[i],
                        http_port=http[i],
                        user=user,
                        password=password,
                        role=role,
                    )
                )
        return cls(name, zookeeper, tuple(nodes), password)

    @property
    def first(self) -> ClickHouseServer:
        """The node the components connect to (any node serves the Distributed tables and ON CLUSTER DDL)."""
        return self.nodes[0]

    def up(self, timeout: float | None = None) -> list[Started]:
        started = [server.start(self.zookeeper)]
        return started + server.start_all(list(self.nodes), timeout)

    def down(self) -> None:
        for node in self.nodes:
            server.stop(node)
        server.stop(self.zookeeper)

    def kill(self, index: int) -> int:
        """SIGKILL node ``index`` (shard-major, 0-based), as a machine failure would; its PID."""
        node = self.nodes[index]
        pid = read_pid(node.pid_file)
        if pid is None:
            raise RuntimeError(f"ClickHouse node {node.role.replica if node.role else index} is not running")
        os.killpg(pid, signal.SIGKILL)
        node.pid_file.unlink(missing_ok=True)
        return pid

    def restart(self, index: int, timeout: float | None = None) -> Started:
        return server.start(self.nodes[index], timeout)
