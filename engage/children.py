"""Child processes the demo and the benchmarks start (collector, sink, workers): started, awaited, stopped by PID,
and waited for until they caught up with what was sent."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from config.settings import PROJECT_ROOT, Settings
from sinks.positions import sink_lag


@contextmanager
def child(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` with output to ``log``; SIGTERM it (SIGKILL after 30 s) when the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            list(args), env={**os.environ, **(env or {})}, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, log: Path | None = None) -> None:
    """Wait until ``url`` answers at all (any status); fail early, naming the log, if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}" + (f"; see {log}" if log else ""))
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s" + (f"; see {log}" if log else ""))


def wait_for_worker(url: str, expected_events: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> int:
    """Wait until the worker folded at least ``expected_events`` events and its debounced re-scores ran.

    ``proc``: the worker's process; if it exits (e.g. code 75, Kafka not acknowledging its state), fail at
    once instead of waiting out ``timeout`` (an OULAD replay's is hours)."""
    deadline = time.monotonic() + timeout
    processed = 0
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"the worker exited with {proc.returncode} after {processed:,} of {expected_events:,} events"
            )
        try:
            text = httpx.get(f"{url}/metrics", timeout=2).text
            processed = int(
                sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("engage_worker_events_processed_total{")
                )
            )
        except httpx.HTTPError:
            pass
        if processed >= expected_events:
            time.sleep(2.0)  # the last debounced re-scores
            return processed
        time.sleep(0.5)
    raise RuntimeError(f"the worker processed {processed:,} of {expected_events:,} events in {timeout:.0f} s")


def wait_for_sinks(settings: Settings, timeout: float = 60.0) -> None:
    """Until every sink committed everything on its topic (the worker's outputs included)."""
    deadline = time.monotonic() + timeout
    lag = sink_lag(settings)
    while any(lag.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
        lag = sink_lag(settings)
    if any(lag.values()):
        raise RuntimeError(f"sinks still behind after {timeout:.0f} s: {lag}")
