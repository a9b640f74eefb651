"""How the producer library turns events into per-user Kafka messages (no broker needed)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from kafka_io.producer import EventProducer, group_by_user, key_partition
from schemas.events import parse_event
from schemas.messages import EventBatch, PartitionBatch
from schemas.topics import catalogue

RECEIVED = datetime(2024, 5, 1, 8, 30, 15, 250000, tzinfo=UTC)
CLIENT_RECEIVED = "2024-05-01T08:00:30+00:00"


@pytest.fixture(scope="module")
def producer() -> Iterator[EventProducer]:
    # Construction does not connect; no poller thread and nothing is produced, so close() returns at once.
    p = EventProducer(
        "127.0.0.1:1", catalogue("unit-test", 1), source="unit-src", poll_thread=False, config={"log_level": 0}
    )
    try:
        yield p
    finally:
        assert p.close(timeout=0.1) == 0


def decode(value: bytes) -> dict:
    return orjson.loads(value)


# ------------------------------------------------------------------------------------------------------
# group_by_user
# ------------------------------------------------------------------------------------------------------


def test_group_by_user_keeps_each_users_order_and_first_seen_user_order():
    events = [
        {"user_id": "b", "n": 1},
        {"user_id": "a", "n": 2},
        {"user_id": "b", "n": 3},
        {"user_id": "c", "n": 4},
        {"user_id": "a", "n": 5},
        {"user_id": "b", "n": 6},
    ]
    groups = group_by_user(events)
    assert list(groups) == ["b", "a", "c"]
    assert [e["n"] for e in groups["b"]] == [1, 3, 6]
    assert [e["n"] for e in groups["a"]] == [2, 5]
    assert [e["n"] for e in groups["c"]] == [4]


def test_group_by_user_of_nothing_is_empty():
    assert group_by_user([]) == {}


# ------------------------------------------------------------------------------------------------------
# encode_batches
# ------------------------------------------------------------------------------------------------------


def test_one_message_per_user_keyed_by_user_id(producer, make_event):
    events = [
        make_event("login", event_id="e1", user_id="u-1"),
        make_event("login", event_id="e2", user_id="u-2"),
        make_event("enrolled", event_id="e3", user_id="u-1"),
        make_event("login", event_id="e4", user_id="u-3"),
        make_event("unenrolled", event_id="e5", user_id="u-1"),
    ]
    batches = producer.encode_batches(events, RECEIVED)
    assert [key for key, _, _ in batches] == [b"u-1", b"u-2", b"u-3"]
    assert [n for _, _, n in batches] == [3, 1, 1]
    first = decode(batches[0][1])
    assert set(first) == {"schema_version", "user_id", "source", "events"}
    assert first["schema_version"] == 1
    assert first["user_id"] == "u-1"
    assert first["source"] == "unit-src"
    assert [e["event_id"] for e in first["events"]] == ["e1", "e3", "e5"]
    for _, value, _ in batches:
        body = decode(value)
        assert all(e["user_id"] == body["user_id"] for e in body["events"])


def test_non_ascii_user_ids_are_utf8_keys(producer, make_event):
    [(key, value, _)] = producer.encode_batches([make_event("login", user_id="étudiant-1")], RECEIVED)
    assert key == "étudiant-1".encode()
    assert decode(value)["user_id"] == "étudiant-1"


def test_explicit_received_at_is_stamped_on_every_event(producer, make_event):
    events = [make_event("login", event_id="e1"), make_event("enrolled", event_id="e2")]
    [(_, value, _)] = producer.encode_batches(events, RECEIVED)
    stamps = [e["received_at"] for e in decode(value)["events"]]
    assert stamps == [RECEIVED.isoformat()] * 2
    assert datetime.fromisoformat(stamps[0]) == RECEIVED


def test_explicit_received_at_overwrites_what_a_client_sent(producer, make_event):
    event = make_event("login", received_at=CLIENT_RECEIVED)
    [(_, value, _)] = producer.encode_batches([event], RECEIVED)
    assert decode(value)["events"][0]["received_at"] == RECEIVED.isoformat()


def test_without_received_at_an_existing_stamp_is_kept(producer, make_event):
    event = make_event("login", received_at=CLIENT_RECEIVED)
    [(_, value, _)] = producer.encode_batches([event])
    assert decode(value)["events"][0]["received_at"] == CLIENT_RECEIVED


def test_without_received_at_unstamped_events_get_now(producer, make_event):
    before = datetime.now(UTC)
    [(_, value, _)] = producer.encode_batches([make_event("login"), make_event("login", received_at=None)])
    after = datetime.now(UTC)
    for event in decode(value)["events"]:
        stamp = datetime.fromisoformat(event["received_at"])
        assert stamp.utcoffset() == timedelta(0)
        assert before <= stamp <= after


def test_encoding_does_not_mutate_the_callers_events(producer, make_event):
    events = [make_event("login", received_at=CLIENT_RECEIVED), make_event("login", event_id="e2")]
    original = copy.deepcopy(events)
    producer.encode_batches(events, RECEIVED)
    assert events == original


def test_dict_events_pass_through_unchanged_apart_from_the_stamp(producer, make_event):
    event = make_event("quiz_submitted", app_version="3.2.1")
    [(_, value, _)] = producer.encode_batches([event], RECEIVED)
    assert decode(value)["events"][0] == {**event, "received_at": RECEIVED.isoformat()}


def test_pydantic_models_are_encoded_in_contract_json_form(producer, make_event):
    model = parse_event(make_event("quiz_submitted", event_id="m1"))
    [(key, value, n)] = producer.encode_batches([model], RECEIVED)
    assert (key, n) == (b"student-42", 1)
    encoded = decode(value)["events"][0]
    assert encoded == {**model.model_dump(mode="json"), "received_at": RECEIVED.isoformat()}
    assert encoded["payload"]["score"] == 7.5
    assert encoded["event_time"] == "2024-05-01T10:00:00+02:00"


def test_a_models_own_received_at_is_kept_without_an_explicit_one(producer, make_event):
    model = parse_event(make_event("login", received_at=CLIENT_RECEIVED))
    [(_, value, _)] = producer.encode_batches([model])
    stamp = decode(value)["events"][0]["received_at"]
    assert datetime.fromisoformat(stamp) == datetime.fromisoformat(CLIENT_RECEIVED)


def test_models_and_dicts_mix_in_one_call(producer, make_event):
    events = [
        parse_event(make_event("login", event_id="m1", user_id="u-1")),
        make_event("enrolled", event_id="d1", user_id="u-1"),
        parse_event(make_event("login", event_id="m2", user_id="u-2")),
    ]
    batches = producer.encode_batches(events, RECEIVED)
    assert [(k, n) for k, _, n in batches] == [(b"u-1", 2), (b"u-2", 1)]
    assert [e["event_id"] for e in decode(batches[0][1])["events"]] == ["m1", "d1"]


def test_encoded_batches_validate_as_event_batches(producer, make_event):
    events = [
        make_event("login", event_id="e1", user_id="u-1"),
        parse_event(make_event("course_progress", event_id="e2", user_id="u-1")),
        make_event("session_ended", event_id="e3", user_id="u-2", event_time="2024-05-01T03:00:00-05:00"),
    ]
    batches = producer.encode_batches(events, RECEIVED)
    parsed = [EventBatch.model_validate_json(value) for _, value, _ in batches]
    assert [b.user_id for b in parsed] == ["u-1", "u-2"]
    assert [[e.event_id for e in b.events] for b in parsed] == [["e1", "e2"], ["e3"]]
    assert all(b.source == "unit-src" for b in parsed)
    assert all(e.received_at == RECEIVED for b in parsed for e in b.events)
    assert parsed[1].events[0].event_time.utcoffset() == timedelta(hours=-5)


def test_a_non_utc_received_at_keeps_its_offset(producer, make_event):
    received = datetime(2024, 5, 1, 10, 30, tzinfo=timezone(timedelta(hours=2)))
    [(_, value, _)] = producer.encode_batches([make_event("login")], received)
    batch = EventBatch.model_validate_json(value)
    assert batch.events[0].received_at == received
    assert decode(value)["events"][0]["received_at"].endswith("+02:00")


def test_no_events_no_messages(producer):
    assert producer.encode_batches([], RECEIVED) == []


# ------------------------------------------------------------------------------------------------------
# a producer that keeps timing out is replaced (the collector's, after a broker restart)
# ------------------------------------------------------------------------------------------------------


def test_a_producer_whose_messages_time_out_is_renewed_and_senders_are_told(make_event):
    import asyncio
    import time

    from kafka_io.producer import DeliveryFailed

    # Nothing listens on port 1 of loopback: every message times out after 300 ms.
    p = EventProducer("127.0.0.1:1", catalogue("unit-test", 1), source="collector", report_successes=True,
                      config={"log_level": 0, "message.timeout.ms": 300}, renew_when_timing_out=True)  # fmt: skip
    try:
        first = p._producer
        with pytest.raises(DeliveryFailed, match="timed out"):
            asyncio.run(asyncio.wait_for(p.send_async([make_event("login")]), timeout=10))
        deadline = time.monotonic() + 5
        while p.renewals == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.renewals == 1 and p._producer is not first
        # Sends go on through the new producer, and still answer (here: with a failure, nothing listens).
        with pytest.raises(DeliveryFailed):
            asyncio.run(asyncio.wait_for(p.send_async([make_event("login")]), timeout=10))
    finally:
        p.close(timeout=0.1)


def test_producers_that_do_not_await_their_reports_are_never_renewed(make_event):
    import time

    p = EventProducer("127.0.0.1:1", catalogue("unit-test", 1), source="processor",
                      config={"log_level": 0, "message.timeout.ms": 300})  # fmt: skip
    try:
        p.send([make_event("login")])
        deadline = time.monotonic() + 3
        while p.stats.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert p.stats.failed == 1 and p.renewals == 0
    finally:
        p.close(timeout=0.1)


# ------------------------------------------------------------------------------------------------------
# encode_partition_batches (what ``send`` writes)
# ------------------------------------------------------------------------------------------------------


def test_each_students_batch_is_packed_into_the_partition_their_id_hashes_to(producer, make_event):
    users = [f"student-{n}" for n in range(40)]
    events = [make_event("login", event_id=f"e{n}-{u}", user_id=u) for n in range(3) for u in users]
    packed = producer.encode_partition_batches(events, 4, RECEIVED)
    assert sorted(p for p, _, _, _ in packed) == sorted({key_partition(u.encode(), 4) for u in users})
    seen: dict[str, int] = {}
    for partition, key, value, n in packed:
        message = PartitionBatch.model_validate_json(value)  # the contract, validated whole
        assert key == f"partition:{partition}".encode() and message.partition == partition
        assert message.source == "unit-src" and n == sum(len(b.events) for b in message.batches)
        for batch in message.batches:
            assert key_partition(batch.user_id.encode(), 4) == partition
            assert [e.event_id for e in batch.events] == [f"e{k}-{batch.user_id}" for k in range(3)]  # in order
            seen[batch.user_id] = seen.get(batch.user_id, 0) + 1
    assert seen == dict.fromkeys(users, 1)  # one batch per student, none lost


def test_a_partition_gets_a_new_message_past_max_events_and_a_students_batch_is_never_split(producer, make_event):
    events = [make_event("login", event_id=f"e{n}", user_id="same-student") for n in range(7)]
    events += [make_event("login", event_id=f"o{n}", user_id=f"other-{n}") for n in range(30)]
    packed = producer.encode_partition_batches(events, 1, RECEIVED, max_events=5)
    sizes = [n for _, _, _, n in packed]
    assert sizes[0] == 7  # larger than max_events alone: kept whole
    assert all(n <= 5 for n in sizes[1:]) and sum(sizes) == 37
    assert {p for p, _, _, _ in packed} == {0}


def test_packed_events_are_stamped_like_per_student_batches(producer, make_event):
    [(_, _, value, _)] = producer.encode_partition_batches(
        [make_event("login", received_at=CLIENT_RECEIVED)], 1, RECEIVED
    )
    assert decode(value)["batches"][0]["events"][0]["received_at"] == RECEIVED.isoformat()
