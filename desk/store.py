"""The desk's durable state: outreach items and offers in one SQLite file (WAL, owner-only), and an outbox.

- Inserts are keyed by intervention id (``ON CONFLICT DO NOTHING``): a re-delivered request changes nothing.
- Every change to an item is one conditional UPDATE (``WHERE version = <the version read>``): of two people
  claiming at once, in two threads or two processes, exactly one update matches; the other re-reads the item
  and gets the rules' refusal (``AlreadyClaimed`` naming the owner). A redemption is one conditional UPDATE too.
- The outcomes a change reports go into ``outcome_outbox`` in the same transaction as the change, and a
  publisher (``desk.service.OutboxPublisher``) moves them to Kafka: a change is never stored without its outcome
  or reported without being stored. A crash between producing and deleting re-publishes the same outcome (same
  ``at``): the warehouse table collapses it (ReplacingMergeTree on intervention, outcome, at).

Times are stored as integer microseconds since the epoch (UTC), so comparisons in SQL are exact.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import orjson

from processors.notify.context import Offer
from processors.offers import check_redemption, issued_outcome, redeemed_outcome
from processors.outreach import Note, OutreachItem, OutreachState, Resolution, queued_outcome, transition_outcomes
from schemas.interventions import InterventionOutcome

Listing = Literal["open", "claimed", "overdue", "resolved", "all"]
LISTINGS: tuple[Listing, ...] = ("open", "claimed", "overdue", "resolved", "all")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outreach_items (
    intervention_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    reason TEXT NOT NULL,
    risk_7d REAL NOT NULL,
    queued_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('open', 'claimed', 'resolved')),
    owner TEXT,
    claimed_at INTEGER,
    resolved_at INTEGER,
    resolution TEXT,
    notes TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outreach_by_state ON outreach_items (state, due_at);
CREATE TABLE IF NOT EXISTS offers (
    code TEXT NOT NULL UNIQUE,
    intervention_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    percent_off INTEGER NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    redeemed_at INTEGER
);
CREATE TABLE IF NOT EXISTS outcome_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL
);
"""


class UnknownItem(LookupError):
    pass


class UnknownOffer(LookupError):
    pass


class CodeCollision(ValueError):
    """Two interventions whose codes are equal (60 bits: about once in 2 million after a million offers)."""


@dataclass(frozen=True, slots=True)
class StoredOffer:
    code: str
    intervention_id: str
    user_id: str
    percent_off: int
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None = None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _opt(us: int | None) -> datetime | None:
    return None if us is None else _time(us)


def _notes_json(notes: Sequence[Note]) -> bytes:
    return orjson.dumps([{"at": _us(n.at), "author": n.author, "text": n.text} for n in notes])


def _item(row: sqlite3.Row) -> OutreachItem:
    return OutreachItem(
        intervention_id=row["intervention_id"],
        user_id=row["user_id"],
        tier=row["tier"],
        reason=row["reason"],
        risk_7d=row["risk_7d"],
        queued_at=_time(row["queued_at"]),
        due_at=_time(row["due_at"]),
        state=OutreachState(row["state"]),
        owner=row["owner"],
        claimed_at=_opt(row["claimed_at"]),
        resolved_at=_opt(row["resolved_at"]),
        resolution=Resolution(row["resolution"]) if row["resolution"] else None,
        notes=tuple(Note(_time(n["at"]), n["author"], n["text"]) for n in orjson.loads(row["notes"])),
    )


def _offer(row: sqlite3.Row) -> StoredOffer:
    return StoredOffer(
        code=row["code"],
        intervention_id=row["intervention_id"],
        user_id=row["user_id"],
        percent_off=row["percent_off"],
        issued_at=_time(row["issued_at"]),
        expires_at=_time(row["expires_at"]),
        redeemed_at=_opt(row["redeemed_at"]),
    )


