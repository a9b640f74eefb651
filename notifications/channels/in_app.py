"""In-app messages: the message goes into the student's inbox (``notifications.inbox``: why SQLite, and what the
engagement API reads), where the app shows it and marks it read.

Every student has an inbox, so in-app is available unless the student unsubscribed from it. The item id is the
intervention id: sending the same intervention twice leaves one item (the Delivery says "already in the inbox").
The store's calls are short and blocking; they run in a thread so that a busy file (another process writing) never
stalls the event loop. A locked or busy database is ``Retryable``; a file that is not a database, or unwritable, is
``Misconfigured``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime

from notifications.channels.base import Delivery, Message, Misconfigured, Retryable, unreachable
from notifications.inbox import InboxItem, InboxStore
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName


def _now() -> datetime:
    return datetime.now(UTC)


class InAppChannel:
    """In-app delivery into an ``InboxStore``."""

    name = ChannelName.in_app
    provider = "inbox"

    def __init__(self, store: InboxStore, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.clock = clock

    def available_for(self, contact: Contact) -> bool:
        return unreachable(self.name, contact) is None

    def item(self, message: Message) -> InboxItem:
        return InboxItem(
            user_id=message.user_id,
            item_id=message.intervention_id,
            title=message.part("title"),
            body=message.part("body"),
            created_at=self.clock(),
            action_url=message.action_url,
            locale=message.locale,
            data=dict(message.data),
        )

    async def send(self, message: Message) -> Delivery:
        item = self.item(message)
        try:
            added = await asyncio.to_thread(self.store.add, item)
        except sqlite3.OperationalError as exc:  # locked, busy, disk I/O: another moment may do
            if "readonly" in str(exc) or "unable to open" in str(exc):
                raise Misconfigured(f"the inbox cannot be written: {exc}") from exc
            raise Retryable(f"the inbox is busy: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, corrupt
            raise Misconfigured(f"the inbox cannot be used: {exc}") from exc
        detail = "" if added else "already in the inbox"
        return Delivery(self.name, self.provider, f"{item.user_id}/{item.item_id}", message.user_id, detail=detail)

    async def aclose(self) -> None:
        return None
