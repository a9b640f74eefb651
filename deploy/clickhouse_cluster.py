"""A ClickHouse cluster on this machine: shards of replicas (18.16 servers, each ~75 MB) coordinated by one
ZooKeeper, as ``ENGAGE_CLICKHOUSE_CLUSTER`` expects (``sinks.clickhouse.tables``: replicated ``_local`` tables on
every node, ``Distributed`` tables over them).

Every node gets the same ``remote_servers`` (every replica reached as the one user), its own ``{shard}`` and
``{replica}`` macros and interserver port, so ``ON CLUSTER`` DDL, replication and distributed queries all run
for real; the tests and the cluster chaos run kill and restart single replicas of it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from deploy import server
from deploy.clickhouse_server import ClickHouseServer, ClusterRole
from deploy.process import ServiceError, Started, free_ports, read_pid
from deploy.zookeeper_server import ZooKeeperServer

# What 18.16 says when a replica's parts on disk differ too much from ZooKeeper's list (TOO_MANY_UNEXPECTED_DATA_PARTS).
UNKNOWN_PARTS = "doesn't look like the set of parts"
# What 18.16 logs when a node's DDL worker stops for good (the server goes on serving queries, but executes no ON
# CLUSTER statement until it is restarted): after a ZooKeeper session loss in the worker's scan of the queue.
DDL_WORKER_STOPPED = ("DDLWorker: Unexpected error, will terminate", "DDLWorker: Unexpected ZooKeeper error")


@dataclass(frozen=True)
class ClickHouseCluster:
    name: str
    zookeeper: ZooKeeperServer
    nodes: tuple[ClickHouseServer, ...]  # shard by shard: shard 1's replicas, then shard 2's, ...
    password: str = field(default="", repr=False)
    forced_restores: dict[int, int] = field(default_factory=dict, compare=False)  # node -> restarts (``restart``)

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

    def grown(self, workdir: Path, shards: int = 1) -> ClickHouseCluster:
        """This cluster with ``shards`` more shards of as many replicas, the new nodes on free ports under
        ``workdir``, and every node's ``remote_servers`` naming them. Then ``rewrite`` the running nodes (they
        reload that section without a restart) and ``up`` starts the new ones."""
        first_role = self.nodes[0].role
        assert first_role is not None, "a cluster's nodes all have roles"
        layout = first_role.shards
        replicas, first_new = len(layout[0]), len(layout) + 1
        count = shards * replicas
        ports = free_ports(3 * count)
        tcp, http, interserver = ports[:count], ports[count : 2 * count], ports[2 * count :]
        new_layout = layout + tuple(tuple(tcp[s * replicas + r] for r in range(replicas)) for s in range(shards))
        nodes = [replace(n, role=replace(n.role, shards=new_layout)) for n in self.nodes if n.role is not None]
        template = self.nodes[0]
        for s in range(shards):
            for r in range(replicas):
                i, shard = s * replicas + r, first_new + s
                role = replace(first_role, shards=new_layout, shard=shard, replica=f"s{shard}r{r + 1}",
                               interserver_port=interserver[i])  # fmt: skip
                nodes.append(
                    replace(
                        template, workdir=workdir / f"s{shard}r{r + 1}", tcp_port=tcp[i], http_port=http[i], role=role
                    )
                )
        return ClickHouseCluster(self.name, self.zookeeper, tuple(nodes), self.password)

    def rotated(self, user: str, password: str) -> ClickHouseCluster:
        """This cluster with every node's user (the components' login, and how ``remote_servers`` reaches the
        replicas) now ``user``. The runbook's order (``deploy/SCALING.md``): the current nodes' ``write_users``
        with the new pair beside the old, then the rotated nodes' ``write_config``, the components moved, and
        last the rotated nodes' ``write_users`` (the old user gone)."""
        nodes = tuple(replace(n, user=user, password=password) for n in self.nodes)
        return ClickHouseCluster(self.name, self.zookeeper, nodes, password)

    def rewrite(self) -> None:
        """Write every node's configuration again (a running node re-reads ``remote_servers`` within seconds)."""
        for node in self.nodes:
            if read_pid(node.pid_file) is not None:
                node.prepare()

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
        return server.kill(node, f"ClickHouse node {node.role.replica if node.role else index}")

    def error_log_sizes(self) -> dict[int, int]:
        """How far each node's error log goes now: where ``stopped_ddl_workers`` starts reading later."""
        return {i: node.error_log_size() for i, node in enumerate(self.nodes)}

    def stopped_ddl_workers(self, since: dict[int, int]) -> list[int]:
        """The nodes whose DDL worker stopped after ``since`` (``error_log_sizes`` taken before, say, a ZooKeeper
        loss), as their error logs say: the runbook's check after a ZooKeeper loss (deploy/SCALING.md)."""
        said = {i: node.logged_since(since.get(i, 0)) for i, node in enumerate(self.nodes)}
        return [i for i, text in said.items() if any(marker.encode() in text for marker in DDL_WORKER_STOPPED)]

    def rebuild_lost_replica(self, index: int) -> None:
        """Prepare node ``index``, whose data directory was lost, to be started again as the same replica: its
        shard peer's table definitions copied in (the ``{shard}``/``{replica}`` macros in them are this node's
        own), and the flag that makes the server, at its next start, fetch every replicated table's parts from the
        other replicas (ClickHouse's documented recovery after a complete data loss: it skips the start-up sanity
        check of ZooKeeper's parts against the disk's). Then ``restart`` it."""
        node = self.nodes[index]
        peer = next(n for n in self.nodes if n is not node and n.role and node.role and n.role.shard == node.role.shard)
        if read_pid(node.pid_file) is not None:
            raise RuntimeError(f"ClickHouse node {index} is running: only a lost replica is rebuilt")
        data = node.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)  # whatever is left of it
        node.prepare()
        shutil.copytree(peer.workdir / "data" / "metadata", data / "metadata")
        _force_restore_at_next_start(node)

    def restart(self, index: int, timeout: float | None = None) -> Started:
        """Start node ``index`` again on its data directory. A replica SIGKILLed while it wrote a part can hold
        parts ZooKeeper never heard of; when they are many of its rows (early in a table's life, one part can be),
        18.16 refuses to start ("doesn't look like the set of parts in ZooKeeper"). Then it is started once more
        with ``flags/force_restore_data``, ClickHouse's documented answer: the unknown parts are detached and what
        ZooKeeper lists is fetched from the other replica. ``forced_restores`` counts those second starts."""
        node = self.nodes[index]
        logged = node.error_log_size()
        try:
            return server.start(node, timeout)
        except ServiceError as exc:
            said = node.logged_since(logged)  # what it said in this start
            if UNKNOWN_PARTS.encode() not in said:
                errors = [line for line in said.decode(errors="replace").splitlines() if "<Error>" in line]
                raise ServiceError(f"{exc}\n{node.error_log} says: {errors[0] if errors else '(nothing)'}") from exc
        _force_restore_at_next_start(node)
        self.forced_restores[index] = self.forced_restores.get(index, 0) + 1
        return server.start(node, timeout)

    def stop_and_restart(self, index: int) -> Started:
        """Stop node ``index`` (SIGTERM, SIGKILL after its grace) and start it again: the runbook's remedy for a node
        whose DDL worker stopped."""
        server.stop(self.nodes[index])
        return self.restart(index)


def _force_restore_at_next_start(node: ClickHouseServer) -> None:
    """The flag that makes the server skip its parts sanity check and restore replicated tables from ZooKeeper's
    list at its next start (it removes the flag once read)."""
    flags = node.workdir / "data" / "flags"
    flags.mkdir(parents=True, exist_ok=True)
    (flags / "force_restore_data").touch()
