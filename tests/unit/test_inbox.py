"""The in-app inbox: written, the process restarted (a new store over the same file), read back, marked read."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings
from notifications.channels.base import Message, Misconfigured, Permanent, Retryable
from notifications.channels.in_app import InAppChannel
from notifications.inbox import InboxItem, SqliteInbox
from schemas.contacts import Contact
from schemas.events import Channel

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def item(n: int, user: str = "student-1", minutes: int | None = None) -> InboxItem:
    return InboxItem(
        user_id=user,
        item_id=f"iv-{n}",
        title=f"Title {n}",
        body=f"Body {n} — ünïcode",
        created_at=T0 + timedelta(minutes=n if minutes is None else minutes),
        action_url=f"https://app.example/a/{n}",
        locale="de",
        data={"kind": "streak_warning"},
    )


def message(n: int, user: str = "student-1") -> Message:
    return Message(
        intervention_id=f"iv-{n}",
        user_id=user,
        channel=Channel.in_app,
        to=user,
        parts={"title": f"Title {n}", "body": f"Body {n}"},
        action_url=f"https://app.example/a/{n}",
        data={"kind": "gentle_reminder"},
    )


def test_written_restarted_read_back_and_marked_read(tmp_path):
    path = tmp_path / "run" / "inbox.sqlite3"
    first = SqliteInbox(path)
    assert [first.add(item(n)) for n in (1, 2, 3)] == [True, True, True]
    first.add(item(9, user="student-2"))
    first.close()

    second = SqliteInbox(path)  # a restart: a new store over the same file
    got = second.items("student-1")
    assert [i.item_id for i in got] == ["iv-3", "iv-2", "iv-1"]  # newest first
    assert got[0] == item(3)  # every field, times to the microsecond and in UTC
    assert second.unread("student-1") == 3 and second.unread("student-2") == 1
    assert second.mark_read("student-1", ["iv-2", "iv-unknown"], T0 + timedelta(hours=1)) == 1
    assert second.mark_read("student-1", ["iv-2"], T0 + timedelta(hours=2)) == 0  # read once, at the first time
    assert second.mark_read("student-1", [], T0) == 0
    second.close()

    third = SqliteInbox(path)
    assert third.unread("student-1") == 2
    assert [i.item_id for i in third.items("student-1", unread_only=True)] == ["iv-3", "iv-1"]
    (read,) = [i for i in third.items("student-1") if i.read]
    assert read.read_at == T0 + timedelta(hours=1) and read.to_json()["read_at"] == "2026-03-02T10:30:00+00:00"
    assert third.mark_read("student-1", None, T0 + timedelta(hours=3)) == 2
    assert third.unread("student-1") == 0 and third.unread("student-2") == 1
    third.close()


def test_the_same_intervention_twice_is_one_item(tmp_path):
    inbox = SqliteInbox(tmp_path / "inbox.sqlite3")
    assert inbox.add(item(1)) is True
    assert inbox.add(item(1, minutes=99)) is False
    assert len(inbox.items("student-1")) == 1 and inbox.items("student-1")[0].created_at == item(1).created_at


def test_only_the_newest_items_are_kept(tmp_path):
    inbox = SqliteInbox(tmp_path / "inbox.sqlite3", max_items_per_user=3)
    for n in range(1, 7):
        inbox.add(item(n))
    inbox.add(item(1, user="student-2"))
    assert [i.item_id for i in inbox.items("student-1")] == ["iv-6", "iv-5", "iv-4"]
    assert [i.item_id for i in inbox.items("student-1", limit=2)] == ["iv-6", "iv-5"]
    assert len(inbox.items("student-2")) == 1


def test_a_writer_and_a_reader_share_the_file(tmp_path):
    """The notification process writes while a worker's API reads and marks: two connections, one file."""
    path = tmp_path / "inbox.sqlite3"
    writer, reader = SqliteInbox(path), SqliteInbox(path)
    writer.add(item(1))
    assert [i.item_id for i in reader.items("student-1")] == ["iv-1"]  # visible at once
    reader.mark_read("student-1", None, T0)
    assert writer.unread("student-1") == 0
    writer.close()
    reader.close()


def test_erasure_removes_a_students_inbox_and_the_file_is_owner_only(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    inbox = SqliteInbox(path)
    inbox.add(item(1))
    inbox.add(item(2))
    inbox.add(item(1, user="student-2"))
    assert inbox.erase("student-1") == 2
    assert inbox.items("student-1") == [] and len(inbox.items("student-2")) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    SqliteInbox(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=2")
    db.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteInbox(path)


def test_the_channel_puts_messages_in_the_inbox_once(tmp_path):
    store = SqliteInbox(Settings(run_dir=tmp_path).inbox)
    channel = InAppChannel(store, clock=lambda: T0)

    async def scenario() -> None:
        first = await channel.send(message(1))
        again = await channel.send(message(1))
        assert (first.provider_id, first.detail) == ("student-1/iv-1", "")
        assert again.detail == "already in the inbox"
        with pytest.raises(Permanent, match="'title'"):
            await channel.send(Message("iv-2", "student-1", Channel.in_app, "student-1", {"body": "no title"}))

    asyncio.run(scenario())
    store.close()
    (got,) = SqliteInbox(tmp_path / "inbox.sqlite3").items("student-1")
    assert (got.title, got.body, got.created_at, got.data) == ("Title 1", "Body 1", T0, {"kind": "gentle_reminder"})


def test_a_locked_inbox_is_retryable_and_a_broken_one_misconfigured(tmp_path):
    path = tmp_path / "inbox.sqlite3"
    store = SqliteInbox(path, busy_timeout_seconds=0.05)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with pytest.raises(Retryable, match="busy"):
        asyncio.run(InAppChannel(store).send(message(1)))
    locker.execute("ROLLBACK")
    locker.close()
    asyncio.run(InAppChannel(store).send(message(1)))

    broken = tmp_path / "not-a-database.sqlite3"
    broken.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(sqlite3.DatabaseError):
        SqliteInbox(broken)

    class Corrupt:
        def add(self, item: InboxItem) -> bool:
            raise sqlite3.DatabaseError("database disk image is malformed")

    with pytest.raises(Misconfigured, match="malformed"):
        asyncio.run(InAppChannel(Corrupt()).send(message(1)))  # type: ignore[arg-type]


def test_available_unless_unsubscribed(tmp_path):
    channel = InAppChannel(SqliteInbox(tmp_path / "inbox.sqlite3"))
    assert channel.available_for(Contact(user_id="s1"))
    assert not channel.available_for(Contact(user_id="s1", unsubscribed=frozenset({Channel.in_app})))
