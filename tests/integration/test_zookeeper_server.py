"""The local ZooKeeper a replicated ClickHouse cluster coordinates through: it starts standalone, answers the
four-letter words it allows, keeps a znode written by a real ZooKeeper client (the jar's own CLI), greets an old
client the way ClickHouse 18.16 expects, and frees its port when stopped.

Servers of their own (the same code as every local server: ``deploy.server``), on free ports in temporary
directories, stopped by PID. No Kafka or ClickHouse needed."""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import Settings
from deploy import server
from deploy.process import free_ports, port_open, read_pid
from deploy.zookeeper_server import ZooKeeperServer, four_letter_word

pytestmark = pytest.mark.integration


def _zookeeper(settings: Settings, workdir: Path) -> ZooKeeperServer:
    (port,) = free_ports(1)
    return ZooKeeperServer(workdir=workdir, cache_dir=settings.cache_dir, port=port)


@pytest.fixture(scope="module")
def zookeeper(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    zk = _zookeeper(settings, tmp_path_factory.mktemp("zookeeper"))
    server.start(zk)
    try:
        yield zk
    finally:
        server.stop(zk)


def cli(zk: ZooKeeperServer, *command: str) -> str:
    """Run one ZooKeeperMain command against ``zk`` (a real Java client session); return its standard output."""
    done = subprocess.run(
        zk.java("org.apache.zookeeper.ZooKeeperMain", "-server", zk.connect, *command),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"{command}: {done.stdout[-1000:]}{done.stderr[-1000:]}"
    return done.stdout


def test_it_runs_standalone_and_answers_the_allowed_words_only(zookeeper: ZooKeeperServer) -> None:
    assert zookeeper.ready()
    assert four_letter_word(zookeeper.host, zookeeper.port, "ruok") == "imok"
    assert "Mode: standalone" in zookeeper.status_text().splitlines()
    assert "zk_server_state\tstandalone" in four_letter_word(zookeeper.host, zookeeper.port, "mntr").splitlines()
    assert "not in the whitelist" in four_letter_word(zookeeper.host, zookeeper.port, "stat")
    assert server.status(zookeeper).startswith(f"running (pid {read_pid(zookeeper.pid_file)}, 127.0.0.1:")


def test_a_znode_written_by_a_client_reads_back(zookeeper: ZooKeeperServer) -> None:
    cli(zookeeper, "create", "/engage-test", "hello")
    assert "hello" in cli(zookeeper, "get", "/engage-test").splitlines()


def test_an_old_client_gets_the_old_handshake(zookeeper: ZooKeeperServer) -> None:
    """ClickHouse 18.16's client sends the pre-3.4 ConnectRequest (no read-only flag: 44 bytes) and refuses any
    answer but 36 bytes: ZooKeeper 3.9 must still leave its own read-only flag out for such a client."""
    # protocol version, last zxid seen, session timeout (ms), session id, password (length-prefixed, 16 bytes)
    request = struct.pack(">iqiqi16s", 0, 0, 30000, 0, 16, bytes(16))
    with socket.create_connection((zookeeper.host, zookeeper.port), timeout=5) as sock:
        sock.sendall(struct.pack(">i", len(request)) + request)
        answer = b""
        while len(answer) < 4 + 36 and (chunk := sock.recv(64)):
            answer += chunk
    length, protocol, timeout, session = struct.unpack(">iiiq", answer[:20])
    assert (length, protocol, timeout) == (36, 0, 30000)
    assert session != 0


def test_stopping_frees_the_port_and_the_data_outlives_a_restart(settings: Settings, tmp_path: Path) -> None:
    zk = _zookeeper(settings, tmp_path / "zookeeper")
    try:
        server.start(zk)
        cli(zk, "create", "/kept", "across-restarts")
        assert server.stop(zk)
        assert not port_open(zk.host, zk.port)
        assert server.status(zk) == "stopped" and not zk.pid_file.exists()

        server.start(zk)  # loads the snapshot and transaction log of the first run
        assert "across-restarts" in cli(zk, "get", "/kept").splitlines()
    finally:
        server.stop(zk)
    assert not port_open(zk.host, zk.port)
