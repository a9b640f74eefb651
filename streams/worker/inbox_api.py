"""The in-app inbox on the engagement API: ``GET /v1/users/{id}/inbox`` and ``POST /v1/users/{id}/inbox/{item}/read``
(registered by ``streams.worker.api``; the views only check the key and hand over to ``InboxApi``).

- The inbox is the host's SQLite file (``notifications.inbox``), which every worker on the host opens: any worker
  answers for any student without forwarding to the partition's owner (the file, not the worker's tables, holds
  the inbox), so a rebalance never makes the inbox unavailable.
- Marking an item read is the in-app channel's "opened": a ``notification_opened`` event (events topic) and an
  ``opened`` outcome, once per item. They are written and acknowledged by Kafka *before* the item is marked: if
  Kafka does not take them the answer is 503 and the item stays unread (the client retries), so a read is never
  lost. Two racing requests may both write them; the event id is the same (``notifications.tracking.reports``),
  so it is counted once, and the effectiveness query counts distinct interventions.
- ``?platform=ios|android|web`` says where it was read (the event's ``platform``; default web).
- A celebration (``notifications.celebrations``) is not an intervention: reading it only marks it read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

from config.settings import Settings
from notifications.celebrations import is_celebration
from notifications.inbox import InboxStore, SqliteInbox
from notifications.tracking.reports import report
from schemas.events import Channel, Platform
from schemas.interventions import OutcomeKind
from schemas.messages import EventBatch
from schemas.topics import TopicCatalogue
from streams.worker.core.ports import Outputs

READS = Counter("engage_inbox_reads_total", "In-app inbox items marked read through the API, by result", ["result"])
for _result in ("read", "already_read", "not_found", "unavailable"):
    READS.labels(_result)

Answer = tuple[int, dict[str, Any]]


def _now() -> datetime:
    return datetime.now(UTC)


class InboxApi:
    """The inbox endpoints' work: the store (opened on first use), and where the read events go."""

    def __init__(
        self,
        open_store: Callable[[], InboxStore],
        outputs: Outputs,
        topics: TopicCatalogue,
        acknowledged: Callable[[], Awaitable[None]],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._open_store = open_store
        self._store: InboxStore | None = None
        self.outputs = outputs
        self.topics = topics
        self.acknowledged = acknowledged
        self.clock = clock
        self.max_items = 100

    @classmethod
    def for_settings(
        cls,
        settings: Settings,
        outputs: Outputs,
        topics: TopicCatalogue,
        acknowledged: Callable[[], Awaitable[None]],
    ) -> InboxApi:
        api = cls(lambda: SqliteInbox.from_settings(settings), outputs, topics, acknowledged)
        api.max_items = settings.inbox_max_items
        return api

    async def _call(self, fn: Callable[[InboxStore], Any]) -> Any:
        if self._store is None:
            self._store = await asyncio.to_thread(self._open_store)
        store = self._store
        return await asyncio.to_thread(fn, store)

    async def inbox(self, user_id: str, query: dict[str, str]) -> Answer:
        try:
            limit = min(max(int(query.get("limit", "50")), 1), self.max_items)
        except ValueError:
            return 400, {"error": "bad_request", "detail": "limit must be a whole number"}
        unread_only = query.get("unread_only", "false").lower() in ("1", "true", "yes")
        items = await self._call(lambda s: s.items(user_id, limit=limit, unread_only=unread_only))
        unread = await self._call(lambda s: s.unread(user_id))
        return 200, {"user_id": user_id, "unread": unread, "items": [i.to_json() for i in items]}

    async def mark_read(self, user_id: str, item_id: str, query: dict[str, str]) -> Answer:
        try:
            platform = Platform(query.get("platform", "web"))
        except ValueError:
            names = ", ".join(p.value for p in Platform)
            return 400, {"error": "bad_request", "detail": f"platform must be one of {names}"}
        unread = await self._call(lambda s: s.items(user_id, limit=self.max_items, unread_only=True))
        item = next((i for i in unread if i.item_id == item_id), None)
        if item is None:
            everything = await self._call(lambda s: s.items(user_id, limit=self.max_items))
            if not any(i.item_id == item_id for i in everything):
                READS.labels("not_found").inc()
                return 404, {"error": "not_found", "detail": f"no inbox item {item_id!r} for {user_id!r}"}
            READS.labels("already_read").inc()
            return 200, {"item_id": item_id, "read": True, "newly_read": False}
        now = self.clock()
        if is_celebration(item):
            await self._call(lambda s: s.mark_read(user_id, [item_id], now))
            READS.labels("read").inc()
            return 200, {"item_id": item_id, "read": True, "newly_read": True}
        made = report(
            OutcomeKind.opened,
            intervention_id=item_id,
            user_id=user_id,
            channel=Channel.in_app,
            at=now,
            detail="inbox read",
            platform=platform,
        )
        assert made.event is not None
        batch = EventBatch(user_id=user_id, source="inbox", events=[made.event.model_copy(update={"received_at": now})])
        self.outputs.send_encoded(user_id.encode(), batch.model_dump_json().encode(), topic=self.topics.events.name)
        self.outputs.send_encoded(
            user_id.encode(), made.outcome.model_dump_json().encode(), topic=self.topics.intervention_outcomes.name
        )
        try:
            await self.acknowledged()
        except RuntimeError as exc:
            READS.labels("unavailable").inc()
            return 503, {"error": "unavailable", "detail": f"the read could not be recorded: {exc}; retry"}
        await self._call(lambda s: s.mark_read(user_id, [item_id], now))
        READS.labels("read").inc()
        return 200, {"item_id": item_id, "read": True, "newly_read": True}
