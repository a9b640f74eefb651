"""A standalone ClickHouse server (Debian package) with its own config and data under a project directory.

Nothing of the system-wide installation (/etc/clickhouse-server, /var/lib/clickhouse) is used: the config
written here puts data, logs and users under ``workdir`` and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from deploy.process import (
    ServiceError,
    Started,
    ensure_ports_free,
    read_pid,
    spawn,
    stop_pid_file,
    wait_ready,
)

SERVER_BINARIES = ("/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server", "/usr/bin/clickhouse")


@dataclass(frozen=True)
class ClickHouseConfig:
    workdir: Path
    host: str = "127.0.0.1"
    tcp_port: int = 19000
    http_port: int = 18123

    @property
    def pid_file(self) -> Path:
        return self.workdir / "pid"

    @property
    def log(self) -> Path:
        return self.workdir / "clickhouse.out"


def server_binary() -> list[str]:
    for path in SERVER_BINARIES:
        if Path(path).exists():
            return [path, "server"] if path.endswith("/clickhouse") else [path]
    found = shutil.which("clickhouse-server")
    if found:
        return [found]
    raise ServiceError("clickhouse-server is not installed; run `make system-deps` (apt-get install clickhouse-server)")


def _config_xml(cfg: ClickHouseConfig) -> str:
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
</yandex>
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
    <default>
      <password></password>
      <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
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


def _ping(cfg: ClickHouseConfig) -> bool:
    try:
        with urllib.request.urlopen(f"http://{cfg.host}:{cfg.http_port}/ping", timeout=0.5) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def start(cfg: ClickHouseConfig, timeout: float = 30.0) -> Started:
    existing = read_pid(cfg.pid_file)
    if existing is not None:
        return Started(
            "clickhouse",
            existing,
            wait_ready("clickhouse", existing, lambda: _ping(cfg), timeout, cfg.log),
            True,
        )
    binary = server_binary()
    ensure_ports_free("clickhouse", cfg.host, (cfg.tcp_port, cfg.http_port))
    for sub in ("data", "tmp", "log", "user_files", "format_schemas"):
        (cfg.workdir / sub).mkdir(parents=True, exist_ok=True)
    (cfg.workdir / "config.xml").write_text(_config_xml(cfg))
    (cfg.workdir / "users.xml").write_text(_USERS_XML)
    pid = spawn("clickhouse", [*binary, f"--config-file={cfg.workdir / 'config.xml'}"], cfg.workdir)
    seconds = wait_ready("clickhouse", pid, lambda: _ping(cfg), timeout, cfg.log)
    return Started("clickhouse", pid, seconds, False)


def stop(cfg: ClickHouseConfig) -> bool:
    return stop_pid_file(cfg.pid_file, grace=20.0)


def status(cfg: ClickHouseConfig) -> str:
    pid = read_pid(cfg.pid_file)
    if pid is None:
        return "stopped"
    state = "running" if _ping(cfg) else "starting or unhealthy"
    return f"{state} (pid {pid}, tcp {cfg.host}:{cfg.tcp_port}, http {cfg.http_port})"
