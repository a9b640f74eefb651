"""The desk's SQLite store (a real file): idempotent inserts, one owner under racing claimers, single redemption,
outcomes written with their changes."""

from __future__ import annotations

import multiprocessing
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from desk.store import CodeCollision, Store, UnknownItem, UnknownOffer
from processors.notify.context import Offer
from processors.offers import AlreadyRedeemed, NotTheirOffer, OfferExpired
from processors.outreach import AlreadyClaimed, OutreachItem, OutreachState, Resolution, claim, release, resolve

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def item(n: int = 1, due: datetime = T0 + timedelta(hours=4)) -> OutreachItem:
    return OutreachItem(f"i-{n}", f"u-{n}", "critical", "No login for 9 days", 88.0, T0, due)


def outbox(store: Store) -> list[tuple[str, str, str]]:
    return [
        (o["intervention_id"], o["outcome"], o["at"])
        for o in (orjson.loads(body) for _, body in store.pending_outcomes(10_000))
    ]


def test_the_file_is_owner_only_and_in_wal_mode(tmp_path: Path) -> None:
    store = Store(tmp_path / "sub" / "desk.sqlite3")
    store.enqueue(item())
    assert stat.S_IMODE((tmp_path / "sub" / "desk.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "sub" / "desk.sqlite3-wal").stat().st_mode) == 0o600
    assert store._read("PRAGMA journal_mode")[0][0] == "wal"


def test_a_redelivered_request_changes_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    _, created = store.enqueue(item())
    store.change("i-1", lambda i: claim(i, "ana", T0))
    again, created_again = store.enqueue(item())  # re-delivered: a later queued_at would be ignored too
    assert (created, created_again) == (True, False)
    assert again.state == OutreachState.claimed and again.owner == "ana"
    assert outbox(store) == [("i-1", "queued", "2026-11-02T10:00:00Z"), ("i-1", "claimed", "2026-11-02T10:00:00Z")]


def test_changes_write_their_outcomes_and_keep_notes(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    store.enqueue(item())
    later = T0 + timedelta(minutes=30)
    store.change("i-1", lambda i: claim(i, "ana", T0))
    store.change("i-1", lambda i: release(i, "ana", T0))
    store.change("i-1", lambda i: claim(i, "ben", T0 + timedelta(minutes=1)))
    before, after = store.change("i-1", lambda i: resolve(i, "ben", Resolution.no_answer, later, "rang twice"))
    assert before.state == OutreachState.claimed and after == store.item("i-1")
    assert [n.text for n in after.notes] == ["released", "rang twice"]
    assert [o[1] for o in outbox(store)] == ["queued", "claimed", "claimed", "resolved"]
    assert orjson.loads(store.pending_outcomes()[-1][1])["detail"] == "no_answer"
    with pytest.raises(UnknownItem, match="no outreach item 'i-9'"):
        store.change("i-9", lambda i: i)


def test_listing_and_counts_by_state_and_overdue(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    store.enqueue(item(1, due=T0 + timedelta(hours=1)))
    store.enqueue(item(2, due=T0 + timedelta(hours=3)))
    store.enqueue(item(3, due=T0 + timedelta(hours=2)))
    store.change("i-2", lambda i: claim(i, "ana", T0))
    store.change("i-3", lambda i: resolve(claim(i, "ana", T0), "ana", Resolution.not_needed, T0))
    now = T0 + timedelta(hours=5)
    assert [i.intervention_id for i in store.items("open", now)] == ["i-1"]
    assert [i.intervention_id for i in store.items("overdue", now)] == ["i-1", "i-2"]
    assert [i.intervention_id for i in store.items("all", now)] == ["i-1", "i-3", "i-2"]
    assert store.items("overdue", T0) == []
    assert store.counts(now) == {"open": 1, "claimed": 1, "resolved": 1, "overdue": 2}


def _claim_in_process(path: str, owner: str, ids: list[str], start: object, results: object) -> None:
    store = Store(Path(path))
    start.wait()  # type: ignore[attr-defined]
    for item_id in ids:
        try:
            store.change(item_id, lambda i: claim(i, owner, datetime.now(UTC)))
            results.put((item_id, owner))  # type: ignore[attr-defined]
        except AlreadyClaimed:
            results.put((item_id, None))  # type: ignore[attr-defined]


def test_two_processes_claiming_the_same_items_leave_one_owner_each(tmp_path: Path) -> None:
    path = tmp_path / "desk.sqlite3"
    store = Store(path)
    ids = [f"i-{n}" for n in range(40)]
    for n in range(40):
        store.enqueue(item(n))
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_claim_in_process, args=(str(path), owner, ids, start, results)) for owner in ("ana", "ben")
    ]
    for w in workers:
        w.start()
    start.set()
    got = [results.get(timeout=60) for _ in range(2 * len(ids))]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    winners = {i: o for i, o in got if o is not None}
    assert sorted(winners) == sorted(ids)  # every item claimed by exactly one process...
    assert sum(1 for _, o in got if o is None) == len(ids)  # ...and refused to the other
    assert {i: store.item(i).owner for i in ids} == winners
    assert sum(1 for o in outbox(store) if o[1] == "claimed") == len(ids)  # one claimed outcome per item


def test_threads_racing_on_one_item_through_one_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    store.enqueue(item())
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def attempt(owner: str) -> None:
        barrier.wait()
        try:
            store.change("i-1", lambda i: claim(i, owner, T0))
            outcomes.append(owner)
        except AlreadyClaimed:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt, args=(f"staff-{k}",)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o != "refused"]
    assert len(winners) == 1 and store.item("i-1").owner == winners[0]


def offer(code: str = "AAAA-BBBB-CCCC", expires: datetime = T0 + timedelta(days=14)) -> Offer:
    return Offer(code=code, percent_off=20, expires_at=expires)


def test_an_offer_is_stored_once_and_redeemed_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    stored, created = store.issue("i-1", "u-1", offer(), T0)
    _, again = store.issue("i-1", "u-1", offer(), T0 + timedelta(minutes=5))
    assert (created, again) == (True, False)
    assert stored.issued_at == T0 and stored.redeemed_at is None
    with pytest.raises(NotTheirOffer):
        store.redeem("AAAA-BBBB-CCCC", "u-2", T0 + timedelta(days=1))
    redeemed = store.redeem("AAAA-BBBB-CCCC", "u-1", T0 + timedelta(days=1))
    assert redeemed.redeemed_at == T0 + timedelta(days=1)
    with pytest.raises(AlreadyRedeemed):
        store.redeem("AAAA-BBBB-CCCC", "u-1", T0 + timedelta(days=2))
    with pytest.raises(UnknownOffer):
        store.redeem("ZZZZ-ZZZZ-ZZZZ", "u-1", T0)
    assert [o[1] for o in outbox(store)] == ["offer_issued", "offer_redeemed"]
    assert store.offer_counts() == {"issued": 1, "redeemed": 1}


def test_an_expired_offer_is_refused_and_a_colliding_code_is_an_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    store.issue("i-1", "u-1", offer(expires=T0 + timedelta(days=1)), T0)
    with pytest.raises(OfferExpired):
        store.redeem("AAAA-BBBB-CCCC", "u-1", T0 + timedelta(days=1))
    with pytest.raises(CodeCollision, match="i-2"):
        store.issue("i-2", "u-2", offer(), T0)


def test_published_outcomes_leave_the_outbox(tmp_path: Path) -> None:
    store = Store(tmp_path / "desk.sqlite3")
    for n in range(3):
        store.enqueue(item(n))
    seqs = [seq for seq, _ in store.pending_outcomes()]
    store.published(seqs[:2])
    assert [orjson.loads(b)["intervention_id"] for _, b in store.pending_outcomes()] == ["i-2"]
