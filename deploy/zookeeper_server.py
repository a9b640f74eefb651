"""A standalone Apache ZooKeeper server, from Maven Central jars, on loopback.

ClickHouse's ReplicatedMergeTree tables and ``ON CLUSTER`` DDL keep their coordination state in ZooKeeper: a
replicated ClickHouse cluster cannot run without one. The jars are resolved once by Maven
(``deploy/zookeeper/pom.xml``) into the cache directory and run with the machine's Java 17, like Kafka's.
No download site and no Docker. Started, stopped and reported by ``deploy.server`` like every local server.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from deploy.maven import ensure_jars
from deploy.server import LocalServer

POM = Path(__file__).with_name("zookeeper") / "pom.xml"


@dataclass(frozen=True)
class ZooKeeperServer(LocalServer):
    name: ClassVar[str] = "zookeeper"
    start_timeout: ClassVar[float] = 60.0
    stop_grace: ClassVar[float] = 10.0  # every write is already in the transaction log: nothing to flush

    workdir: Path
    cache_dir: Path
    version: str = "3.9.5"
    host: str = "127.0.0.1"
    port: int = 12181  # the client port
    heap: str = "256m"

    @property
    def connect(self) -> str:
        """``host:port``, as ClickHouse's ``<zookeeper><node>`` and ZooKeeper's own CLI want it."""
        return f"{self.host}:{self.port}"

    @property
    def libs(self) -> Path:
        return self.cache_dir / f"zookeeper-{self.version}" / "libs"

    @property
    def config(self) -> Path:
        return self.workdir / "zoo.cfg"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def install(self) -> None:
        ensure_jars("ZooKeeper", POM, "zookeeper.version", self.version, self.libs)

    def prepare(self) -> None:
        """Write zoo.cfg; ZooKeeper makes its data directory itself on the first start."""
        self.config.write_text(_zoo_cfg(self))

    def argv(self) -> list[str]:
        return self.java("org.apache.zookeeper.server.ZooKeeperServerMain", str(self.config))

    def java(self, main: str, *args: str) -> list[str]:
        """A JVM on the cached jars running ``main``: the server, or its own CLI (``...ZooKeeperMain``)."""
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Djava.awt.headless=true",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def ready(self) -> bool:
        """``ruok`` answers ``imok`` and ``srvr`` names a mode: it serves clients, not merely holds the port.

        ``imok`` alone only says the JVM runs: a server whose start failed (a missing class killed its main
        thread) keeps the port and answers ``imok``, while ``srvr`` says it is "not currently serving requests"."""
        return four_letter_word(self.host, self.port, "ruok") == "imok" and "\nMode: " in self.status_text()

    def status_text(self) -> str:
        """The ``srvr`` answer (version, latency, connections, ``Mode: standalone``); '' if unreachable."""
        return four_letter_word(self.host, self.port, "srvr")

    def describe(self, pid: int, ready: bool) -> str:
        return f"running (pid {pid}, {self.connect})" if ready else f"starting or unhealthy (pid {pid})"


def four_letter_word(host: str, port: int, word: str, timeout: float = 0.5) -> str:
    """Send a four-letter command (``ruok``, ``srvr``, ``mntr``: the whitelisted ones) and return the whole answer;
    '' on any socket error, so a probe can poll a server that is not up yet."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(word.encode("ascii"))
            chunks = []
            while chunk := sock.recv(4096):  # the server closes the connection after its answer
                chunks.append(chunk)
    except OSError:
        return ""
    return b"".join(chunks).decode("utf-8", errors="replace")


def _zoo_cfg(cfg: ZooKeeperServer) -> str:
    # Keys ZooKeeper does not know as settings (admin.*, 4lw.*) become ``zookeeper.<key>`` system properties.
    return "\n".join(
        [
            f"dataDir={cfg.workdir / 'data'}",
            f"clientPort={cfg.port}",
            f"clientPortAddress={cfg.host}",
            "tickTime=2000",
            "initLimit=10",
            "syncLimit=5",
            "maxClientCnxns=0",  # every client comes from 127.0.0.1: the default 60 per address is no cap here
            "admin.enableServer=false",  # the admin HTTP server would bind 8080 on every interface
            "4lw.commands.whitelist=ruok,srvr,mntr",  # readiness and status only; 3.5+ refuses unlisted words
            "autopurge.purgeInterval=0",  # a disposable local store: no background snapshot clean-up
            "",
        ]
    )
