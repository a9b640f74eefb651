"""The worker's 'now': the wall clock live, or the event clock when replaying history.

On the event clock 'now' is the lowest of the newest event times of the partitions this worker owns (every
partition has got that far), so a replay's partitions running at different speeds never make a student's
snapshot claim a day whose events were not processed yet. A partition idle for a while (nothing new arrives)
stops holding the clock back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class EngineClock:
    def __init__(self, mode: str, idle_seconds: float, owned: Callable[[], set[int]], max_lead_seconds: float) -> None:
        self.mode = mode  # "wall" or "event" (Settings.worker_clock)
        self.idle_seconds = idle_seconds
        # Wall clock: how far an event from the future may carry 'now' ahead (the collector's accepted skew). One
        # device whose clock runs a day ahead must not move every student's 'today' (streaks, windows) with it.
        self.max_lead = timedelta(seconds=max_lead_seconds)
        self._owned = owned
        self.watermark: datetime | None = None  # the newest event time seen anywhere
        self._partition_clock: dict[int, datetime] = {}  # newest event time per events partition
        self._partition_seen: dict[int, float] = {}  # wall time of each partition's last event batch

    @property
    def on_events(self) -> bool:
        return self.mode == "event"

    def advance(self, partition: int, newest: datetime, wall: float) -> None:
        """A batch of ``partition`` folded events up to ``newest`` (event time) at ``wall``."""
        if self.watermark is None or newest > self.watermark:
            self.watermark = newest
        known = self._partition_clock.get(partition)
        if known is None or newest > known:
            self._partition_clock[partition] = newest
        self._partition_seen[partition] = wall

    def now(self) -> datetime:
        """'Now' for signal windows: the wall clock, or in event-clock mode the low watermark of the partitions."""
        wall = datetime.now(UTC)
        if self.on_events:
            return self.low_watermark() or wall
        return max(wall, min(self.watermark, wall + self.max_lead)) if self.watermark else wall

    def low_watermark(self) -> datetime | None:
        clocks = self._partition_clock
        assigned = self._owned()
        if assigned:
            clocks = {p: t for p, t in clocks.items() if p in assigned}
        if not clocks:
            return None
        recent = time.time() - self.idle_seconds
        busy = [t for p, t in clocks.items() if self._partition_seen.get(p, 0.0) >= recent]
        return min(busy) if busy else max(clocks.values())  # all idle: everything sent has been processed


class ClockIndex:
    """Event clock only: each local student's ``clock_at`` and whether they are dormant, so a replay's silence
    pass (every tick, over all students) finds who is due without reading every record. Built from the table on
    first use (``core.silence``); until then nothing is noted."""

    def __init__(self) -> None:
        self.entries: dict[bytes, tuple[float, bool]] | None = None  # key -> (clock_at, dormant)

    @property
    def built(self) -> bool:
        return self.entries is not None

    def note(self, key: bytes, clock_at: float, dormant: bool) -> None:
        if self.entries is not None:
            self.entries[key] = (clock_at, dormant)

    def drop(self, key: bytes) -> None:
        if self.entries is not None:
            self.entries.pop(key, None)
