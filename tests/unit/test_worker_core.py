"""The worker core (streams.worker.core.engine) over an in-memory table and producer: no Faust, no Kafka.

These are the rules the chaos suite proved with real servers (re-deliveries skipped, positions after records, the
outbox kept until its batch is committed, owed re-scores paid only once Kafka acknowledged them, a restore
sending again what an uncommitted record holds), held here as plain behaviour of the core.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from kafka_io.producer import key_partition
from processors.pipeline import ScoreRequest, UserRecord
from streams.worker.core.engine import WorkerCore
from streams.worker.core.ports import Message
from streams.worker.core.table_keys import position_key
from streams.worker.metrics import REDELIVERED_MESSAGES
from tests.unit.worker_fakes import PARTITIONS, TOPICS, Assignment, MemoryOutputs, MemoryTable, make_core

NOW = datetime.now(UTC).replace(microsecond=0)


def _event(n: int, user: str, at: datetime = NOW, **extra: object) -> dict[str, object]:
    return {"event_id": f"{user}-e{n}", "user_id": user, "event_type": "login", "event_time": at.isoformat(),
            "platform": "web", **extra}  # fmt: skip


def _message(user: str, offset: int, *events: dict[str, object], partition: int | None = None) -> Message:
    home = key_partition(user.encode(), PARTITIONS) if partition is None else partition
    value = orjson.dumps({"schema_version": 1, "user_id": user, "events": list(events)})
    return Message(home, offset, NOW.timestamp(), value)


def _risk_updates(outputs: MemoryOutputs) -> list[dict[str, object]]:
    return [orjson.loads(v) for v in outputs.on(TOPICS.risk_updates.name)]


def test_a_gather_is_folded_scored_once_per_student_and_reaches_the_table_at_write_back() -> None:
    table, outputs = MemoryTable(), MemoryOutputs()
    core = make_core(table, outputs)
    core.fold(
        [
            _message("ann", 0, _event(1, "ann")),
            _message("ann", 1, _event(2, "ann")),
            _message("bob", 0, _event(1, "bob")),
        ]
    )

    assert sorted(u["user_id"] for u in _risk_updates(outputs)) == ["ann", "bob"]  # one re-score each
    assert table.rows == {}  # in the cache until the commit's write-back
    core.flush_records()
    ann = UserRecord.from_bytes(table.rows[b"ann"])
    assert ann.source_offset == 1 and ann.state.events_total == 2
    # each partition's position is written after its records (a restore never claims more than it restores)
    for partition in {key_partition(b"ann", PARTITIONS), key_partition(b"bob", PARTITIONS)}:
        writes = [key for key, p, _ in table.changelog if p == partition]
        assert writes[-1] == position_key(partition)
    assert core.position(key_partition(b"ann", PARTITIONS)) == 1


def test_a_redelivered_message_is_skipped_whole_and_not_scored_again() -> None:
    outputs = MemoryOutputs()
    core = make_core(outputs=outputs)
    first = _message("ann", 5, _event(1, "ann"), _event(2, "ann"))
    core.fold([first])
    skipped = REDELIVERED_MESSAGES._value.get()
    core.fold([first])  # Kafka re-delivers it after a rebalance
    assert REDELIVERED_MESSAGES._value.get() == skipped + 1  # skipped by its offset, before any event is looked at
    record = core.record("ann")
    assert record is not None and record.state.events_total == 2
    assert len(_risk_updates(outputs)) == 1


def test_a_resent_event_in_a_new_message_counts_once() -> None:
    core = make_core()
    core.fold([_message("ann", 0, _event(1, "ann"))])
    core.fold([_message("ann", 1, _event(1, "ann"), _event(2, "ann"))])  # a client retry carries e1 again
    record = core.record("ann")
    assert record is not None and record.state.events_total == 2


def test_outputs_stay_in_the_outbox_until_their_batch_is_committed() -> None:
    assignment = Assignment()
    core = make_core(assignment=assignment)
    partition = key_partition(b"ann", PARTITIONS)
    bad = {"event_id": "ann-bad", "user_id": "ann", "event_type": "login", "platform": "web"}  # no event_time
    core.fold([_message("ann", 3, _event(1, "ann"), bad)])
    record = core.record("ann")
    assert record is not None and TOPICS.dead_letters.name in [topic for topic, *_ in record.outbox]

    assignment.commits[partition] = 3  # committed up to, not past, the batch: its outputs may still be needed
    core.fold([_message("ann", 4, _event(2, "ann"))])
    assert record.outbox != []
    assignment.commits[partition] = 5  # the batch at offset 3 (and 4) is committed: its outputs were acknowledged
    core.fold([_message("ann", 5, _event(3, "ann"))])
    assert record.outbox == []


def test_a_student_busier_than_the_commits_keeps_only_the_uncommitted_batches_outputs() -> None:
    """The student's next message always comes before the commit of their previous one (a replay at 0.1 s a day, a
    busy client): the outbox keeps the outputs of the batches not committed yet, not every batch's since the
    student began (1 MB after 126 replayed days, when Kafka refused the record)."""
    assignment = Assignment()
    core = make_core(assignment=assignment)
    partition = key_partition(b"ann", PARTITIONS)
    bad = {"event_id": "", "user_id": "ann", "event_type": "login", "platform": "web"}  # a dead letter per batch
    sizes = []
    for offset in range(200):
        assignment.commits[partition] = max(0, offset - 1)  # the student's previous batch is not committed yet
        core.fold([_message("ann", offset, _event(offset, "ann"), {**bad, "event_id": f"bad-{offset}"})])
        record = core.record("ann")
        assert record is not None
        sizes.append(len(record.outbox))
    assert {offset for *_, offset in record.outbox} == {198, 199}
    assert max(sizes) == max(sizes[:2])  # what two batches make, not growing (before: 1 more every batch)


def test_an_outbox_kept_before_outputs_carried_their_batch_is_settled_by_the_records_offset() -> None:
    assignment = Assignment()
    table = MemoryTable()
    core = make_core(table, assignment=assignment)
    core.fold([_message("ann", 3, _event(1, "ann"))])
    core.flush_records()
    old = UserRecord.from_bytes(table.rows[b"ann"])
    old.outbox = [[TOPICS.dead_letters.name, "ann", "{}"]]  # a record written by the previous version
    table.rows[b"ann"] = old.to_bytes()
    partition = key_partition(b"ann", PARTITIONS)
    assignment.commits[partition] = 4
    fresh = make_core(table, assignment=assignment)
    fresh.fold([_message("ann", 4, _event(2, "ann"))])
    record = fresh.record("ann")
    assert record is not None and all(len(o) == 4 and o[3] == 4 for o in record.outbox)


def test_records_of_a_partition_that_moved_away_are_not_written_back() -> None:
    table, assignment = MemoryTable(), Assignment()
    core = make_core(table, assignment=assignment)
    core.fold([_message("ann", 0, _event(1, "ann"))])
    assignment.partitions.discard(key_partition(b"ann", PARTITIONS))  # a rebalance before the commit
    core.flush_records()
    assert table.rows == {}  # its new owner folds the re-delivered message into its own state


def test_a_debounced_rescore_is_owed_in_the_record_until_kafka_acknowledges_it() -> None:
    outputs = MemoryOutputs()
    core = make_core(outputs=outputs, debounce_seconds=0.05)
    core.fold([_message("ann", 0, _event(1, "ann"))])  # scored at once: nothing scored it before
    core.fold([_message("ann", 1, _event(2, "ann"))])  # within the window: owed, in the record
    record = core.record("ann")
    assert record is not None and record.owed is not None
    assert len(_risk_updates(outputs)) == 1

    asyncio.run(asyncio.sleep(0.06))
    outputs.acknowledging = False  # Kafka away: the tick's outputs are not acknowledged
    with _short_wait(core), pytest.raises(RuntimeError, match="not acknowledged"):
        asyncio.run(core.flush_debounced())
    assert len(_risk_updates(outputs)) == 2
    assert record.owed is not None  # still owed: a restore re-scores it

    core._pending["ann"] = core._pending.get("ann") or _pending_now("ann")
    outputs.acknowledging = True
    asyncio.run(core.flush_debounced())
    assert record.owed is None  # paid once acknowledged


@contextmanager
def _short_wait(core: WorkerCore) -> Iterator[None]:
    """Kafka's acknowledgement waited for 10 ms instead of 60 s (the outputs the test leaves unacknowledged)."""
    original = core.outputs_acknowledged

    async def quick(timeout: float = 60.0) -> None:
        await original(0.01)

    core.outputs_acknowledged = quick  # type: ignore[method-assign]
    try:
        yield
    finally:
        core.outputs_acknowledged = original  # type: ignore[method-assign]


