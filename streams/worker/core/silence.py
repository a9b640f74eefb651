"""Silence is a signal: students whose last score is old are re-scored without any new event of theirs.

Live (wall clock), one pass over the local keys is spread over the whole period, a slice per tick (slice = keys x
tick / period), so no tick scans or scores everything at once and a student silent for a day is re-scored within
about a day. Replaying history on the event clock, a day may pass in a second, so each tick checks every local
student, found in the in-memory clock index (``core.clock.ClockIndex``) instead of by reading each record.
"""

from __future__ import annotations

from datetime import datetime

from processors.pipeline import ScoreRequest
from streams.worker import metrics as m
from streams.worker.core.engine import Encoded, ScoreItem, WorkerCore

# Records decoded, scored (one model call) and stored at a time in an event-clock pass.
SILENCE_CHUNK = 256


class SilencePass:
    def __init__(
        self,
        core: WorkerCore,
        *,
        tick_seconds: float,
        rescore_after_seconds: float,
        dormant_rescore_after_seconds: float,
        max_per_tick: int = 5_000,
    ) -> None:
        self.core = core
        self.tick_seconds = tick_seconds
        self.rescore_after_seconds = rescore_after_seconds
        self.dormant_rescore_after_seconds = dormant_rescore_after_seconds
        self.max_per_tick = max_per_tick
        self._keys: list[bytes] = []  # what is left of the live pass over the local keys

    def cutoff(self, now: datetime, dormant: bool) -> float:
        """Last score older than this (engine clock, epoch seconds): due for a silence re-score."""
        wait = self.dormant_rescore_after_seconds if dormant else self.rescore_after_seconds
        return now.timestamp() - wait

    async def tick(self) -> None:
        if self.core.clock.on_events:
            await self._due_now()
            return
        core = self.core
        async with core.lock:
            deferred: list[Encoded] = []
            self._slice(deferred)
            await core.store_acknowledged(deferred)

    def _slice(self, deferred: list[Encoded]) -> None:
        core = self.core
        if not self._keys:
            self._keys = core.student_keys()
            m.TABLE_USERS.set(len(self._keys))
        share = self.tick_seconds / self.rescore_after_seconds
        per_tick = max(1, int(len(self._keys) * share) + 1)
        chunk, self._keys = self._keys[:per_tick], self._keys[per_tick:]
        now = core.now()
        items: list[ScoreItem] = []
        for key in chunk:
            record = core.record(key.decode())
            if record is not None and record.clock_at <= self.cutoff(now, core.dormant(record, now.date())):
                items.append((record, ScoreRequest(key.decode(), now, "silence"), None))
        core.score_and_store(items, deferred=deferred)

    async def _due_now(self) -> None:
        """Event clock: re-score every local student whose last score is a day (of event time) old.

        In slices of ``SILENCE_CHUNK`` students: a pass decodes thousands of records, and holding them all at once
        would let them age into the garbage collector's oldest generation, whose full collections then cost as
        much as the scoring. Each slice is stored once Kafka acknowledged its outputs and the backlog is under its
        bound (``core.backpressure``), and the lock is let go between slices, so the events path and the commits
        take turns with a pass instead of waiting for all of it."""
        core = self.core
        index = core.clock_index
        async with core.lock:
            now = core.now()
            if index.entries is None:
                entries: dict[bytes, tuple[float, bool]] = {}
                for key in core.student_keys():
                    record = core.load(key)
                    if record is not None:
                        entries[key] = (record.clock_at, core.dormant(record, now.date()))
                index.entries = entries
                m.TABLE_USERS.set(len(entries))
            active_cutoff, dormant_cutoff = self.cutoff(now, False), self.cutoff(now, True)
            due = [
                k for k, (at, dormant) in index.entries.items() if at <= (dormant_cutoff if dormant else active_cutoff)
            ][: self.max_per_tick]
        for start in range(0, len(due), SILENCE_CHUNK):
            async with core.lock:
                items: list[ScoreItem] = []
                for key in due[start : start + SILENCE_CHUNK]:
                    record = core.load(key)
                    if record is None:  # the partition moved to another worker
                        index.drop(key)
                        continue
                    if record.clock_at > self.cutoff(now, core.dormant(record, now.date())):
                        continue  # re-scored on events between two slices
                    items.append((record, ScoreRequest(key.decode(), now, "silence"), None))
                deferred: list[Encoded] = []
                core.score_and_store(items, now, deferred)
                await core.store_acknowledged(deferred)
