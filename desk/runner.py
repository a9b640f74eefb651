"""One desk process: the request consumer and the outbox publisher in threads, the API on uvicorn (on bind_host).

A thread that dies takes the process down (exit 1, to be restarted) instead of leaving an API whose queue no
longer fills. ``running`` is the same with uvicorn in a thread too, for tests and the demo.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import uvicorn

from config.settings import Settings
from desk.api import create_app
from desk.service import OutboxPublisher, RequestConsumer
from desk.store import Store
from kafka_io.admin import check_kafka

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Desk:
    settings: Settings
    store: Store
    consumer: RequestConsumer
    publisher: OutboxPublisher
    server: uvicorn.Server
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    failed: list[BaseException] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.desk_port}"

    def _guard(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        def run() -> None:
            try:
                target(self.stop)
            except BaseException as exc:
                log.exception("desk: the %s thread died; stopping the process", name)
                self.failed.append(exc)
                self.server.should_exit = True

        return threading.Thread(target=run, name=f"desk-{name}", daemon=True)

    def start_background(self) -> None:
        self.threads = [self._guard("consumer", self.consumer.run), self._guard("publisher", self.publisher.run)]
        for thread in self.threads:
            thread.start()

    def shutdown(self) -> None:
        self.stop.set()
        self.publisher.nudge()
        for thread in self.threads:
            thread.join(timeout=30)
        self.store.close()


def build(settings: Settings, clock: Callable[[], datetime] = _now) -> Desk:
    if (
        settings.offer_code_secret.get_secret_value()
        == Settings.model_fields["offer_code_secret"].default.get_secret_value()
    ):
        log.warning("desk: offer codes use the development secret; set ENGAGE_OFFER_CODE_SECRET (shared with notify)")
    store = Store(settings.desk_store)
    consumer = RequestConsumer(settings, store, clock=clock)
    publisher = OutboxPublisher(settings, store)
    app = create_app(settings, store, publisher, clock)
    config = uvicorn.Config(app, host=settings.bind_host, port=settings.desk_port, log_level="warning", lifespan="off")
    return Desk(settings, store, consumer, publisher, uvicorn.Server(config))


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM (uvicorn's handlers) or a dying thread; the exit code."""
    check_kafka(settings.kafka)  # wrong credentials: a clear error now, not a consumer that never gets messages
    desk = build(settings)
    desk.start_background()
    log.info("desk: API on %s, consuming %s", desk.url, desk.consumer.topics.interventions.name)
    try:
        desk.server.run()
    finally:
        desk.shutdown()
    return 1 if desk.failed else 0


@contextmanager
def running(settings: Settings, clock: Callable[[], datetime] = _now, ready_timeout: float = 30.0) -> Iterator[Desk]:
    """A whole desk in this process, its API answering, until the block ends."""
    desk = build(settings, clock)
    desk.start_background()
    api = threading.Thread(target=desk.server.run, name="desk-api", daemon=True)
    api.start()
    deadline = time.monotonic() + ready_timeout
    try:
        while True:
            try:
                if httpx.get(f"{desk.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the desk API did not answer on {desk.url}")
            time.sleep(0.05)
        yield desk
    finally:
        desk.server.should_exit = True
        api.join(timeout=10)
        desk.shutdown()
