"""The processors bench times a drain from its first progress; the work and the CPU are counted over the same window."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from engage.bench.processors import CpuMark
from engage.bench.streams_io import drain_timing, has_exited


def test_drain_timing_calls_at_first_once_at_the_first_progress():
    values = iter([0, 0, 0, 5, 7, 10])
    seen: list[float] = []
    marks: list[int] = []

    def progress() -> float:
        seen.append(next(values))
        return seen[-1]

    drain = drain_timing(progress, 10, timeout=10, at_first=lambda: marks.append(len(seen)))
    assert marks == [4], "called once, when the fourth poll saw the first progress"
    assert 0.1 <= drain.seconds < 1.0  # from that poll to the last: two more polls 50 ms apart
    # Half the work was done before the first progress was seen: not timed, so not counted either.
    assert drain.share == 0.5
    assert drain.scaled(drain.seconds) == drain.seconds * 2


def test_a_drain_over_before_its_first_progress_is_refused_not_timed_at_infinite_speed():
    with pytest.raises(RuntimeError, match="drained before it could be timed"):
        drain_timing(lambda: 10, 10, timeout=5)


def test_a_drained_process_that_exits_ends_the_wait_at_once_not_at_the_timeout():
    """A peer that crashed at start (its venv lacked a module) was waited for until the 1,800 s timeout."""
    crashed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    deadline = time.monotonic() + 10
    while not has_exited(crashed.pid) and time.monotonic() < deadline:  # a zombie: exited, not waited for yet
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=f"process {crashed.pid} exited after 0 of 10"):
        drain_timing(lambda: 0, 10, timeout=60, pids=(os.getpid(), crashed.pid))
    assert time.monotonic() - started < 5
    assert not has_exited(os.getpid())
    assert crashed.wait() == 3


def test_cpu_mark_counts_only_what_was_used_after_take():
    mark = CpuMark((os.getpid(),))
    sum(i * i for i in range(200_000))  # before take: not counted
    mark.take()
    assert mark.used() < 0.05
    sum(i * i for i in range(3_000_000))
    assert mark.used() > 0.0
    assert 0.0 <= mark.machine_busy() <= 1.0 + 1e-9


def test_a_lead_the_worker_counted_is_added_instead_of_scaling_from_the_rest():
    """A worker draining a backlog in gathers of 500 messages folds 40 % of the drain before its count first moves:
    its own count of that work (fold seconds and CPU, read at the first progress) is added, the share stays 1."""
    values = iter([0, 0, 4, 7, 10])
    leads: list[int] = []

    def lead() -> tuple[float, float]:
        leads.append(1)
        return 3.0, 2.5

    drain = drain_timing(lambda: next(values), 10, timeout=10, lead=lead)
    assert leads == [1], "read once, at the first progress"
    assert drain.share == 1.0 and drain.lead_cpu == 2.5
    assert 3.05 <= drain.seconds < 4.0  # the lead's 3 s plus two polls 50 ms apart
    assert drain.scaled(drain.seconds) == drain.seconds
