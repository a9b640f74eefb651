"""The send ledger's write order: what a final entry stands for (the outcome, a dead letter) is acknowledged before
the entry itself, so a crash between the two repeats a request instead of losing its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import cast

import pytest

from notifications.ledger import Ledger, Out, Outbox
from schemas.notifications import LedgerEntry, ledger_key


class Killed(Exception):
    """Stands for the process dying while a write waits for Kafka."""


class Recorded:
    """An outbox that keeps each acknowledged write (a list of messages) and dies at the write numbered ``die_at``."""

    def __init__(self, die_at: int | None = None) -> None:
        self.writes: list[list[Out]] = []
        self.die_at = die_at

    async def send(self, messages: Sequence[Out]) -> None:
        if len(self.writes) == self.die_at:
            raise Killed
        self.writes.append(list(messages))


def sent_entry(intervention_id: str) -> LedgerEntry:
    return LedgerEntry(
        ledger_key=ledger_key(intervention_id, None),
        intervention_id=intervention_id,
        user_id="student-1",
        state="sent",
        at=datetime(2026, 12, 6, tzinfo=UTC),
    )


OUTCOME = Out("outcomes", b"student-1", b'{"outcome": "sent"}')


def test_the_outcome_is_acknowledged_before_the_ledger_entry_that_stands_for_it() -> None:
    outbox = Recorded()
    ledger = Ledger("127.0.0.1:9", "ledger", cast(Outbox, outbox))
    asyncio.run(ledger.write(3, [sent_entry("iv-1")], [OUTCOME]))
    assert [[m.topic for m in w] for w in outbox.writes] == [["outcomes"], ["ledger"]]
    assert outbox.writes[1][0].partition == 3
    assert [e.state for e in ledger.entries("iv-1")] == ["sent"]


def test_a_crash_before_the_ledger_write_leaves_the_request_open_so_it_is_handled_again() -> None:
    outbox = Recorded(die_at=1)  # the outcome stored, the process gone before the ledger entry was
    ledger = Ledger("127.0.0.1:9", "ledger", cast(Outbox, outbox))
    with pytest.raises(Killed):
        asyncio.run(ledger.write(0, [sent_entry("iv-2")], [OUTCOME]))
    assert outbox.writes == [[OUTCOME]]
    assert ledger.entries("iv-2") == []  # nothing says final: the next owner handles the request again


def test_an_entry_with_nothing_beside_it_is_one_write() -> None:
    outbox = Recorded()
    ledger = Ledger("127.0.0.1:9", "ledger", cast(Outbox, outbox))
    asyncio.run(ledger.write(1, [sent_entry("iv-3")]))
    assert [[m.topic for m in w] for w in outbox.writes] == [["ledger"]]
