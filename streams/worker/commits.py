"""The worker's at-least-once rule, enforced: no events offset is committed before Kafka has acknowledged
every table changelog write and every output those events caused.

Faust flushes its producer before it commits, but that flush is not enough: its buffer of changelog writes
gives up waiting after 0.1 s without progress (Kafka slow or restarting), and a write being handed to aiokafka
at that moment is in neither the buffer nor aiokafka's queue. A crash after such a commit lost those students'
newest state (the chaos suite caught it). So every changelog write is tracked from the moment Faust queues it
until Kafka acknowledges it, and the flush before a commit waits for all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import faust


class ChangelogWriteFailed(RuntimeError):
    """A table changelog write was refused by Kafka: committing now would lose state, so the worker stops."""


def commit_only_when_acknowledged(app: faust.App, outputs_acknowledged: Callable[[], Awaitable[None]]) -> None:
    """Make ``app``'s pre-commit flush wait for every changelog write, then for ``outputs_acknowledged``."""
    producer = app.producer
    unacknowledged: set[asyncio.Future[Any]] = set()
    failures: list[BaseException] = []

    def settled(fut: asyncio.Future[Any]) -> None:
        unacknowledged.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            failures.append(fut.exception())  # type: ignore[arg-type]

    queue = producer.send_soon

    def send_soon(fut: Any) -> None:
        unacknowledged.add(fut)
        fut.add_done_callback(settled)
        queue(fut)

    faust_flush = producer.flush

    async def flush() -> None:
        await faust_flush()
        while unacknowledged:
            await asyncio.wait(list(unacknowledged))
        if failures:
            raise ChangelogWriteFailed(f"{len(failures)} changelog writes failed, the first: {failures[0]!r}")
        await outputs_acknowledged()

    producer.send_soon = send_soon  # type: ignore[method-assign]
    producer.flush = flush  # type: ignore[method-assign]
