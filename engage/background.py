"""Services `make demo` leaves running (collector, worker, sinks, notify, desk, leaderboards, dashboards, the
trickle of traffic): detached `engage` processes, each recorded in ``run_dir/services/<name>/pid``, stopped by
those PIDs by `make down` (``stop_all``) or by the next `make demo` before it starts its own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from config.settings import Settings, settings_env
from deploy.process import pid_alive, read_pid, spawn, stop_pid_file


def services_dir(settings: Settings) -> Path:
    return settings.run_dir / "services"


def start(name: str, args: Sequence[str], settings: Settings) -> int:
    """``engage <args>`` detached in its own session, output to ``services/<name>/<name>.out``; its PID recorded."""
    workdir = services_dir(settings) / name
    return spawn(name, [sys.executable, "-m", "engage.cli", *args], workdir, settings_env(settings))


def log_of(name: str, settings: Settings) -> Path:
    return services_dir(settings) / name / f"{name}.out"


def wait_http(name: str, url: str, pid: int, settings: Settings, timeout: float = 90.0) -> None:
    """Wait until ``url`` answers (any status); fail early, naming the log, if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"{name} exited during start-up; see {log_of(name, settings)}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer on {url} within {timeout:.0f} s; see {log_of(name, settings)}")


def running(settings: Settings) -> dict[str, int]:
    """The recorded services whose process is alive: name -> PID."""
    out = {}
    root = services_dir(settings)
    for pid_file in sorted(root.glob("*/pid")) if root.exists() else []:
        pid = read_pid(pid_file)
        if pid is not None and pid_alive(pid):
            out[pid_file.parent.name] = pid
    return out


def stop_all(settings: Settings) -> dict[str, bool]:
    """Stop every recorded service by its PID (its process group); name -> whether something was stopped."""
    root = services_dir(settings)
    return {p.parent.name: stop_pid_file(p) for p in sorted(root.glob("*/pid"))} if root.exists() else {}


def wait_until(name: str, ready: Callable[[], bool], pid: int, settings: Settings, timeout: float = 60.0) -> None:
    """Wait until ``ready()``; fail early, naming the log, if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            raise RuntimeError(f"{name} exited during start-up; see {log_of(name, settings)}")
        if ready():
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} was not ready within {timeout:.0f} s; see {log_of(name, settings)}")