def _pending_now(user: str) -> object:
    from streams.worker.core.engine import _Pending

    return _Pending(0.0, ScoreRequest(user, NOW, "events"))


def test_a_timer_stores_a_record_only_once_its_outputs_are_acknowledged() -> None:
    table, outputs = MemoryTable(), MemoryOutputs()
    core = make_core(table, outputs)
    core.fold([_message("ann", 0, _event(1, "ann"))])
    core.flush_records()
    before = table.rows[b"ann"]

    outputs.acknowledging = False
    with _short_wait(core), pytest.raises(RuntimeError):
        asyncio.run(core.score_now("ann"))
    assert table.rows[b"ann"] == before  # would claim outputs Kafka never took

    outputs.acknowledging = True
    outcome = asyncio.run(core.score_now("ann"))
    assert outcome is not None and outcome.update.trigger == "manual"
    assert UserRecord.from_bytes(table.rows[b"ann"]).scored_at >= UserRecord.from_bytes(before).scored_at
    assert table.rows[b"ann"] != before
    assert asyncio.run(core.score_now("nobody")) is None


def test_a_restore_sends_an_uncommitted_records_outbox_again_and_rescores_it() -> None:
    table, assignment = MemoryTable(), Assignment()
    crashed = make_core(table, assignment=assignment)
    ann_home = key_partition(b"ann", PARTITIONS)
    bob = next(u for u in (f"b{i}" for i in range(100)) if key_partition(u.encode(), PARTITIONS) != ann_home)
    bad = {"event_id": "ann-bad", "user_id": "ann", "event_type": "login", "platform": "web"}
    crashed.fold([_message("ann", 7, _event(1, "ann"), bad), _message(bob, 2, _event(1, bob))])
    crashed.flush_records()  # the records reached Kafka; the crash came before ann's commit
    assignment.commits[ann_home] = 7  # ann's batch not committed (7 is the next offset to read)
    assignment.commits[key_partition(bob.encode(), PARTITIONS)] = 3  # bob's was
    ann_outbox = UserRecord.from_bytes(table.rows[b"ann"]).outbox

    outputs = MemoryOutputs()
    restored_core = make_core(table, outputs, assignment)
    restored, resent = asyncio.run(restored_core.restore_owed())
    assert (restored, resent) == (1, len(ann_outbox))  # ann's outbox sent again, ann re-scored; bob left alone
    assert outputs.on(TOPICS.dead_letters.name)  # among them ann's dead letter
    asyncio.run(restored_core.flush_debounced())
    assert {u["user_id"] for u in _risk_updates(outputs)} == {"ann"}


