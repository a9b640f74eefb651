"""One launcher for every local server: a `LocalServer` says what is specific, `start`/`stop`/`status` do the rest.

Kafka and ClickHouse used to repeat the same steps each in their own module (running PID → wait; ports free;
files; spawn; wait; stop by PID file; status line). Written once here, the two can no longer drift apart, and
`make up`, the demo, the chaos run and the test fixtures all go through the same code.
"""

from __future__ import annotations

import os
import signal
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from deploy.process import Started, ensure_ports_free, read_pid, spawn, stop_pid_file, wait_ready


class LocalServer(ABC):
    """A server we run ourselves on loopback, from its own directory, and know only by the PID it leaves there.

    Implementations are frozen dataclasses with ``workdir`` and ``host`` fields; the rest is the contract below.
    """

    name: ClassVar[str]
    start_timeout: ClassVar[float]  # seconds to wait for ``ready()`` unless the caller says otherwise
    stop_grace: ClassVar[float]  # seconds between SIGTERM and SIGKILL: time to flush and close cleanly

    workdir: Path
    host: str

    @property
    def pid_file(self) -> Path:
        return self.workdir / "pid"  # where `spawn` records it

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.out"  # where `spawn` sends the output

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Every port the server binds on ``host``: all must be free before it starts."""

    @abstractmethod
    def install(self) -> None:
        """Make sure what the server runs from exists (fetch it if that is possible), before anything is touched.

        A missing program is reported before busy ports: it is the first thing to fix."""

    @abstractmethod
    def prepare(self) -> None:
        """Write the server's files under ``workdir`` (configuration, first-start initialisation); ports are free."""

    @abstractmethod
    def argv(self) -> list[str]:
        """The command line that runs the server in the foreground."""

    def env(self) -> dict[str, str]:
        """Variables set on top of ours for the server process."""
        return {}

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers the way its clients need (a quick probe, polled during start-up)."""

    @abstractmethod
    def describe(self, pid: int, ready: bool) -> str:
        """The status line of the running process ``pid``, given whether it answered ``ready()``."""


def start(server: LocalServer, timeout: float | None = None) -> Started:
    """Start ``server`` unless the one we recorded is already running; either way, return once it is ready."""
    return start_all([server], timeout)[0]


def start_all(servers: Sequence[LocalServer], timeout: float | None = None) -> list[Started]:
    """Start every server (those not already running), then wait for each to be ready: the nodes of a quorum
    (KRaft controllers, ClickHouse replicas) become ready only once enough of the others run."""
    launched: list[tuple[LocalServer, int, bool]] = []
    for server in servers:
        existing = read_pid(server.pid_file)
        if existing is not None:
            launched.append((server, existing, True))
            continue
        server.install()
        ensure_ports_free(server.name, server.host, server.ports)
        server.workdir.mkdir(parents=True, exist_ok=True)
        server.prepare()
        launched.append((server, spawn(server.name, server.argv(), server.workdir, server.env()), False))
    started = []
    for server, pid, existed in launched:
        limit = server.start_timeout if timeout is None else timeout
        seconds = wait_ready(server.name, pid, server.ready, limit, server.log)
        started.append(Started(server.name, pid, seconds, existed))
    return started


def stop(server: LocalServer) -> bool:
    """Stop the recorded process (SIGKILL after the server's grace). True if one was running."""
    return stop_pid_file(server.pid_file, grace=server.stop_grace)


def kill(server: LocalServer, label: str) -> int:
    """SIGKILL the recorded process and everything it started (it runs in its own session), as a machine failure
    would, and forget its PID; the PID. ``label`` names it in the error if it is not running."""
    pid = read_pid(server.pid_file)
    if pid is None:
        raise RuntimeError(f"{label} is not running")
    os.killpg(pid, signal.SIGKILL)
    server.pid_file.unlink(missing_ok=True)
    return pid


def status(server: LocalServer) -> str:
    """'stopped' without a live recorded PID, else the server's own line for it."""
    pid = read_pid(server.pid_file)
    if pid is None:
        return "stopped"
    return server.describe(pid, server.ready())
