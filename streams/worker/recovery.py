"""Keeping Faust's consumer honest about offsets: what it skipped, where to resume, commits that stuck, and a
group that assigned nothing. Each is a Faust behaviour the chaos suite or a clean clone caught; the Faust
internals they touch are in ``streams.worker.faust_internals``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.types import TP

from kafka_io.admin import group_assigned_partitions
from kafka_io.client import Kafka
from streams.worker import faust_internals as fi
from streams.worker import metrics as m
from streams.worker.core.durability import exit_to_be_restarted
from streams.worker.core.engine import WorkerCore
from streams.worker.core.ports import Message
from streams.worker.gaps import StalledTails, missing_offsets, read_offsets

log = logging.getLogger(__name__)


def _span(offsets: list[int]) -> str:
    """A list of offsets for a log line: short lists whole, long ones as first..last (count)."""
    return str(offsets) if len(offsets) <= 10 else f"[{offsets[0]}..{offsets[-1]}] ({len(offsets)})"


def _highwater(consumer: Any, tp: TP) -> int | None:
    """The partition's end offset from the consumer's last fetch, or None (not fetched yet, or not assigned)."""
    try:
        end = consumer.highwater(tp)
    except Exception:  # assignment changing under us
        return None
    return int(end) if end is not None else None


class OffsetRecovery:
    def __init__(
        self, app: faust.App, core: WorkerCore, *, bootstrap: Kafka, topic: str, group: str, lost_grace_seconds: float
    ) -> None:
        self.app = app
        self.core = core
        self.bootstrap = bootstrap
        self.topic = topic  # the events topic
        self.group = group
        self._stalled = StalledTails(lost_grace_seconds)
        self._idle_uncommitted: dict[int, tuple[int, int]] = {}  # partition -> (committed, position), see unstick
        self._unassigned_checks = 0  # consecutive assignment checks that found no partition here

    def _tp(self, partition: int) -> TP:
        return TP(self.topic, partition)

    # --- messages the consumer skipped ------------------------------------------------------------------------------
    async def read_skipped(self, batch: list[Message]) -> list[Message]:
        """The messages the consumer skipped before this batch (``streams.worker.gaps``), read directly."""
        offsets: dict[int, list[int]] = {}
        for message in batch:
            offsets.setdefault(message.partition, []).append(message.offset)
        found: list[Message] = []
        for partition, seen in offsets.items():
            last = await self._folded_up_to(partition)
            missing = missing_offsets(seen, last)
            if missing:
                log.warning("partition %d: the consumer skipped offsets %s (last folded %d); reading them directly",
                            partition, missing, last)  # fmt: skip
                found.extend(await self._read_directly(partition, missing))
        return found

    async def read_lost_tails(self) -> None:
        """Timer: messages that reached the consumer but never a batch, with nothing after them in their partition
        to reveal the hole (``gaps.StalledTails``), read directly and folded. Either Faust handed them to the stream
        and they vanished (its read offset is past the last folded one), or the consumer took them from Kafka and
        Faust never handed them over (its read offset is not past it, the partition's end is, and the partition is
        not paused): a fetch dropped them, and with no committed offset no seek brings them back."""
        owned = self.core.owned()
        self._stalled.keep_partitions(owned)
        async with self.core.lock:
            for partition in sorted(owned):
                tp = self._tp(partition)
                # Faust's read offset is the last offset handed to the stream, except right after a seek, where
                # it is the next one to read: never past the end of the partition (the high watermark, minus 1).
                read, end = fi.read_offset(self.app, tp), _highwater(self.app.consumer, tp)
                if end is None or fi.is_paused(self.app, tp):  # not fetched yet, or paused (a rebalance, recovery)
                    continue
                last = await self._folded_up_to(partition)
                handed = read if read is not None and read > last else None  # handed to the stream, not folded
                reached = end - 1 if handed is None else min(handed, end - 1)
                missing = self._stalled.missing(partition, last, reached, time.monotonic())
                if not missing:
                    continue
                how = (
                    "were taken from Kafka and never handed to the stream"
                    if handed is None
                    else "were handed to the stream"
                )
                log.warning("partition %d: offsets %s %s %.0f s ago and never folded; reading them directly",
                            partition, _span(missing), how, self._stalled.grace_seconds)  # fmt: skip
                messages = await self._read_directly(partition, missing)
                if messages:
                    self.core.fold(messages)
                    await self.mark_done(messages)

    async def _read_directly(self, partition: int, missing: list[int]) -> list[Message]:
        """Read ``missing`` offsets of an events partition with a plain consumer (off the event loop); exit to be
        restarted if Kafka does not give them: folding on past them would lose them."""
        try:
            read, gone = await asyncio.get_running_loop().run_in_executor(
                None, read_offsets, self.bootstrap, self.topic, partition, missing
            )
        except Exception as exc:  # Kafka unreachable: folding on past them would lose them
            exit_to_be_restarted(f"messages the consumer skipped could not be read: {exc!r}")
        if gone:
            log.warning("partition %d: offsets %s are no longer on the topic (retention)", partition, _span(gone))
        m.MESSAGES_REFETCHED.inc(len(read))
        return read

    async def mark_done(self, messages: list[Message]) -> None:
        """Tell Faust the messages read directly are done: it commits only up to the first offset it has not
        seen acknowledged, and it never saw these."""
        for message in messages:
            await fi.mark_done(self.app, self._tp(message.partition), message.offset, message.offset)

    async def _folded_up_to(self, partition: int) -> int:
        """The last offset of ``partition`` folded into the table: its stored position, else the one before the
        committed offset, else (nothing folded or committed yet) the one before its earliest offset on the topic,
        where the consumer starts (``auto_offset_reset=earliest``): a first batch that does not begin there means
        the consumer skipped the partition's first messages."""
        position = self.core.position(partition)
        if position is not None:
            return position
        committed = self.core.ownership.committed(partition)
        if committed is not None:
            return committed - 1
        return await self._earliest_offset(partition) - 1

    async def _earliest_offset(self, partition: int) -> int:
        tp = self._tp(partition)
        try:
            earliest = await self.app.consumer.earliest_offsets(tp)
        except Exception as exc:  # Kafka unreachable: without it a skipped first message would go unseen
            exit_to_be_restarted(f"the earliest offset of partition {partition} could not be read: {exc!r}")
        return int(earliest.get(tp) or 0)

    # --- after a restore --------------------------------------------------------------------------------------------
    async def resume_from_positions(self) -> None:
        """After a restore, resume each owned partition where the restored state says it got to, instead of at
        the committed offset: if a commit ever got ahead of the state (a changelog write lost in a crash while
        Kafka was restarting), the events in between are folded again rather than lost; events the records
        already hold are skipped by their ``source_offset`` and event ids, so nothing counts twice."""
        moved = 0
        for partition in sorted(self.core.owned()):
            position = self.core.position(partition)
            if position is None:
                continue  # nothing processed in this partition yet: Faust's committed offset (or earliest) it is
            tp = self._tp(partition)
            committed = self.core.ownership.committed(partition)
            if committed is not None and position + 1 < committed:
                # Should not happen (offsets are acknowledged once folded and committed once durable); if it
                # does, the messages in between are folded again rather than lost. Said loudly: seeking back
                # while Faust's fetcher already runs is what the chaos suite saw go wrong.
                log.warning("partition %d: the restored state ends at offset %d, the committed offset is %d; "
                            "folding the messages in between again", partition, position, committed)  # fmt: skip
            await self.app.consumer.seek(tp, position + 1)
            # Moving past the committed offset: tell Faust the offsets in between are done, or it never commits
            # this partition again (it commits only up to the first offset it has not seen acknowledged).
            await fi.mark_done(self.app, tp, 0, position)
            moved += 1
        if moved:
            log.info("resumed %d partitions from the positions in the restored state", moved)

    # --- commits and assignments that stuck -------------------------------------------------------------------------
    async def unstick_commits(self) -> None:
        """Let Faust commit again when the head of its acknowledged offsets lost touch with the committed one.

        Faust removes the offsets it is about to commit from its list before the commit succeeds; when the commit
        then fails (Kafka restarting, a rebalance) the list starts above the committed offset and Faust never
        commits that partition again (chaos runs: all events stored, consumer lag stuck). The offsets in
        between were processed (the partition's stored position is at or past them), so they are marked done.
        When no new message came after the failed commit the list is empty and Faust has nothing to commit
        with: if that lasts a whole tick, the stored position is put back in the list (the last chaos case).
        The commit itself still goes through the flush that waits for every changelog write and output.
        """
        idle = self._idle_uncommitted
        self._idle_uncommitted = {}
        for partition in self.core.owned():
            tp = self._tp(partition)
            acked, committed = fi.acknowledged_offsets(self.app, tp), self.core.ownership.committed(partition)
            position = self.core.position(partition)  # the last offset processed
            if committed is None or position is None:
                continue
            log.info("partition %d: committed %s, processed to %d, acked %s..%s (%d), read to %s, paused %s",
                     partition, committed, position, min(acked) if acked else "-", max(acked) if acked else "-",
                     len(acked), fi.read_offset(self.app, tp), fi.is_paused(self.app, tp))  # fmt: skip
            if acked:
                if min(acked) - committed > 1 and position >= min(acked) - 1:
                    await fi.mark_done(self.app, tp, committed, min(acked) - 1)
                    m.COMMITS_UNSTUCK.inc()
            elif position >= committed:  # processed, not committed, and nothing left in Faust's list to do it
                if idle.get(partition) == (committed, position):
                    await fi.mark_done(self.app, tp, committed, position - 1)
                    fi.mark_acknowledged(self.app, tp, position)
                    m.COMMITS_UNSTUCK.inc()
                else:
                    self._idle_uncommitted[partition] = (committed, position)  # one tick's grace: a commit running

    async def watch_assignment(self) -> None:
        """Make sure the group did not settle on assigning nothing to anyone.

        Faust's assignor skips topics its cluster metadata does not show: a worker elected group leader just
        after Kafka restarted assigned no partition to any member, and the group stayed like that (a chaos
        run in the test suite). When this worker has held nothing for a while and the group holds nothing of
        the events topic either, it asks for a new rebalance; if that does not help, it exits to be restarted.
        """
        if self.core.owned():
            self._unassigned_checks = 0
            return
        self._unassigned_checks += 1
        if self._unassigned_checks < 3:
            return
        try:
            held = await asyncio.get_running_loop().run_in_executor(
                None, group_assigned_partitions, self.bootstrap, self.group, self.topic
            )
        except Exception:  # Kafka unreachable or the group rebalancing: nothing to conclude yet
            return
        if held:
            self._unassigned_checks = 0  # more workers than partitions: this one waits, as it should
            return
        if self._unassigned_checks >= 6:
            exit_to_be_restarted("the consumer group holds no partition of the events topic after a rebalance")
        log.warning("the consumer group holds no partition of %s: asking for a new rebalance", self.topic)
        m.REBALANCES_REQUESTED.inc()
        fi.request_rejoin(self.app)
