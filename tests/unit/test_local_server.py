"""The one launcher (deploy.server) with a tiny real server: Python's http.server on a free loopback port.

No mocks: each test starts real processes, and only those (by the PIDs they recorded) are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from deploy import server
from deploy.clickhouse_server import ClickHouseServer
from deploy.kafka_server import KafkaServer
from deploy.process import ServiceError, Started, free_port, pid_alive, read_pid
from deploy.server import LocalServer

MARK = "written by prepare()"


@dataclass(frozen=True)
class FakeServer(LocalServer):
    """Serves its workdir over HTTP; ready once the file ``prepare()`` wrote comes back."""

    name: ClassVar[str] = "fake"
    start_timeout: ClassVar[float] = 20.0
    stop_grace: ClassVar[float] = 5.0

    workdir: Path
    port: int
    host: str = "127.0.0.1"
    installed: bool = True
    command: tuple[str, ...] = ()  # instead of the HTTP server

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def install(self) -> None:
        if not self.installed:
            raise ServiceError("fake is not installed")

    def prepare(self) -> None:
        (self.workdir / "mark.txt").write_text(MARK)

    def argv(self) -> list[str]:
        return list(self.command) or [sys.executable, "-m", "http.server", str(self.port), "--bind", self.host]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.port}/mark.txt", timeout=0.5) as resp:
                return resp.read().decode() == MARK
        except OSError:
            return False

    def describe(self, pid: int, ready: bool) -> str:
        return f"{'running' if ready else 'starting or unhealthy'} (pid {pid}, {self.host}:{self.port})"


class SlowFakeServer(FakeServer):
    start_timeout: ClassVar[float] = 1.0


class StubbornFakeServer(FakeServer):
    stop_grace: ClassVar[float] = 0.5


@pytest.fixture
def started() -> Iterator[list[LocalServer]]:
    """Servers a test starts; whatever is still running at the end is killed by its recorded PID."""
    servers: list[LocalServer] = []
    yield servers
    for srv in servers:
        pid = read_pid(srv.pid_file)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_start_status_and_stop_a_real_server(tmp_path: Path, started: list[LocalServer]) -> None:
    srv = FakeServer(tmp_path / "fake", free_port())
    started.append(srv)
    assert server.status(srv) == "stopped"

    first = server.start(srv)
    assert first == Started("fake", first.pid, first.seconds_to_ready, False)
    assert pid_alive(first.pid)
    assert srv.pid_file.read_text() == str(first.pid)
    assert srv.log == tmp_path / "fake" / "fake.out" and srv.log.exists()
    assert os.getpgid(first.pid) == first.pid  # its own group: stopping it never signals pytest
    assert server.status(srv) == f"running (pid {first.pid}, 127.0.0.1:{srv.port})"

    again = server.start(srv)  # idempotent: the recorded one is found and waited for, nothing new spawned
    assert again.already_running and again.pid == first.pid and again.name == "fake"

    assert server.stop(srv) is True
    assert not pid_alive(first.pid)
    assert not srv.pid_file.exists()
    assert server.status(srv) == "stopped"
    assert server.stop(srv) is False


def test_not_ready_within_the_servers_own_timeout(tmp_path: Path, started: list[LocalServer]) -> None:
    srv = SlowFakeServer(tmp_path / "slow", free_port(), command=("sleep", "30"))  # alive, never answers
    started.append(srv)
    t0 = time.monotonic()
    with pytest.raises(ServiceError, match=r"^fake was not ready after 1 s \(see .*fake\.out\)$"):
        server.start(srv)  # no timeout given: the server's start_timeout
    assert 1.0 <= time.monotonic() - t0 < 10.0
    pid = read_pid(srv.pid_file)
    assert pid is not None  # left running, as before: `stop` (or `make down`) ends it
    assert server.status(srv) == f"starting or unhealthy (pid {pid}, 127.0.0.1:{srv.port})"
    assert server.stop(srv) is True
    assert not pid_alive(pid)


def test_a_server_that_dies_during_start_up_shows_its_log(tmp_path: Path, started: list[LocalServer]) -> None:
    srv = FakeServer(tmp_path / "dies", free_port(), command=("sh", "-c", "echo 'bad config line 1'; exit 3"))
    started.append(srv)
    with pytest.raises(ServiceError, match=r"fake exited during start-up; last log lines:\nbad config line 1"):
        server.start(srv, timeout=10.0)
    assert server.status(srv) == "stopped"


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def test_a_busy_port_is_refused_before_anything_is_written(tmp_path: Path, busy_port: int) -> None:
    srv = FakeServer(tmp_path / "busy", busy_port)
    with pytest.raises(ServiceError, match=rf"cannot start fake: port\(s\) \[{busy_port}\] on 127.0.0.1 are in use"):
        server.start(srv)
    assert not (srv.workdir / "mark.txt").exists()  # prepare() did not run
    assert not srv.pid_file.exists()


def test_a_missing_program_is_reported_before_busy_ports(tmp_path: Path, busy_port: int) -> None:
    with pytest.raises(ServiceError, match=r"^fake is not installed$"):
        server.start(FakeServer(tmp_path / "missing", busy_port, installed=False))


def test_stop_kills_after_the_servers_grace(tmp_path: Path, started: list[LocalServer]) -> None:
    port = free_port()
    http = f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1"
    srv = StubbornFakeServer(tmp_path / "stubborn", port, command=("sh", "-c", f"trap '' TERM; {http}"))
    started.append(srv)
    pid = server.start(srv).pid
    t0 = time.monotonic()
    assert server.stop(srv) is True  # SIGTERM is ignored: SIGKILL after 0.5 s
    assert 0.5 <= time.monotonic() - t0 < 5.0
    assert not pid_alive(pid)


def test_kafka_and_clickhouse_keep_their_timeouts_grace_ports_and_files(tmp_path: Path) -> None:
    kafka = KafkaServer(workdir=tmp_path / "kafka", cache_dir=tmp_path / "cache", port=1, controller_port=2)
    clickhouse = ClickHouseServer(workdir=tmp_path / "clickhouse", tcp_port=3, http_port=4)
    assert (kafka.name, kafka.start_timeout, kafka.stop_grace, kafka.ports) == ("kafka", 90.0, 30.0, (1, 2))
    assert (clickhouse.name, clickhouse.start_timeout, clickhouse.stop_grace, clickhouse.ports) == (
        "clickhouse",
        30.0,
        20.0,
        (3, 4),
    )
    assert (kafka.pid_file, kafka.log) == (tmp_path / "kafka" / "pid", tmp_path / "kafka" / "kafka.out")
    assert clickhouse.log == tmp_path / "clickhouse" / "clickhouse.out"
    assert server.status(kafka) == server.status(clickhouse) == "stopped"
    assert kafka.describe(7, True) == "running (pid 7, 127.0.0.1:1)"
    assert kafka.describe(7, False) == "starting or unhealthy (pid 7)"
    assert clickhouse.describe(7, False) == "starting or unhealthy (pid 7, tcp 127.0.0.1:3, http 4)"

    clickhouse.prepare()  # its own config, under its own directory
    config = (tmp_path / "clickhouse" / "config.xml").read_text()
    assert "<tcp_port>3</tcp_port>" in config and f"<path>{tmp_path / 'clickhouse'}/data/</path>" in config
    assert (tmp_path / "clickhouse" / "users.xml").exists()


def test_the_clickhouse_users_file_holds_the_configured_user_and_only_a_hash_of_its_password(tmp_path: Path) -> None:
    import hashlib

    from deploy.clickhouse_server import users_xml

    locked = users_xml("engage", "correct horse")
    assert "<engage>" in locked and "</engage>" in locked and "<default>\n      <password>" not in locked
    assert hashlib.sha256(b"correct horse").hexdigest() in locked and "correct horse" not in locked
    assert "<default>\n      <password></password>" in users_xml("default", "")  # no password: as before
    with pytest.raises(ServiceError, match="letters, digits and '_' only"):
        users_xml("eng</age>", "x")
    server = ClickHouseServer(workdir=tmp_path, user="engage", password="correct horse")
    assert "correct horse" not in repr(server)
