"""A standalone ClickHouse server (Debian package) with its own config and data under a project directory.

Nothing of the system-wide installation (/etc/clickhouse-server, /var/lib/clickhouse) is used: the config
written here puts data, logs and users under ``workdir`` and listens on 127.0.0.1 only.
Started, stopped and reported by ``deploy.server`` like every local server.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar
from xml.sax.saxutils import escape

from deploy.process import ServiceError
from deploy.server import LocalServer

SERVER_BINARIES = ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server", "/usr/bin/clickhouse")


@dataclass(frozen=True)
class ClickHouseServer(LocalServer):
    name: ClassVar[str] = "clickhouse"
    start_timeout: ClassVar[float] = 30.0
    stop_grace: ClassVar[float] = 20.0

    workdir: Path
    host: str = "127.0.0.1"
    tcp_port: int = 19000
    http_port: int = 18123
    user: str = "default"  # the one user of this server (every component connects as it)
    password: str = field(default="", repr=False)  # '' : none (kept as its SHA-256 in users.xml)
    role: ClusterRole | None = None  # one node of a cluster (``deploy.clickhouse_cluster``), or a server alone

    @property
    def error_log(self) -> Path:
        """Why it refused to start, once its logger runs (its standard output, ``log``, only says where it logs)."""
        return self.workdir / "log" / "error.log"

    def error_log_size(self) -> int:
        """Where its error log ends now: what it logs later is ``logged_since`` this."""
        return self.error_log.stat().st_size if self.error_log.exists() else 0

    def logged_since(self, offset: int) -> bytes:
        """What its error log gained after ``offset`` (``error_log_size`` taken before)."""
        if not self.error_log.exists():
            return b""
        with self.error_log.open("rb") as log:
            log.seek(offset)
            return log.read()

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.tcp_port, self.http_port) + ((self.role.interserver_port,) if self.role is not None else ())

    def install(self) -> None:
        server_binary()  # installed by `make system-deps`, not here: only say so

    def prepare(self) -> None:
        """Our own config.xml and users.xml, and the directories they name."""
        for sub in ("data", "tmp", "log", "user_files", "format_schemas"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        self.write_config()
        self.write_users()

    def write_config(self) -> None:
        """config.xml alone; a running server re-reads its ``remote_servers`` within seconds (a new shard, or the
        user the replicas are reached as while a password is rotated)."""
        (self.workdir / "config.xml").write_text(_config_xml(self))

    def write_users(self, *more: tuple[str, str]) -> None:
        """users.xml with the server's user and ``more`` (user, password) pairs; a running server re-reads it
        within seconds, without a restart (how a password is rotated: ``deploy/SCALING.md``)."""
        (self.workdir / "users.xml").write_text(users_xml(self.user, self.password, *more))

    def argv(self) -> list[str]:
        return [*server_binary(), f"--config-file={self.workdir / 'config.xml'}"]

    def ready(self) -> bool:
        """The HTTP interface answers /ping; a cluster's node also reads ZooKeeper. (An 18.16 node sent an ``ON
        CLUSTER`` statement just after it answered /ping, before its first ZooKeeper session, crashed now and
        then with a segmentation fault in ``zkutil::ZooKeeper::createImpl``: 2 of 11 tries here, none of 40 once it
        had read ZooKeeper first.)"""
        urls = [(f"http://{self.host}:{self.http_port}/ping", 0.5)]
        if self.role is not None:
            query = {"query": "SELECT count() FROM system.zookeeper WHERE path = '/'", "user": self.user,
                     "password": self.password}  # fmt: skip
            urls.append((f"http://{self.host}:{self.http_port}/?{urllib.parse.urlencode(query)}", 2.0))
        try:
            for url, timeout in urls:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    if resp.status != 200:
                        return False
        except OSError:
            return False
        return True

    def describe(self, pid: int, ready: bool) -> str:
        state = "running" if ready else "starting or unhealthy"
        return f"{state} (pid {pid}, tcp {self.host}:{self.tcp_port}, http {self.http_port})"


@dataclass(frozen=True)
class ClusterRole:
    """What a node of a cluster knows: the cluster's layout (every shard's replicas' native ports on ``host``),
    which shard and replica it is (the ``{shard}`` and ``{replica}`` macros of the replicated tables' paths),
    where ZooKeeper is, and the port its replicas fetch parts from each other on."""

    cluster: str
    shards: tuple[tuple[int, ...], ...]  # shard -> its replicas' tcp ports
    shard: int  # 1-based
    replica: str  # unique in the cluster
    zookeeper: str  # host:port
    interserver_port: int


def server_binary() -> list[str]:
    for path in SERVER_BINARIES:
        if Path(path).exists():
            return [path, "server"] if path.endswith("/clickhouse") else [path]
    found = shutil.which("clickhouse-server")
    if found:
        return [found]
    raise ServiceError("clickhouse-server is not installed; run `make system-deps` (apt-get install clickhouse-server)")


def _config_xml(cfg: ClickHouseServer) -> str:
    d = cfg.workdir
    return f"""<?xml version="1.0"?>
<yandex>
  <logger>
    <level>warning</level>
    <log>{d}/log/server.log</log>
    <errorlog>{d}/log/error.log</errorlog>
    <size>100M</size>
    <count>2</count>
  </logger>
  <listen_host>{cfg.host}</listen_host>
  <http_port>{cfg.http_port}</http_port>
  <tcp_port>{cfg.tcp_port}</tcp_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>536870912</mark_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <max_table_size_to_drop>0</max_table_size_to_drop>
  <max_partition_size_to_drop>0</max_partition_size_to_drop>
{_cluster_xml(cfg)}</yandex>
"""


def _cluster_xml(cfg: ClickHouseServer) -> str:
    """A cluster node's part of config.xml: the cluster (each replica reached as our one user), ZooKeeper, the
    macros, distributed DDL's queue, and the interserver port; '' for a server alone."""
    role = cfg.role
    if role is None:
        return ""
    login = f"<user>{escape(cfg.user)}</user><password>{escape(cfg.password)}</password>"
    shards = "".join(
        "<shard><internal_replication>true</internal_replication>"
        + "".join(f"<replica><host>{cfg.host}</host><port>{port}</port>{login}</replica>" for port in ports)
        + "</shard>"
        for ports in role.shards
    )
    zk_host, zk_port = role.zookeeper.rsplit(":", 1)
    return f"""  <interserver_http_host>{cfg.host}</interserver_http_host>
  <interserver_http_port>{role.interserver_port}</interserver_http_port>
  <remote_servers><{role.cluster}>{shards}</{role.cluster}></remote_servers>
  <zookeeper><node><host>{zk_host}</host><port>{zk_port}</port></node><session_timeout_ms>10000</session_timeout_ms></zookeeper>
  <macros><shard>{role.shard}</shard><replica>{role.replica}</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
"""


def users_xml(user: str, password: str, *more: tuple[str, str]) -> str:
    """The server's users.xml: ``user`` (and ``more`` (user, password) pairs: two users while a password is
    rotated), from loopback only, each password as its SHA-256 (none when '')."""
    blocks = []
    for name, secret in ((user, password), *more):
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ServiceError(f"ClickHouse user name {name!r}: letters, digits and '_' only (an XML tag in users.xml)")
        stored = (
            f"<password_sha256_hex>{hashlib.sha256(secret.encode()).hexdigest()}</password_sha256_hex>"
            if secret
            else "<password></password>"
        )
        blocks.append(_USER_XML.format(user=name, secret=stored))
    return _USERS_XML.format(users="".join(blocks))


_USER_XML = """    <{user}>
      {secret}
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </{user}>
"""

_USERS_XML = """<?xml version="1.0"?>
<yandex>
  <profiles>
    <default>
      <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
      <max_memory_usage>8000000000</max_memory_usage>
    </default>
  </profiles>
  <users>
{users}  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
        <read_rows>0</read_rows><execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
"""
