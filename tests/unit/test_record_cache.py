"""The write-back record cache (streams.worker.core.record_cache): what a flush writes and a rebalance drops."""

from __future__ import annotations

from processors.pipeline import UserRecord
from processors.state import UserState
from streams.worker.core.record_cache import RecordCache


def _record(user: str) -> UserRecord:
    return UserRecord(state=UserState(user_id=user))


def test_a_changed_record_is_pending_once_however_often_it_changed() -> None:
    cache = RecordCache(max_records=10)
    a = _record("a")
    for offset in (3, 4, 5):
        cache.change(b"a", a, 1)
        cache.advance(1, offset)
    cache.keep(b"b", _record("b"), 2)  # read from the table: nothing to write

    pending = cache.take_pending()
    assert [(k, p) for k, _, p in pending.records] == [(b"a", 1)]
    assert pending.records[0][1] is a
    assert pending.positions == {1: 5}
    assert cache.take_pending().records == []  # written by that flush
    assert cache.get(b"a") is a  # and still at hand for the next message


def test_positions_only_move_forward_and_are_read_back_until_flushed() -> None:
    cache = RecordCache(max_records=10)
    cache.advance(0, 7)
    cache.advance(0, 4)  # a re-delivered message
    assert cache.position(0) == 7
    assert cache.position(1) is None
    cache.take_pending()
    assert cache.position(0) is None  # the table has it now


def test_a_record_written_through_is_no_longer_pending() -> None:
    cache = RecordCache(max_records=10)
    cache.change(b"a", _record("a"), 0)
    cache.written(b"a")
    assert cache.take_pending().records == []
    assert cache.get(b"a") is not None


def test_a_rebalance_drops_the_partitions_that_went_elsewhere_changed_or_not() -> None:
    cache = RecordCache(max_records=10)
    cache.change(b"a", _record("a"), 0)
    cache.keep(b"b", _record("b"), 1)
    cache.change(b"c", _record("c"), 2)
    cache.advance(0, 9)
    cache.advance(2, 3)

    assert cache.keep_partitions({2}) == 2
    assert cache.get(b"a") is None and cache.get(b"b") is None
    pending = cache.take_pending()
    assert [k for k, _, _ in pending.records] == [b"c"]
    assert pending.positions == {2: 3}


def test_trim_drops_the_oldest_unchanged_records_never_a_pending_one() -> None:
    cache = RecordCache(max_records=2)
    cache.change(b"old-changed", _record("x"), 0)
    for user in ("a", "b", "c"):
        cache.keep(user.encode(), _record(user), 0)
    cache.trim()
    assert len(cache) == 2
    assert cache.get(b"old-changed") is not None  # pending: kept whatever its age
    assert cache.get(b"a") is None and cache.get(b"b") is None
    assert cache.get(b"c") is not None


def test_forget_removes_a_record_and_its_pending_write() -> None:
    cache = RecordCache(max_records=10)
    cache.change(b"a", _record("a"), 0)
    cache.forget(b"a")
    assert cache.get(b"a") is None
    assert cache.take_pending().records == []
