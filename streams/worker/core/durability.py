"""What Kafka has made durable of the worker's writes, and the way out when it will not.

The worker commits an events offset only after Kafka acknowledged every changelog write and output those events
caused (``streams.worker.faust_internals.commit_only_when_acknowledged`` enforces it in Faust's commit path);
``ChangelogWrites`` is the count it keeps. When going on would lose state or stall for good, the worker exits
with code 75 and its supervisor starts it again from the state Kafka holds; it exits rather than raises,
because Faust swallows an error in its commit timer and would retry the same stuck commit forever.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, NoReturn

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
        self.acknowledged = 0  # ever: progress, for the backlog's stall guard (core.backpressure)
        self.failures: list[BaseException] = []

    @property
    def all_acknowledged(self) -> bool:
        return not self.unacknowledged and not self.failures

    def queued(self, fut: asyncio.Future[Any]) -> None:
        """A write handed to the producer: unacknowledged until its future settles."""
        self.unacknowledged.add(fut)
        fut.add_done_callback(self._settled)

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        self.unacknowledged.discard(fut)
        self.acknowledged += 1
        if not fut.cancelled() and fut.exception() is not None:
            self.failures.append(fut.exception())  # type: ignore[arg-type]
