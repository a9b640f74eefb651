"""Intake slowed to what Kafka acknowledges, instead of a backlog that grows until the worker gives up.

Every student record the worker writes is a changelog message, queued in Faust's producer buffer until aiokafka
sends it, and every risk update, intervention and milestone is a message on the outputs producer. When the worker
wrote faster than Kafka acknowledged, the queue grew without bound: replaying OULAD at a day per second, the
event-clock silence pass re-scores and rewrites every known student (thousands of ~5 KB records) each replayed
day, Faust's buffer grew by ~1,000 writes a second, and a commit, which waits for the writes before it, gave up
after 60 s and the worker exited (code 75), at every replay pace.

So the events path and the timers wait here before they write more, until the backlog is under a bound. The
events path holds its batch meanwhile; Faust's buffers fill and its consumer stops fetching, so the topic's lag
grows instead of the worker's memory, and falls again once Kafka catches up. A backlog that makes no progress at
all for ``stall_seconds`` means Kafka is really gone: the worker exits to be restarted, as the commit guard does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from streams.worker import metrics as m
from streams.worker.core.durability import ChangelogWrites, exit_to_be_restarted


class Backlog:
    """The worker's writes Kafka has not acknowledged: Faust's changelog writes and our outputs."""

    def __init__(
        self,
        writes: ChangelogWrites,
        outputs_in_flight: Callable[[], int],
        outputs_delivered: Callable[[], int],
        limit: int,
        stall_seconds: float = 60.0,
        poll_seconds: float = 0.01,
    ) -> None:
        self.writes = writes
        self.outputs_in_flight = outputs_in_flight
        self.outputs_delivered = outputs_delivered
        self.limit = limit
        self.stall_seconds = stall_seconds
        self.poll_seconds = poll_seconds

    @property
    def size(self) -> int:
        return len(self.writes.unacknowledged) + self.outputs_in_flight()

    def _progress(self) -> int:
        return self.writes.acknowledged + self.outputs_delivered()

    async def ebb(self) -> float:
        """Wait until at most ``limit`` writes are unacknowledged; the seconds waited. Exits the process (to be
        restarted) when nothing at all is acknowledged for ``stall_seconds``."""
        size = self.size
        m.UNACKNOWLEDGED_WRITES.set(size)
        if size <= self.limit:
            return 0.0
        started = moved_at = time.monotonic()
        progress = self._progress()
        while self.size > self.limit:
            await asyncio.sleep(self.poll_seconds)
            now, seen = time.monotonic(), self._progress()
            if seen != progress:
                progress, moved_at = seen, now
            elif now - moved_at > self.stall_seconds:
                exit_to_be_restarted(
                    f"{self.size} writes waiting for Kafka and none acknowledged in {self.stall_seconds:.0f} s"
                )
        waited = time.monotonic() - started
        m.BACKPRESSURE_SECONDS.inc(waited)
        return waited
