"""Where the pages' figures come from: the named queries (``analytics.runner.run``) and the worker's and desk's APIs.

Every read a page makes is a ``Panel``: its rows, or the error that stopped it, so one failing query shows its error
in its own panel while the rest of the page renders. ClickHouse is read through clickhouse-driver in worker threads
(one connection per thread: a connection serves one query at a time); the APIs through httpx with the server key
from the settings, never from the browser.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from starlette.concurrency import run_in_threadpool

from access.auth import parse_pair
from analytics.runner import run
from config.settings import Settings


@dataclass
class Panel:
    """One panel's data: ``rows`` when it worked, else ``error`` (what the page shows in that panel only)."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(exc: BaseException) -> str:
    """The error in one line: ClickHouse's message spans lines and ends in a stack trace, which is left out."""
    text = " ".join(str(exc).split("Stack trace")[0].split())
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


async def guarded(name: str, read: Callable[[], Awaitable[list[dict[str, Any]]]]) -> Panel:
    """Run one panel's read; any failure becomes the panel's error instead of the page's."""
    try:
        return Panel(name, await read())
    except Exception as exc:
        return Panel(name, error=_describe(exc))


class Warehouse:
    """Named queries against the engine's database, one clickhouse-driver connection per thread."""

    def __init__(self, settings: Settings, database: str | None = None) -> None:
        self.settings = settings
        self.database = database or settings.clickhouse_database
        self._local = threading.local()

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from sinks.clickhouse.client import connect

            client = connect(self.settings, self.database)
            self._local.client = client
        return client

    def connect(self) -> Any:
        """A new connection of its own (for work on another thread than the pages', e.g. ``ModelHealth``)."""
        from sinks.clickhouse.client import connect

        return connect(self.settings, self.database)

    def records(self, name: str, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The named query's rows as dicts (blocking; a broken connection is dropped so the next call reconnects)."""
        try:
            return run(self._client(), name, dict(params or {})).records()
        except Exception:
            client = getattr(self._local, "client", None)
            self._local.client = None
            if client is not None:
                client.disconnect()
            raise

    async def panel(self, name: str, params: Mapping[str, str] | None = None, *, panel: str | None = None) -> Panel:
        return await guarded(panel or name, lambda: run_in_threadpool(self.records, name, params))

    async def call(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(client)`` in a thread with this thread's connection (the experiments readout takes a client)."""
        return await run_in_threadpool(lambda: fn(self._client()))


class ServiceError(RuntimeError):
    """The worker or desk API refused or could not be reached; the message says which and why."""


def _server_key(settings: Settings) -> str:
    if not settings.server_keys:
        raise ServiceError("no server key in the settings (ENGAGE_SERVER_KEYS): the pages cannot call the APIs")
    return parse_pair(settings.server_keys[0])[1]


class Services:
    """The worker's engagement API and the desk's API, called with the settings' server key."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.worker_url = settings.dashboards_worker_url or f"http://{settings.worker_host}:{settings.worker_web_port}"
        self.desk_url = settings.dashboards_desk_url or f"http://127.0.0.1:{settings.desk_port}"
        self._settings = settings
        self._client = client or httpx.AsyncClient(timeout=settings.dashboards_timeout_seconds)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _request(self, service: str, method: str, url: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {_server_key(self._settings)}"}
        try:
            return await self._client.request(method, url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceError(f"the {service} API at {url} cannot be reached: {_describe(exc)}") from None

    @staticmethod
    def _refused(service: str, answer: httpx.Response) -> ServiceError:
        try:
            detail = answer.json().get("detail") or answer.text
        except ValueError:
            detail = answer.text
        return ServiceError(f"the {service} API answered {answer.status_code}: {str(detail)[:300]}")

    async def engagement(self, user_id: str) -> dict[str, Any] | None:
        """The student's live state from the worker; None when the worker has seen no event of theirs."""
        answer = await self._request("worker", "GET", f"{self.worker_url}/v1/users/{_path(user_id)}/engagement")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise self._refused("worker", answer)
        body: dict[str, Any] = answer.json()
        return body

    async def recalculate(self, user_id: str) -> dict[str, Any]:
        url = f"{self.worker_url}/v1/users/{_path(user_id)}/recalculate"
        answer = await self._request("worker", "POST", url)
        if answer.status_code != 200:
            raise self._refused("worker", answer)
        body: dict[str, Any] = answer.json()
        return body

    async def intervene(self, user_id: str, intervention_type: str, reason: str) -> dict[str, Any]:
        url = f"{self.worker_url}/v1/users/{_path(user_id)}/interventions"
        answer = await self._request("worker", "POST", url, {"intervention_type": intervention_type, "reason": reason})
        if answer.status_code != 201:
            raise self._refused("worker", answer)
        body: dict[str, Any] = answer.json()
        return body

    async def outreach_items(self) -> list[dict[str, Any]]:
        """Every outreach item the desk holds (open, claimed, resolved), most urgent first."""
        answer = await self._request("desk", "GET", f"{self.desk_url}/v1/outreach?state=all&limit=5000")
        if answer.status_code != 200:
            raise self._refused("desk", answer)
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    async def outreach_item(self, intervention_id: str) -> dict[str, Any] | None:
        answer = await self._request("desk", "GET", f"{self.desk_url}/v1/outreach/{_path(intervention_id)}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise self._refused("desk", answer)
        item: dict[str, Any] = answer.json()
        return item


def _path(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")


@dataclass(frozen=True)
class Snapshot:
    """The overview's live numbers at one moment (what ``/admin/live`` sends and ``/admin`` shows)."""

    at: datetime
    active_now: int | None
    active_today: int | None
    active_week: int | None
    events_per_minute: int | None
    tiers: dict[str, int] | None  # None when they could not be read (shown as a dash, not as zeros)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "active_now": self.active_now,
            "active_today": self.active_today,
            "active_week": self.active_week,
            "events_per_minute": self.events_per_minute,
            "tiers": self.tiers,
            "error": self.error,
        }


class LiveFeed:
    """The live numbers, read from ClickHouse at most once every ``every`` seconds however many pages listen:
    every SSE client and overview render shares the newest snapshot."""

    def __init__(self, warehouse: Warehouse, clock: Callable[[], datetime], every: float) -> None:
        self.warehouse = warehouse
        self.clock = clock
        self.every = every
        self._latest: Snapshot | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.reads = 0  # ClickHouse reads so far (a test checks that listeners share them)

    async def latest(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        async with self._lock:
            if self._latest is None or loop.time() - self._read_at >= self.every:
                self._latest = await self._read()
                self._read_at = loop.time()
                self.reads += 1
            return self._latest

    async def _read(self) -> Snapshot:
        now = self.clock()
        moment = now.strftime("%Y-%m-%d %H:%M:%S")
        day = now.date().isoformat()
        live, tiers = await asyncio.gather(
            self.warehouse.panel("live_activity", {"now": moment}),
            self.warehouse.panel("tiers_over_time", {"from": day, "to": day}),
        )
        numbers = live.rows[0] if live.ok and live.rows else {}
        errors = [p.error for p in (live, tiers) if p.error]
        return Snapshot(
            at=now,
            active_now=numbers.get("active_now"),
            active_today=numbers.get("active_today"),
            active_week=numbers.get("active_week"),
            events_per_minute=numbers.get("events_per_minute"),
            tiers={str(r["tier"]): int(r["students"]) for r in tiers.rows} if tiers.ok else None,
            error="; ".join(errors) if errors else None,
        )
