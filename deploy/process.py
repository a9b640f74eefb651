"""Start, find and stop a local server process by the PID file it leaves in its own directory.

The steps of the one server launcher (``deploy.server``), so `make up`, `make down`, the demo and the test
fixtures all manage services the same way: only processes we started (recorded PID) are ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be installed, started or reached; the message says which and why."""


@dataclass(frozen=True)
class Started:
    name: str
    pid: int
    seconds_to_ready: float
    already_running: bool


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists": reap it if we can.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    # 0 and negatives name process groups (ours included) for os.kill: never a recorded server.
    return pid if pid > 0 and pid_alive(pid) else None


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def ensure_ports_free(name: str, host: str, ports: Sequence[int]) -> None:
    """Refuse to start over a port someone else holds: we would report *their* server as ours."""
    busy = [p for p in ports if port_open(host, p)]
    if busy:
        raise ServiceError(
            f"cannot start {name}: port(s) {busy} on {host} are in use by another process "
            "(stop it, or choose other ports with ENGAGE_* settings)"
        )


def free_port() -> int:
    """A free TCP port on loopback (for tests that must not clash with anything running)."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` different free TCP ports on loopback, for servers that will bind them later.

    - Below the kernel's range of ephemeral ports: an outgoing connection takes its local port from that range, and
      one took the port a Kafka broker was about to bind (a clean-clone run: "Address already in use" for its
      SCRAM listener, chosen while a ClickHouse cluster was connecting to its ZooKeeper).
    - Not one of the last few thousand this process handed out: ports released by one call could come back from
      the next (a chaos run gave ClickHouse and a worker the same port).
    - Each bound once to see it is free now, all held until all are chosen.
    Above 20,000, clear of the engine's default ports (16066-19093)."""
    span = _server_ports()
    if len(span) < 1_000:  # a kernel whose ephemeral range starts low: the kernel's choice, as before
        return _ephemeral_ports(count)
    socks: list[socket.socket] = []
    chosen: list[int] = []
    try:
        for _ in range(count * 50):
            if len(chosen) == count:
                break
            port = _RANDOM.choice(span)
            if port in _HANDED_OUT or port in chosen:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            socks.append(sock)
            chosen.append(port)
        if len(chosen) < count:
            raise ServiceError(f"no {count} free ports found between {span.start} and {span.stop}")
        for port in chosen:
            _HANDED_OUT[port] = None
        while len(_HANDED_OUT) > _REMEMBERED:
            del _HANDED_OUT[next(iter(_HANDED_OUT))]  # the oldest: long bound by its server, or never used
        return chosen
    finally:
        for sock in socks:
            sock.close()


_HANDED_OUT: dict[int, None] = {}  # the ports handed out last, oldest first
_REMEMBERED = 4_000
_RANDOM = random.Random()


def _server_ports() -> range:
    """20,000 up to the first ephemeral port (Linux: ``ip_local_port_range``, 32768 by default)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32_768
    return range(20_000, min(low, 32_768))


def _ephemeral_ports(count: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def spawn(name: str, argv: Sequence[str], workdir: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached in its own session, output to ``workdir/<name>.out``; record its PID."""
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / f"{name}.out").open("ab") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            list(argv),
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    (workdir / "pid").write_text(str(proc.pid))
    return proc.pid


def wait_ready(name: str, pid: int, probe: Callable[[], bool], timeout: float, log: Path) -> float:
    """Poll ``probe`` until it answers True; fail early and show the log tail if the process died."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not pid_alive(pid):
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise ServiceError(f"{name} exited during start-up; last log lines:\n{tail}")
        if probe():
            return time.monotonic() - start
        time.sleep(0.05)
    raise ServiceError(f"{name} was not ready after {timeout:.0f} s (see {log})")


def stop_pid_file(pid_file: Path, grace: float = 20.0) -> bool:
    """SIGTERM the recorded process group, SIGKILL after ``grace`` seconds. True if something was stopped."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        while pid_alive(pid):
            time.sleep(0.05)
    pid_file.unlink(missing_ok=True)
    return True
