"""The in-app inbox: each student's in-app messages, kept so that they survive restarts, read by the engagement API
(``GET /v1/users/{id}/inbox``, mark read) and written by the in-app channel.

Behind a small interface (``InboxStore``: add, items, unread, mark_read, erase), with one store today: SQLite, one
file per host (``Settings.inbox``, default ``run_dir/inbox.sqlite3``), in WAL mode.

Why SQLite, and what was weighed:

- What reads it. The engagement API runs in every worker; a request for a student is forwarded to the worker that
  owns the student's partition, so each read is a point lookup by user id, at API rates (p99 < 100 ms is the
  target), and "mark read" is a write that the next read must see. In WAL mode any number of processes on the host
  (the notification process writing, every worker's API reading and marking) share the file: readers never wait
  for the writer, a lookup by the primary key costs tens of microseconds, a write is visible to the next read at
  once, and nothing runs beside the processes that already exist.
- ClickHouse (through sinks/) was rejected: the warehouse client belongs to sinks/ alone, sinks insert in batches
  every second or so (a message just delivered would be missing from the inbox), "mark read" would be a mutation
  or a new row version read back with FINAL, and point reads per API request are what a column store is worst at.
- A compacted Kafka topic read into memory was the other candidate, and is the one for several hosts: keyed by
  student and co-partitioned with the events topic, the worker owning a student would own their inbox too. It asks
  for more than this slice: the workers would consume one more topic and hold every inbox in memory (or a table),
  and a mark-read from the API would reach the reader only after a round trip through Kafka. Until the engine runs
  on more than one host, it buys nothing the file does not give.
- The limit, said plainly: the file is per host, like the API key registry. Workers on several machines need the
  topic store behind this same interface; SQLite over a network file system is not an option (its locks are not
  reliable there).

Durability: WAL with ``synchronous=NORMAL``: a committed message survives the process being killed (SIGKILL) and
restarting; a power cut may lose the last moments of commits (the send ledger, not this store, decides whether a
message was sent). One row per (student, item); the item id is the intervention id, so adding the same
intervention again (a re-delivered request) changes nothing. At most ``inbox_max_items`` per student: the oldest
go first. The file holds personal data and is created owner-only (0600); SQLite gives its WAL files the same
permissions.
``erase(user_id)`` removes a student's inbox (the right to erasure).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from config.settings import Settings

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox_items (
    user_id     TEXT    NOT NULL,
    item_id     TEXT    NOT NULL,
    title       TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    action_url  TEXT,
    locale      TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    created_us  INTEGER NOT NULL,
    read_us     INTEGER,
    PRIMARY KEY (user_id, item_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS inbox_items_newest ON inbox_items (user_id, created_us DESC, item_id DESC);
"""


def _us(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("inbox times must be timezone-aware")
    return round(at.timestamp() * 1_000_000)


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One in-app message in a student's inbox."""

    user_id: str
    item_id: str  # the intervention id: one in-app message per intervention
    title: str
    body: str
    created_at: datetime
    action_url: str | None = None
    locale: str = "en"
    data: Mapping[str, str] = field(default_factory=dict)
    read_at: datetime | None = None

    @property
    def read(self) -> bool:
        return self.read_at is not None

    def to_json(self) -> dict[str, Any]:
        """The item as the API shows it."""
        return {
            "id": self.item_id,
            "title": self.title,
            "body": self.body,
            "action_url": self.action_url,
            "locale": self.locale,
            "data": dict(self.data),
            "created_at": self.created_at.isoformat(),
            "read_at": self.read_at.isoformat() if self.read_at else None,
        }


class InboxStore(Protocol):
    """Where inboxes live. Calls are blocking and short; async callers run them in a thread."""

    def add(self, item: InboxItem) -> bool:
        """Store ``item``; False if the student already has an item with its id (nothing changes then)."""
        ...

    def items(self, user_id: str, *, limit: int = 50, unread_only: bool = False) -> list[InboxItem]:
        """The student's items, newest first."""
        ...

    def unread(self, user_id: str) -> int: ...

    def mark_read(self, user_id: str, item_ids: Sequence[str] | None, at: datetime) -> int:
        """Mark these items (None: all) read at ``at`` if they were unread; the number marked."""
        ...

    def erase(self, user_id: str) -> int:
        """Delete the student's inbox; the number of items deleted."""
        ...

    def close(self) -> None: ...


class SqliteInbox:
    """``InboxStore`` in one SQLite file (WAL), shared by the processes of one host."""

    def __init__(self, path: str | Path, *, max_items_per_user: int = 100, busy_timeout_seconds: float = 5.0) -> None:
        if max_items_per_user < 1:
            raise ValueError("max_items_per_user must be at least 1")
        self.path = Path(path)
        self.max_items = max_items_per_user
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))  # owner-only before SQLite opens it
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                self._db.close()
                raise RuntimeError(f"{self.path}: inbox schema {version} is newer than this code's {SCHEMA_VERSION}")
            self._db.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;")

    @classmethod
    def from_settings(cls, settings: Settings) -> SqliteInbox:
        return cls(settings.inbox, max_items_per_user=settings.inbox_max_items)

    def add(self, item: InboxItem) -> bool:
        row = (
            item.user_id,
            item.item_id,
            item.title,
            item.body,
            item.action_url,
            item.locale,
            json.dumps(dict(item.data), sort_keys=True),
            _us(item.created_at),
            None if item.read_at is None else _us(item.read_at),
        )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                added = self._db.execute("INSERT OR IGNORE INTO inbox_items VALUES (?,?,?,?,?,?,?,?,?)", row).rowcount
                if added:
                    self._db.execute(
                        "DELETE FROM inbox_items WHERE user_id = ? AND item_id NOT IN (SELECT item_id FROM inbox_items"
                        " WHERE user_id = ? ORDER BY created_us DESC, item_id DESC LIMIT ?)",
                        (item.user_id, item.user_id, self.max_items),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return bool(added)

    def items(self, user_id: str, *, limit: int = 50, unread_only: bool = False) -> list[InboxItem]:
        unread = " AND read_us IS NULL" if unread_only else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT user_id, item_id, title, body, action_url, locale, data, created_us, read_us FROM inbox_items"
                f" WHERE user_id = ?{unread} ORDER BY created_us DESC, item_id DESC LIMIT ?",
                (user_id, max(0, limit)),
            ).fetchall()
        return [
            InboxItem(
                user_id=r[0],
                item_id=r[1],
                title=r[2],
                body=r[3],
                action_url=r[4],
                locale=r[5],
                data=json.loads(r[6]),
                created_at=_at(r[7]),
                read_at=None if r[8] is None else _at(r[8]),
            )
            for r in rows
        ]

    def unread(self, user_id: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count() FROM inbox_items WHERE user_id = ? AND read_us IS NULL", (user_id,)
            ).fetchone()
        return int(row[0])

    def mark_read(self, user_id: str, item_ids: Sequence[str] | None, at: datetime) -> int:
        when = _us(at)
        with self._lock:
            if item_ids is None:
                cursor = self._db.execute(
                    "UPDATE inbox_items SET read_us = ? WHERE user_id = ? AND read_us IS NULL", (when, user_id)
                )
            else:
                marks = ",".join("?" * len(item_ids)) or "NULL"
                cursor = self._db.execute(
                    "UPDATE inbox_items SET read_us = ? WHERE user_id = ? AND read_us IS NULL"
                    f" AND item_id IN ({marks})",
                    (when, user_id, *item_ids),
                )
        return cursor.rowcount

    def erase(self, user_id: str) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM inbox_items WHERE user_id = ?", (user_id,)).rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
