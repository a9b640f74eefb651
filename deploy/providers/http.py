"""What the HTTP stand-ins (FCM, Twilio) share: an aiohttp application on 127.0.0.1 started in the caller's event
loop (``async with FcmServer() as fcm``), scripted answers, and the injected faults and latency."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from deploy.providers.faults import Fault, Faults, Provider
from deploy.providers.record import AcceptedLog

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Answer:
    """One scripted HTTP answer: a JSON body, or text (garbage, an HTML error page) sent as text/html."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow provider)

    async def response(self) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.body, str):
            return web.Response(text=self.body, status=self.status, headers=self.headers, content_type="text/html")
        return web.json_response(self.body, status=self.status, headers=self.headers)


def next_scripted(answers: dict[str, list[Answer]], key: str) -> Answer | None:
    """The next scripted answer for ``key`` (answers are given in turn; the last one repeats), if any."""
    script = answers.get(key)
    if not script:
        return None
    return script.pop(0) if len(script) > 1 else script[0]


class HttpServer:
    """An aiohttp application on ``127.0.0.1:port`` (0: a free one, known after start). ``record``: where
    accepted messages are written; ``faults``: injected refusals and latency. ``requests``: every request seen."""

    provider: Provider

    def __init__(self, *, port: int = 0, record: AcceptedLog | None = None, faults: Faults | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = port
        self.record = record
        self.faults = faults
        self._extra_gets: list[tuple[str, Handler]] = []
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def add_get(self, path: str, handler: Handler) -> None:
        """Serve ``GET path`` too (before start): the process's ``/healthz``."""
        self._extra_gets.append((path, handler))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def fault(self) -> Fault | None:
        """Wait the injected latency, then the injected refusal for this request, if any."""
        if self.faults is None:
            return None
        if self.faults.latency:
            await asyncio.sleep(self.faults.latency)
        return self.faults.draw(self.provider)

    async def start(self) -> None:
        app = web.Application()
        self.routes(app)
        for path, handler in self._extra_gets:
            app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
