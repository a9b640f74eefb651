"""The processors bench times a drain from its first progress; the work and the CPU are counted over the same window."""

from __future__ import annotations

import os

import pytest

from engage.bench.processors import CpuMark
from engage.bench.streams_io import drain_timing


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


def test_cpu_mark_counts_only_what_was_used_after_take():
    mark = CpuMark((os.getpid(),))
    sum(i * i for i in range(200_000))  # before take: not counted
    mark.take()
    assert mark.used() < 0.05
    sum(i * i for i in range(3_000_000))
    assert mark.used() > 0.0
    assert 0.0 <= mark.machine_busy() <= 1.0 + 1e-9