def _owner_only(path: Path) -> None:
    """Create the file 0600 before SQLite does (its -wal and -shm files copy the database's permissions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class Store:
    """One connection per instance (threads share it under a lock); open one per process."""

    def __init__(self, path: Path) -> None:
        _owner_only(path)
        self.path = path
        self._conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # offsets are committed after a write: it must be on disk
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: taken at once (no lock upgrade halfway), committed or rolled back as a whole."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    @staticmethod
    def _outbox(conn: sqlite3.Connection, outcomes: Sequence[InterventionOutcome]) -> None:
        conn.executemany(
            "INSERT INTO outcome_outbox (body) VALUES (?)", [(o.model_dump_json().encode(),) for o in outcomes]
        )

    # --- outreach items --------------------------------------------------------------------------------------
    def enqueue(self, item: OutreachItem) -> tuple[OutreachItem, bool]:
        """Store a new item (and its ``queued`` outcome); an item already there is returned unchanged, False."""
        with self._write() as conn:
            inserted = conn.execute(
                "INSERT INTO outreach_items (intervention_id, user_id, tier, reason, risk_7d, queued_at, due_at,"
                " state, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (intervention_id) DO NOTHING",
                (
                    item.intervention_id,
                    item.user_id,
                    item.tier,
                    item.reason,
                    item.risk_7d,
                    _us(item.queued_at),
                    _us(item.due_at),
                    item.state.value,
                    _notes_json(item.notes),
                ),
            ).rowcount
            if inserted:
                self._outbox(conn, [queued_outcome(item)])
                return item, True
            row = conn.execute("SELECT * FROM outreach_items WHERE intervention_id = ?", (item.intervention_id,))
            return _item(row.fetchone()), False

    def _versioned(self, intervention_id: str) -> tuple[OutreachItem, int]:
        rows = self._read("SELECT * FROM outreach_items WHERE intervention_id = ?", (intervention_id,))
        if not rows:
            raise UnknownItem(f"no outreach item {intervention_id!r}")
        return _item(rows[0]), rows[0]["version"]

    def item(self, intervention_id: str) -> OutreachItem:
        return self._versioned(intervention_id)[0]

    def change(
        self, intervention_id: str, transition: Callable[[OutreachItem], OutreachItem]
    ) -> tuple[OutreachItem, OutreachItem]:
        """Apply a rule (``processors.outreach``) to the item and store the result with one conditional UPDATE.

        If another writer changed the item since it was read, the rule runs again on the new item (and raises
        its refusal, e.g. ``AlreadyClaimed``). Returns (before, after); after is before when nothing changed."""
        while True:
            before, version = self._versioned(intervention_id)
            after = transition(before)
            if after == before:
                return before, after
            with self._write() as conn:
                updated = conn.execute(
                    "UPDATE outreach_items SET state = ?, owner = ?, claimed_at = ?, resolved_at = ?, resolution = ?,"
                    " notes = ?, version = version + 1 WHERE intervention_id = ? AND version = ?",
                    (
                        after.state.value,
                        after.owner,
                        None if after.claimed_at is None else _us(after.claimed_at),
                        None if after.resolved_at is None else _us(after.resolved_at),
                        None if after.resolution is None else after.resolution.value,
                        _notes_json(after.notes),
                        intervention_id,
                        version,
                    ),
                ).rowcount
                if updated:
                    self._outbox(conn, transition_outcomes(before, after))
                    return before, after

    def items(self, listing: Listing, now: datetime, limit: int = 500) -> list[OutreachItem]:
        """Items by state, the most urgent (earliest due) first; ``overdue``: open or claimed past due."""
        params: list[Any]
        if listing == "overdue":
            where, params = "state != 'resolved' AND due_at < ?", [_us(now)]
        elif listing == "all":
            where, params = "1", []
        else:
            where, params = "state = ?", [listing]
        rows = self._read(
            f"SELECT * FROM outreach_items WHERE {where} ORDER BY due_at, intervention_id LIMIT ?", [*params, limit]
        )
        return [_item(r) for r in rows]

    def counts(self, now: datetime) -> dict[str, int]:
        """Items per state, and ``overdue`` (open or claimed past due)."""
        out = {s.value: 0 for s in OutreachState}
        out.update({r[0]: r[1] for r in self._read("SELECT state, count(*) FROM outreach_items GROUP BY state")})
        overdue = self._read("SELECT count(*) FROM outreach_items WHERE state != 'resolved' AND due_at < ?", [_us(now)])
        out["overdue"] = overdue[0][0]
        return out

    # --- offers --------------------------------------------------------------------------------------------------
    def issue(self, intervention_id: str, user_id: str, offer: Offer, now: datetime) -> tuple[StoredOffer, bool]:
        """Store an offer (and its ``offer_issued`` outcome); one already there is returned unchanged, False."""
        with self._write() as conn:
            try:
                inserted = conn.execute(
                    "INSERT INTO offers (code, intervention_id, user_id, percent_off, issued_at, expires_at)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (intervention_id) DO NOTHING",
                    (offer.code, intervention_id, user_id, offer.percent_off, _us(now), _us(offer.expires_at)),
                ).rowcount
            except sqlite3.IntegrityError as exc:  # only the code can still collide
                raise CodeCollision(
                    f"offer code of intervention {intervention_id} is already another intervention's"
                ) from exc
            if inserted:
                self._outbox(conn, [issued_outcome(intervention_id, user_id, offer, now)])
            row = conn.execute("SELECT * FROM offers WHERE intervention_id = ?", (intervention_id,)).fetchone()
            return _offer(row), bool(inserted)

    def offer(self, code: str) -> StoredOffer:
        rows = self._read("SELECT * FROM offers WHERE code = ?", (code,))
        if not rows:
            raise UnknownOffer(f"no offer with code {code}")
        return _offer(rows[0])

    def redeem(self, code: str, user_id: str, now: datetime) -> StoredOffer:
        """Mark the offer redeemed with one conditional UPDATE; else raise why not (``RedemptionRefused``)."""
        with self._write() as conn:
            updated = conn.execute(
                "UPDATE offers SET redeemed_at = ? WHERE code = ? AND user_id = ? AND redeemed_at IS NULL"
                " AND expires_at > ?",
                (_us(now), code, user_id, _us(now)),
            ).rowcount
            row = conn.execute("SELECT * FROM offers WHERE code = ?", (code,)).fetchone()
            if row is None:
                raise UnknownOffer(f"no offer with code {code}")
            offer = _offer(row)
            if updated:
                self._outbox(conn, [redeemed_outcome(offer.intervention_id, offer.user_id, now)])
                return offer
        check_redemption(
            offer_user=offer.user_id,
            expires_at=offer.expires_at,
            redeemed_at=offer.redeemed_at,
            user_id=user_id,
            now=now,
        )
        raise RuntimeError(f"offer {code}: not redeemed, and no rule refuses it")  # the UPDATE and rules disagree

    def offer_counts(self) -> dict[str, int]:
        row = self._read("SELECT count(*), count(redeemed_at) FROM offers")[0]
        return {"issued": row[0], "redeemed": row[1]}

    # --- the outbox --------------------------------------------------------------------------------------------
    def pending_outcomes(self, limit: int = 500) -> list[tuple[int, bytes]]:
        rows = self._read("SELECT seq, body FROM outcome_outbox ORDER BY seq LIMIT ?", (limit,))
        return [(r[0], bytes(r[1])) for r in rows]

    def published(self, seqs: Sequence[int]) -> None:
        with self._write() as conn:
            conn.executemany("DELETE FROM outcome_outbox WHERE seq = ?", [(s,) for s in seqs])
