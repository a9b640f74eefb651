"""Moving to a new catalogue, without a broker: which topics carry state, where a message goes, and what of a
worker's record moves (``kafka_io.catalogue_move``, ``streams.worker.state_move``)."""

from __future__ import annotations

import orjson

from kafka_io.catalogue_move import carried_topics
from kafka_io.producer import key_partition
from processors.pipeline import UserRecord
from processors.state import UserState
from schemas.topics import catalogue
from streams.worker.core.table_keys import position_key
from streams.worker.state_move import changelog_topic, moved_record


def test_the_state_topics_are_carried_each_to_its_counterpart() -> None:
    carried = {c.source.name: c for c in carried_topics(catalogue("a", 2), catalogue("b", 8))}
    names = ("courses", "erasure-reports", "contacts", "notification-ledger", "standings", "league-results",
             "bandit-outcomes")  # fmt: skip
    assert set(carried) == {f"a.{n}.v1" for n in names}
    assert carried["a.contacts.v1"].target.name == "b.contacts.v1" and carried["a.contacts.v1"].newest_only
    assert not carried["a.bandit-outcomes.v1"].newest_only  # every outcome is the bandit's memory, not the newest


def test_a_message_goes_where_its_student_hashes_under_the_new_count() -> None:
    carried = {c.source.name: c for c in carried_topics(catalogue("a", 2), catalogue("b", 8))}
    assert carried["a.contacts.v1"].partition(b"student-7", b"{}") == key_partition(b"student-7", 8)
    entry = orjson.dumps({"ledger_key": "iv-1:email", "user_id": "student-7"})
    assert carried["a.notification-ledger.v1"].partition(b"iv-1:email", entry) == key_partition(b"student-7", 8)
    assert carried["a.courses.v1"].partition(b"course-1", b"{}") == 0  # one partition: stays one


def test_a_record_moves_without_the_old_topic_offsets_and_positions_do_not_move() -> None:
    record = UserRecord(state=UserState(user_id="s1"), score_seq=7, source_offset=1234,
                        owed=(1.0, 2.0, 3.0), outbox=[["t", "s1", "{}", 1200]])  # fmt: skip
    moved = UserRecord.from_bytes(moved_record(b"s1", record.to_bytes()) or b"")
    assert moved.source_offset == -1 and moved.outbox == []
    assert moved.score_seq == 7 and moved.owed == (1.0, 2.0, 3.0)  # a re-score still owed goes along
    assert moved_record(position_key(3), b"1234") is None


def test_the_changelog_is_named_as_fausts() -> None:
    assert changelog_topic("engage") == "engage-worker-user-state-changelog"
