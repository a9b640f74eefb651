"""The leaderboard service as a process: the consumer and snapshot threads (``service``) beside the HTTP API
(``api``), built here so that neither of the two imports the other."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from config.settings import Settings
from kafka_io.admin import check_kafka
from kafka_io.producer import EventProducer
from leaderboards.api import create_app
from leaderboards.service import (
    SOURCE,
    Clock,
    Held,
    LeagueCloser,
    Service,
    SnapshotPublisher,
    StandingsConsumer,
    league_book,
    utc_now,
)
from schemas.topics import catalogue

log = logging.getLogger(__name__)


def build(settings: Settings, clock: Clock = utc_now) -> Service:
    held = Held(leagues=league_book(settings))
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    producer = EventProducer(settings.kafka, topics, source=SOURCE)
    closer = LeagueCloser(settings, held, producer, clock)
    app = create_app(settings, held, clock)
    config = uvicorn.Config(
        app, host=settings.bind_host, port=settings.leaderboard_port, log_level="warning", lifespan="off"
    )
    return Service(
        settings,
        held,
        StandingsConsumer(settings, held, producer, clock, closer),
        SnapshotPublisher(settings, held, producer, clock),
        producer,
        uvicorn.Server(config),
    )


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM (uvicorn's handlers) or a dying thread; the exit code."""
    check_kafka(settings.kafka)  # wrong credentials: a clear error now, not a consumer that never gets messages
    service = build(settings)
    service.start_background()
    log.info("leaderboards: API on %s, reading %s", service.url, service.consumer.topic)
    try:
        service.server.run()
    finally:
        service.shutdown()
    return 1 if service.failed else 0


@contextmanager
def running(settings: Settings, clock: Clock = utc_now, ready_timeout: float = 120.0) -> Iterator[Service]:
    """A whole service in this process, rebuilt and answering, until the block ends."""
    service = build(settings, clock)
    service.start_background()
    api = threading.Thread(target=service.server.run, name="leaderboards-api", daemon=True)
    api.start()
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            if service.failed:
                raise RuntimeError(f"the leaderboard service failed: {service.failed[0]!r}")
            try:
                if httpx.get(f"{service.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the leaderboard service did not become ready on {service.url}")
            time.sleep(0.05)
        yield service
    finally:
        service.server.should_exit = True
        api.join(timeout=10)
        service.shutdown()
