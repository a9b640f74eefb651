"""The dashboards on uvicorn in a thread (tests and the benchmark), stopped cleanly on leaving the block."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import uvicorn

from config.settings import Settings
from dashboards.app import create_app


@contextmanager
def running(
    settings: Settings, *, clock: Callable[[], datetime] | None = None, database: str | None = None
) -> Iterator[str]:
    """Serve on 127.0.0.1:settings.dashboards_port until the block ends; yields the base URL."""
    app = (
        create_app(settings, database=database)
        if clock is None
        else create_app(settings, clock=clock, database=database)
    )
    config = uvicorn.Config(
        app, host="127.0.0.1", port=settings.dashboards_port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboards", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{settings.dashboards_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the dashboards did not start on {url}")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)
