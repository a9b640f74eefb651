"""Run real `engage worker` processes for integration tests, and read what they produce."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from config.settings import PROJECT_ROOT, Settings, settings_env

SERVER_KEY = {"Authorization": "Bearer sk_demo_backend"}


class WorkerProcess:
    def __init__(
        self, settings: Settings, port: int, log: Path, loglevel: str = "warn", python: list[str] | None = None
    ) -> None:
        """``python``: arguments for the interpreter instead of ``-m engage.cli`` (a script that changes the worker
        before running ``engage worker``, e.g. a consumer that skips messages)."""
        self.settings = settings.model_copy(update={"worker_web_port": port})
        self.port = port
        self.log = log
        self.loglevel = loglevel
        self.python = python or ["-m", "engage.cli"]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        env = {**os.environ, **settings_env(self.settings)}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, *self.python, "worker", "--loglevel", self.loglevel],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"worker on {self.port} did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stacks(self, wait: float = 2.0) -> str:
        """What the worker is doing: every thread's and asyncio task's stack, which mode's worker writes to its log
        on SIGUSR1 (``mode.utils.logging.cry``); for a failing test's message when a worker seems stuck."""
        if self.proc is None or self.proc.poll() is not None:
            return "(the worker is not running)"
        before = self.log.stat().st_size
        self.proc.send_signal(signal.SIGUSR1)
        time.sleep(wait)
        with self.log.open("rb") as log:
            log.seek(before)
            return log.read(200_000).decode(errors="replace")

    def engagement(self, user_id: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.get(f"{self.url}/v1/users/{user_id}/engagement", headers=headers or SERVER_KEY, timeout=10)


@contextmanager
def workers(settings: Settings, ports: list[int], log_dir: Path) -> Iterator[list[WorkerProcess]]:
    procs = [WorkerProcess(settings, port, log_dir / f"worker-{port}.log") for port in ports]
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        for p in procs:
            p.stop()


def wait_for(predicate: Any, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
