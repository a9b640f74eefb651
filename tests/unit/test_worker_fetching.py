"""The worker's consumer fetching: the broker holds a fetch only as long as the setting says (Faust fixes 1.5 s),
and a fetch hands over only partitions that were active when it was asked."""

from __future__ import annotations

import asyncio
from functools import partial
from types import SimpleNamespace
from typing import Any

import faust
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition as KafkaTP
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.worker.faust_internals import fetch_only_partitions_active_when_asked, fetch_within


def test_the_consumer_faust_creates_waits_at_most_the_setting() -> None:
    async def create() -> int:
        app = faust.App("fetching-test", broker="kafka://127.0.0.1:1", web_enabled=False)
        fetch_within(app, 100)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(create()) == 100


def test_without_it_faust_holds_fetches_for_one_and_a_half_seconds() -> None:
    """The reason for the module: if Faust ever changes its default, this says the override may go."""

    async def create() -> int:
        app = faust.App("fetching-test-default", broker="kafka://127.0.0.1:1", web_enabled=False)
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # type: ignore[attr-defined]
        return int(consumer._fetch_max_wait_ms)

    assert asyncio.run(create()) == 1500


# --- a fetch asked while the active partitions change (faust_internals.fetch_only_partitions_active_when_asked) ---


class _Records:
    """What aiokafka keeps of one fetch response: the records of one partition, consumed in order."""

    def __init__(self, offsets: list[int]) -> None:
        self._offsets = iter(offsets)
        self.next_fetch_offset = offsets[0]

    def __iter__(self) -> _Records:
        return self

    def __next__(self) -> int:
        offset = next(self._offsets)
        self.next_fetch_offset = offset + 1
        return offset


def _prefetched() -> tuple[Any, Any, Any, Any]:
    """aiokafka's own fetcher code and subscription state, holding a changelog's and an events partition's
    prefetched records: (Faust's consumer thread, the aiokafka consumer, the events partition, its state)."""
    subscriptions = SubscriptionState()
    changelog, events = KafkaTP("w-user-state-changelog", 0), KafkaTP("w.events.v1", 0)
    subscriptions.assign_from_user({changelog, events})
    assignment = subscriptions.subscription.assignment
    for tp in (changelog, events):
        assignment.state_value(tp).seek(0)
    fetcher = SimpleNamespace(_subscriptions=subscriptions, _notify=lambda _: None, _wait_consume_future=None,
                              _closed=False)  # fmt: skip
    fetcher._records = {
        changelog: FetchResult(changelog, assignment=assignment, partition_records=_Records([0, 1]), backoff=0),
        events: FetchResult(events, assignment=assignment, partition_records=_Records([0, 1, 2]), backoff=0),
    }
    fetcher.fetched_records = partial(Fetcher.fetched_records, fetcher)
    consumer = SimpleNamespace(_fetcher=fetcher, _closed=False)
    thread = SimpleNamespace(consumer=SimpleNamespace(flow_active=True))
    return thread, consumer, events, assignment.state_value(events)


def test_without_it_a_fetch_that_finds_no_active_partition_drains_every_partition() -> None:
    """The reason for the patch, in aiokafka's and Faust's own code: an empty set reads as "every partition", and
    the events are consumed (their position moves on) although Faust will drop them as not active."""
    unpatched = AIOKafkaConsumerThread.__dict__["_fetch_records"]
    original = getattr(unpatched, "__wrapped__", unpatched)

    async def fetch() -> tuple[Any, int]:
        thread, consumer, events, state = _prefetched()
        drained = await original(thread, consumer, set(), timeout=0)
        return drained.get(events), state.position

    assert asyncio.run(fetch()) == ([0, 1, 2], 3)


def test_a_fetch_asked_with_no_active_partition_drains_nothing() -> None:
    fetch_only_partitions_active_when_asked()
    fetch_records = AIOKafkaConsumerThread._fetch_records

    async def fetches() -> None:
        thread, consumer, events, state = _prefetched()
        assert await fetch_records(thread, consumer, set(), timeout=0) == {}
        assert state.position == 0  # still there for the fetch that asks for it
        changelog_only = {tp for tp in consumer._fetcher._records if tp != events}
        drained = await fetch_records(thread, consumer, changelog_only, timeout=0)
        assert list(drained) == list(changelog_only) and state.position == 0
        assert await fetch_records(thread, consumer, {events}, timeout=0) == {events: [0, 1, 2]}

    asyncio.run(fetches())
