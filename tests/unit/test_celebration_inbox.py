"""Celebrations as in-app inbox items (notifications/celebrations.py): one item per celebration id, and reading one
through the inbox API marks it read without an intervention's opened event or outcome."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engage.chaos.notify_check import read_sends
from notifications.celebrations import celebration_item, is_celebration
from notifications.inbox import InboxItem, SqliteInbox
from schemas.gamification import Celebration, CelebrationKind
from schemas.topics import catalogue
from streams.worker.inbox_api import InboxApi
from tests.unit.worker_fakes import MemoryOutputs

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def party(user: str = "s1", level: int = 3) -> Celebration:
    return Celebration(
        celebration_id=f"level_up:{user}:level:{level}",
        user_id=user,
        kind=CelebrationKind.level_up,
        source_id=f"{user}:level:{level}",
        title=f"Level {level}!",
        body=f"You reached level {level}.",
        event_time=T0,
    )


def test_a_celebration_is_an_item_with_its_id_title_and_body(tmp_path: Path) -> None:
    item = celebration_item(party(), T0 + timedelta(seconds=5))
    assert (item.user_id, item.item_id, item.title, item.body) == ("s1", "level_up:s1:level:3", "Level 3!", item.body)
    assert item.body == "You reached level 3." and item.created_at == T0 + timedelta(seconds=5)
    assert dict(item.data) == {
        "type": "celebration",
        "kind": "level_up",
        "source_id": "s1:level:3",
        "event_time": T0.isoformat(),
    }
    assert is_celebration(item)
    assert not is_celebration(InboxItem("s1", "iv-1", "Keep going", "One lesson", T0))


def test_the_same_celebration_twice_is_one_item(tmp_path: Path) -> None:
    store = SqliteInbox(tmp_path / "inbox.sqlite3")
    assert store.add(celebration_item(party(), T0)) is True
    assert store.add(celebration_item(party(), T0 + timedelta(minutes=1))) is False  # re-sent later: same id
    assert store.add(celebration_item(party(level=4), T0)) is True
    assert sorted(i.item_id for i in store.items("s1")) == ["level_up:s1:level:3", "level_up:s1:level:4"]
    store.close()


def test_reading_a_celebration_marks_it_read_and_sends_nothing(tmp_path: Path) -> None:
    store = SqliteInbox(tmp_path / "inbox.sqlite3")
    store.add(celebration_item(party(), T0))
    store.add(InboxItem("s1", "iv-1", "Keep going", "One lesson", T0))
    outputs = MemoryOutputs()

    async def acknowledged() -> None:
        return None

    api = InboxApi(lambda: store, outputs, catalogue("t"), acknowledged, clock=lambda: T0 + timedelta(hours=1))

    async def scenario() -> None:
        status, body = await api.mark_read("s1", "level_up:s1:level:3", {})
        assert status == 200 and body["newly_read"] is True
        assert outputs.sent == []  # not an intervention: no opened event, no outcome
        status, body = await api.mark_read("s1", "level_up:s1:level:3", {})
        assert status == 200 and body["newly_read"] is False
        status, _ = await api.mark_read("s1", "iv-1", {})  # an intervention's item still reports its opening
        assert status == 200 and {t for t, _, _ in outputs.sent} == {"t.events.v1", "t.intervention-outcomes.v1"}

    asyncio.run(scenario())
    assert store.unread("s1") == 0
    store.close()


def test_the_chaos_check_counts_intervention_items_not_celebrations(tmp_path: Path) -> None:
    """The notify chaos case reads the inbox as in-app sends: a celebration there is no intervention's send."""
    store = SqliteInbox(tmp_path / "inbox.sqlite3")
    store.add(celebration_item(party(), T0))
    store.add(InboxItem("s1", "iv-1", "Keep going", "One lesson", T0))
    store.close()
    assert read_sends(tmp_path / "no-records", tmp_path / "inbox.sqlite3") == ["iv-1"]
