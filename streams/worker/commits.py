"""The worker's at-least-once rule, enforced: no events offset is committed before Kafka has acknowledged
every table changelog write and every output those events caused.

Faust flushes its producer before it commits, but that flush is not enough: its buffer of changelog writes
gives up waiting after 0.1 s without progress (Kafka slow or restarting), and a write being handed to aiokafka
at that moment is in neither the buffer nor aiokafka's queue. A crash after such a commit lost those students'
newest state (the chaos suite caught it). And under a steady stream of writes its buffer is never empty, so
that flush never ends. So every changelog write is tracked from the moment Faust queues it until Kafka
acknowledges it, and the flush before a commit waits for all those queued before it.

A write Kafka never acknowledges (Faust's buffer task can die on a send error while Kafka restarts, and then
nothing it holds is ever sent) must not stall the worker forever, nor be committed past: after
``timeout_seconds`` the worker exits (code 75), and its supervisor starts it again from the state Kafka holds,
which resumes at its own position (``EngagementWorker._resume_from_positions``). It exits rather than raises:
Faust swallows an error in its commit timer and would retry the same stuck commit forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

import faust

log = logging.getLogger(__name__)


EXIT_STATE_NOT_DURABLE = 75  # EX_TEMPFAIL: start me again


def exit_to_be_restarted(reason: str) -> NoReturn:
    """Going on would lose state or stall for good: stop (code 75), to be restarted from what Kafka holds."""
    log.critical("%s; exiting so that the worker restarts from the state Kafka holds", reason)
    logging.shutdown()
    os._exit(EXIT_STATE_NOT_DURABLE)


class ChangelogWrites:
    """The changelog writes Kafka has not acknowledged yet, how many it has, and the ones that failed."""

    def __init__(self) -> None:
        self.unacknowledged: set[asyncio.Future[Any]] = set()
        self.acknowledged = 0  # ever: progress, for the backlog's stall guard (streams.worker.backpressure)
        self.failures: list[BaseException] = []

    @property
    def all_acknowledged(self) -> bool:
        return not self.unacknowledged and not self.failures


def commit_only_when_acknowledged(
    app: faust.App,
    outputs_acknowledged: Callable[[], Awaitable[None]],
    write_back: Callable[[], Awaitable[None]] | None = None,
    timeout_seconds: float = 60.0,
) -> ChangelogWrites:
    """Make ``app``'s pre-commit flush first ``write_back`` (records held in memory into the table), then wait
    for every changelog write queued until then, then for ``outputs_acknowledged``."""
    producer = app.producer
    writes = ChangelogWrites()
    unacknowledged, failures = writes.unacknowledged, writes.failures

    def settled(fut: asyncio.Future[Any]) -> None:
        unacknowledged.discard(fut)
        writes.acknowledged += 1
        if not fut.cancelled() and fut.exception() is not None:
            failures.append(fut.exception())  # type: ignore[arg-type]

    queue = producer.send_soon

    def send_soon(fut: Any) -> None:
        unacknowledged.add(fut)
        fut.add_done_callback(settled)
        queue(fut)

    step = ["starting"]

    async def everything_acknowledged() -> None:
        if write_back is not None:
            step[0] = "waiting for the records lock to write records back"
            await write_back()
        # The writes queued up to now, not the ones timers and the events path queue while this waits: under a
        # steady stream of writes the set is never empty. Waiting for it to be empty, and Faust's own flush, which
        # waits until its buffer is empty, made every commit time out after 60 s while Kafka was acknowledging
        # thousands of writes a second (an OULAD replay's silence pass, #29). Every write queued so far is in
        # ``unacknowledged`` from the moment Faust queued it, and Faust's buffer task sends them on its own.
        queued = list(unacknowledged)
        step[0] = f"waiting for {len(queued)} changelog writes"
        if queued:
            await asyncio.wait(queued)
        step[0] = "waiting for the outputs"
        await outputs_acknowledged()

    async def flush() -> None:
        try:
            await asyncio.wait_for(everything_acknowledged(), timeout_seconds)
        except TimeoutError:
            exit_to_be_restarted(
                f"changelog writes or outputs not acknowledged by Kafka in {timeout_seconds:.0f} s ({step[0]})"
            )
        except Exception as exc:  # outputs refused
            exit_to_be_restarted(f"outputs not acknowledged: {exc!r}")
        if failures:
            exit_to_be_restarted(f"{len(failures)} changelog writes failed, the first: {failures[0]!r}")

    producer.send_soon = send_soon  # type: ignore[method-assign]
    producer.flush = flush  # type: ignore[method-assign]
    return writes


def commit_past_duplicate_acknowledgements(app: faust.App) -> None:
    """Make Faust's choice of the offset to commit ignore acknowledgements it holds twice or already committed.

    Faust commits the first run of consecutive offsets in its sorted list of acknowledged ones, after adding the
    ranges marked done (``_add_gap``) to that list without looking whether they are in it already. The worker
    marks ranges done that can also be acknowledged: after a restore it resumes from its stored position and
    marks everything below it done, while Faust's fetcher, which starts before the seek, re-delivers some of
    those messages (skipped as folded, and acknowledged). Each offset then sits twice in the list, every
    duplicate ends a run, and each commit moved the offset by one or two: a clean clone's chaos run saw a
    worker 200 messages past its committed offset advance it 2 per commit, and never catch up in 240 s.
    Before Faust looks, offsets the done ranges will add, duplicates and offsets below the committed one are
    removed from the list, so each offset is in it once. ``tests/unit/test_worker_commits.py`` fails without it.
    """
    consumer: Any = app.consumer
    new_offset = consumer._new_offset

    def _new_offset(tp: Any) -> int | None:
        acked: list[int] = consumer._acked[tp]
        if acked:
            committed = consumer._committed_offset[tp]
            covered: set[int] = set()
            for interval in consumer._gap[tp].overlap(0, max(acked)):  # what Faust adds (its own query)
                covered.update(range(interval.begin, interval.end))
            kept = sorted({o for o in acked if o not in covered and (committed is None or o >= committed)})
            # Faust merges the done ranges only into a list that is not empty: then keep the last offset they
            # cover (done, and a duplicate at the end of the run ends nothing).
            acked[:] = kept or ([max(covered)] if covered else [])
        offset: int | None = new_offset(tp)
        return offset

    consumer._new_offset = _new_offset