def test_an_erasure_leaves_a_tombstone_and_is_confirmed() -> None:
    table, outputs = MemoryTable(), MemoryOutputs()
    core = make_core(table, outputs)
    core.fold([_message("ann", 0, _event(1, "ann"))])
    core.flush_records()
    erase = {"erasure_id": "x1", "user_id": "ann", "requested_at": NOW.isoformat(), "requested_by": "t"}
    core.fold([Message(key_partition(b"ann", PARTITIONS), 1, None, orjson.dumps({"user_id": "ann", "erase": erase}))])
    assert b"ann" not in table.rows and table.changelog[-1] == (b"ann", key_partition(b"ann", PARTITIONS), None)
    assert core.record("ann") is None
    done = [orjson.loads(v) for v in outputs.on(TOPICS.erasures.name)]
    assert [(d["erasure_id"], d["found"]) for d in done] == [("x1", True)]


def test_garbage_is_dead_lettered_with_where_it_came_from_and_nothing_is_folded() -> None:
    outputs = MemoryOutputs()
    core = make_core(outputs=outputs)
    core.fold([Message(2, 9, None, b"not json"), _message("ann", 0, _event(1, "ann"))])
    letters = [orjson.loads(v) for v in outputs.on(TOPICS.dead_letters.name)]
    assert [(d["original_partition"], d["original_offset"]) for d in letters] == [(2, 9)]
    assert "not an EventBatch" in letters[0]["reason"]
    assert core.record("ann") is not None


