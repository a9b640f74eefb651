"""The worker's consumer lets the broker hold a fetch only as long as the setting says (Faust fixes 1.5 s)."""

from __future__ import annotations

import asyncio

import faust

from streams.worker.faust_internals import fetch_within


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
