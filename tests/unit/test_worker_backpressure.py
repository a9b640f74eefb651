"""The worker's backlog bound (streams.worker.core.backpressure) and the commit's wait for the writes queued before it
(streams.worker.faust_internals): asyncio only, no Kafka."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streams.worker.core.backpressure import Backlog
from streams.worker.core.durability import ChangelogWrites


def _writes(n: int) -> tuple[ChangelogWrites, list[asyncio.Future[Any]]]:
    writes = ChangelogWrites()
    futures = [asyncio.get_running_loop().create_future() for _ in range(n)]
    writes.unacknowledged.update(futures)
    return writes, futures


def _acknowledge(writes: ChangelogWrites, fut: asyncio.Future[Any]) -> None:
    fut.set_result(None)
    writes.unacknowledged.discard(fut)
    writes.acknowledged += 1


def test_under_the_bound_nothing_waits() -> None:
    async def run() -> float:
        writes, _ = _writes(5)
        return await Backlog(writes, lambda: 3, lambda: 0, limit=10).ebb()

    assert asyncio.run(run()) == 0.0


def test_over_the_bound_it_waits_until_kafka_acknowledges_enough() -> None:
    async def run() -> tuple[float, int]:
        writes, futures = _writes(10)
        backlog = Backlog(writes, lambda: 0, lambda: 0, limit=4, poll_seconds=0.001)

        async def kafka() -> None:
            for fut in futures:
                await asyncio.sleep(0.01)
                _acknowledge(writes, fut)

        acks = asyncio.ensure_future(kafka())
        waited = await backlog.ebb()
        left = len(writes.unacknowledged)
        await acks
        return waited, left

    waited, left = asyncio.run(run())
    assert waited > 0 and left == 4  # released as soon as the backlog was at the bound, not when it was empty


def test_outputs_in_flight_count_too() -> None:
    async def run() -> None:
        in_flight = [50]
        backlog = Backlog(ChangelogWrites(), lambda: in_flight[0], lambda: 50 - in_flight[0], 10, poll_seconds=0.001)

        async def delivered() -> None:
            while in_flight[0] > 0:
                await asyncio.sleep(0.001)
                in_flight[0] -= 5

        task = asyncio.ensure_future(delivered())
        await backlog.ebb()
        assert in_flight[0] <= 10
        await task

    asyncio.run(run())


def test_a_backlog_that_never_moves_ends_the_worker_to_be_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[str] = []

    def exit_instead(reason: str) -> None:
        exits.append(reason)
        raise SystemExit(75)

    monkeypatch.setattr("streams.worker.core.backpressure.exit_to_be_restarted", exit_instead)

    async def run() -> None:
        writes, _ = _writes(3)
        await Backlog(writes, lambda: 0, lambda: 0, limit=1, stall_seconds=0.05, poll_seconds=0.005).ebb()

    with pytest.raises(SystemExit):
        asyncio.run(run())
    assert exits and "none acknowledged" in exits[0]


def test_a_commit_waits_for_the_writes_queued_before_it_not_for_those_queued_while_it_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a steady stream of writes the set of unacknowledged ones is never empty: a commit that waited for it
    to be empty timed out after 60 s while Kafka acknowledged thousands a second (an OULAD replay, #29)."""
    from types import SimpleNamespace

    from streams.worker.faust_internals import commit_only_when_acknowledged

    def exit_instead(reason: str) -> None:
        raise SystemExit(reason)

    monkeypatch.setattr("streams.worker.faust_internals.exit_to_be_restarted", exit_instead)

    async def run() -> int:
        queued: list[asyncio.Future[Any]] = []

        async def faust_flush() -> None:
            return None

        producer = SimpleNamespace(send_soon=queued.append, flush=faust_flush)
        app: Any = SimpleNamespace(producer=producer)

        async def outputs() -> None:
            return None

        commit_only_when_acknowledged(app, outputs, timeout_seconds=2.0)
        loop = asyncio.get_running_loop()
        for _ in range(3):
            app.producer.send_soon(loop.create_future())
        before = list(queued)

        async def steady_writes_and_kafka() -> None:
            for _ in range(400):  # a new write every 5 ms, each acknowledged 20 ms later: never none in flight
                fut = loop.create_future()
                app.producer.send_soon(fut)
                loop.call_later(0.02, fut.set_result, None)
                await asyncio.sleep(0.005)

        writer = asyncio.ensure_future(steady_writes_and_kafka())
        for fut in before:
            loop.call_later(0.05, fut.set_result, None)
        await app.producer.flush()
        in_flight_after = sum(not f.done() for f in queued)
        writer.cancel()
        return in_flight_after

    assert asyncio.run(run()) > 0  # returned while newer writes were still in flight