def test_a_student_in_the_wrong_partition_of_a_partition_batch_is_refused_and_the_rest_folded() -> None:
    outputs = MemoryOutputs()
    core = make_core(outputs=outputs)
    ann_home = key_partition(b"ann", PARTITIONS)
    stranger = next(u for u in (f"s{i}" for i in range(100)) if key_partition(u.encode(), PARTITIONS) != ann_home)
    packed = {"batches": [{"user_id": "ann", "events": [_event(1, "ann")]},
                          {"user_id": stranger, "events": [_event(1, stranger)]}]}  # fmt: skip
    core.fold([Message(ann_home, 0, None, orjson.dumps(packed))])
    assert core.record("ann") is not None and core.record(stranger) is None
    letters = [orjson.loads(v) for v in outputs.on(TOPICS.dead_letters.name)]
    assert len(letters) == 1 and "belongs in partition" in letters[0]["reason"]


def test_the_event_clock_is_the_slowest_busy_partition() -> None:
    from streams.worker.core.clock import EngineClock

    clock = EngineClock("event", 30.0, lambda: {0, 1}, max_lead_seconds=300.0)
    clock.advance(0, NOW, wall=9e18)  # seen "now" (far future wall time: never idle in this test)
    clock.advance(1, NOW - timedelta(days=2), wall=9e18)
    assert clock.now() == NOW - timedelta(days=2)


def test_the_wall_clock_runs_ahead_of_the_wall_only_as_far_as_the_accepted_skew() -> None:
    from streams.worker.core.clock import EngineClock

    clock = EngineClock("wall", 30.0, lambda: {0}, max_lead_seconds=300)
    ahead = datetime.now(UTC) + timedelta(seconds=100)
    clock.advance(0, ahead, wall=time.time())
    assert clock.now() == ahead  # a little ahead: the event's own minute is 'now'
    clock.advance(0, datetime.now(UTC) + timedelta(hours=8), wall=time.time())  # a device clock hours ahead
    lead = clock.now() - datetime.now(UTC)
    assert timedelta(seconds=299) < lead <= timedelta(seconds=300)  # 'today' does not jump to tomorrow with it


def test_an_event_from_further_in_the_future_than_the_accepted_skew_is_dead_lettered_and_changes_nothing() -> None:
    outputs = MemoryOutputs()
    core = make_core(outputs=outputs)  # the accepted skew: 300 s (the worker's clock lead)
    arrived = NOW - timedelta(hours=1)
    near = _event(1, "ann", at=arrived + timedelta(seconds=290), received_at=arrived.isoformat())
    ahead = _event(2, "ann", at=arrived + timedelta(hours=9), received_at=arrived.isoformat())  # a device clock ahead
    message = _message("ann", 0, near, ahead)
    core.fold([message])
    letters = [orjson.loads(v) for v in outputs.on(TOPICS.dead_letters.name)]
    assert len(letters) == 1 and orjson.loads(letters[0]["raw"]) == ahead, letters  # the event itself: not lost
    where = (letters[0]["original_topic"], letters[0]["original_partition"], letters[0]["original_offset"])
    assert where == (TOPICS.events.name, message.partition, message.offset)
    assert (
        "is in the future" in letters[0]["reason"]
        and (arrived + timedelta(seconds=300)).isoformat() in (letters[0]["reason"])
    )
    record = core.record("ann")
    assert record is not None and record.state.events_total == 1
    assert record.state.last_event == (arrived + timedelta(seconds=290)).timestamp()
    # without received_at (a writer that stamps none) the arrival is now: an event of now is folded
    core.fold([_message("ann", 1, _event(3, "ann", at=datetime.now(UTC)))])
    record = core.record("ann")
    assert record is not None and record.state.events_total == 2
