"""Local process and port helpers (deploy.process): only processes these tests start are signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.process import (
    ServiceError,
    ensure_ports_free,
    free_port,
    free_ports,
    pid_alive,
    port_open,
    read_pid,
    spawn,
    stop_pid_file,
)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port with a socket listening on it (held by this test)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield int(sock.getsockname()[1])


def reaped_pid() -> int:
    """The pid of a child of ours that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------------------------
# Ports
# ------------------------------------------------------------------------------------------------------


def test_free_port_can_be_bound_and_is_not_listening():
    port = free_port()
    assert 1024 <= port <= 65535
    assert not port_open("127.0.0.1", port)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen(1)
        assert port_open("127.0.0.1", port)


def test_ports_chosen_together_are_all_different():
    """One at a time, a port released by one call can come back from the next; chosen together, never."""
    for _ in range(3_000):  # one at a time, about 1 in 500 sets of 8 had a port twice (measured here)
        ports = free_ports(8)
        assert len(set(ports)) == 8


def test_ports_are_chosen_below_the_ephemeral_range_and_not_handed_out_twice():
    """Outgoing connections take local ports from the kernel's ephemeral range: a server's port chosen there can
    be taken before the server binds it (a Kafka broker's, in a clean-clone run)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    first, second = free_ports(50), free_ports(50)
    assert all(20_000 <= p < min(low, 32_768) for p in first + second)
    assert not set(first) & set(second)


def test_port_open_sees_a_listener(listener):
    assert port_open("127.0.0.1", listener)


def test_ensure_ports_free_names_the_busy_port(listener):
    free = free_port()
    with pytest.raises(ServiceError) as info:
        ensure_ports_free("kafka", "127.0.0.1", [free, listener])
    message = str(info.value)
    assert "kafka" in message
    assert f"[{listener}]" in message  # only the busy one is listed
    assert str(free) not in message


def test_ensure_ports_free_passes_when_nothing_listens():
    ensure_ports_free("clickhouse", "127.0.0.1", [free_port(), free_port()])
    ensure_ports_free("nothing", "127.0.0.1", [])


# ------------------------------------------------------------------------------------------------------
# PID files
# ------------------------------------------------------------------------------------------------------


def test_spawn_read_pid_and_stop(tmp_path):
    workdir = tmp_path / "sleeper"
    pid = spawn("sleeper", ["sleep", "30"], workdir)
    pid_file = workdir / "pid"
    try:
        assert pid_file.read_text() == str(pid)
        assert (workdir / "sleeper.out").exists()
        assert pid_alive(pid)
        assert read_pid(pid_file) == pid
        assert os.getpgid(pid) == pid  # its own process group: stopping it never reaches ours

        assert stop_pid_file(pid_file, grace=5.0) is True
        assert not pid_alive(pid)
        assert not pid_file.exists()
        assert read_pid(pid_file) is None
    finally:
        if pid_alive(pid):  # only the process this test started, by its id
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_spawn_passes_extra_environment(tmp_path):
    pid = spawn("env", ["sh", "-c", 'echo "value=$ENGAGE_UNIT_MARK"'], tmp_path, env={"ENGAGE_UNIT_MARK": "m-42"})
    deadline = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < deadline:  # pid_alive reaps the exited child
        time.sleep(0.01)
    assert not pid_alive(pid)
    assert (tmp_path / "env.out").read_text().strip() == "value=m-42"


def test_stop_pid_file_without_a_file_stops_nothing(tmp_path):
    assert stop_pid_file(tmp_path / "pid", grace=0.1) is False


def test_stop_pid_file_with_a_stale_pid_removes_the_file(tmp_path):
    pid_file = tmp_path / "pid"
    pid_file.write_text(str(reaped_pid()))
    assert stop_pid_file(pid_file, grace=0.1) is False
    assert not pid_file.exists()


def test_read_pid_of_a_missing_file_is_none(tmp_path):
    assert read_pid(tmp_path / "no-such-pid") is None


@pytest.mark.parametrize("text", ["", "not-a-pid", "12abc", "1.5", "\n"])
def test_read_pid_of_garbage_is_none(tmp_path, text):
    pid_file = tmp_path / "pid"
    pid_file.write_text(text)
    assert read_pid(pid_file) is None


def test_read_pid_of_an_exited_process_is_none(tmp_path):
    pid_file = tmp_path / "pid"
    pid_file.write_text(str(reaped_pid()))
    assert read_pid(pid_file) is None


def test_read_pid_tolerates_surrounding_whitespace(tmp_path):
    pid_file = tmp_path / "pid"
    pid_file.write_text(f"  {os.getpid()}\n")
    assert read_pid(pid_file) == os.getpid()


def test_read_pid_refuses_pid_zero(tmp_path: Path):
    pid_file = tmp_path / "pid"
    pid_file.write_text("0")
    assert read_pid(pid_file) is None  # never call stop_pid_file on this file: it would signal pytest


def test_waiting_for_a_worker_that_exited_fails_at_once_with_its_exit_code() -> None:
    from engage.children import wait_for_worker

    proc = subprocess.Popen(["python3", "-c", "import sys; sys.exit(75)"])
    proc.wait()
    # The timeout's own error would say "processed ... in 600 s": this one comes from the first look.
    with pytest.raises(RuntimeError, match="exited with 75 after 0 of 1,000 events"):
        wait_for_worker(f"http://127.0.0.1:{free_port()}", 1_000, timeout=600, proc=proc)
