"""The chaos run's process supervisor: starts workers and sinks, signals them on schedule, restarts the dead.

It plays the part systemd or Kubernetes plays in production: a process that exited (a SIGKILL, a SIGTERM,
or a crash while Kafka was away) is started again ``restart_delay`` seconds later, with the same settings.
Only processes it started are ever signalled, by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import PROJECT_ROOT


@dataclass
class Managed:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    died_at: float | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # return codes seen

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    def __init__(self, restart_delay: float = 1.0) -> None:
        self.restart_delay = restart_delay
        self.procs: dict[str, Managed] = {}
        self.paused = False  # while a server restarts, hold restarts back

    def add(self, name: str, argv: Sequence[str], env: dict[str, str], log: Path) -> Managed:
        managed = Managed(name, list(argv), env, log)
        self.procs[name] = managed
        self._start(managed)
        return managed

    def _start(self, m: Managed) -> None:
        m.log.parent.mkdir(parents=True, exist_ok=True)
        with m.log.open("ab") as out:
            m.proc = subprocess.Popen(
                m.argv, env={**os.environ, **m.env}, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        m.starts += 1
        m.died_at = None

    def signal(self, name: str, sig: signal.Signals) -> int | None:
        """Send ``sig`` to the process; its PID, or None when it was not running (restarting already)."""
        m = self.procs[name]
        if not m.running or m.proc is None:
            return None
        m.proc.send_signal(sig)
        return m.proc.pid

    def tick(self) -> list[str]:
        """Notice exits and restart processes that have been down for ``restart_delay``; names restarted."""
        now = time.monotonic()
        restarted = []
        for m in self.procs.values():
            if m.proc is None or m.running:
                continue
            if m.died_at is None:
                m.died_at = now
                m.exits.append(m.proc.returncode)
            elif not self.paused and now - m.died_at >= self.restart_delay:
                self._start(m)
                restarted.append(m.name)
        return restarted

    def stop_all(self, timeout: float = 30.0) -> None:
        """SIGTERM everything, SIGKILL what has not exited after ``timeout``."""
        for m in self.procs.values():
            if m.running and m.proc is not None:
                m.proc.terminate()
        deadline = time.monotonic() + timeout
        for m in self.procs.values():
            if m.proc is None:
                continue
            try:
                m.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
