"""Hostile input against the real collector (uvicorn) and real Kafka: malformed bodies, hostile events, a duplicate
flood and a burst of hypothesis-generated bodies. The collector answers 4xx with a JSON error naming the problem
(never 5xx), stays healthy, and every refused body or event is on the dead-letter topic with its reason.

The module runs its own collector with its own write key (so its dead letters carry their own app id) on its own
topics (so the dead-letter topic holds exactly what this module caused).
"""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from kafka_io.client import kafka_conf
from schemas.topics import catalogue
from sinks.behavior_events import BehaviorEventsSink
from sinks.clickhouse.client import connect
from sinks.runner import SinkRunner
from tests.integration.helpers import running_collector
from tests.unit.test_hostile_input import as_sent, bodies

pytestmark = pytest.mark.integration

KEY = "wk_hostile_input_key"
WRITE = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def hostile(infra: Infra, settings: Settings) -> Iterator[tuple[str, Settings]]:
    s = settings.model_copy(
        update={
            "topic_prefix": f"hostile-{uuid.uuid4().hex[:8]}",
            "collector_port": free_port(),
            "write_keys": [f"hostile-{uuid.uuid4().hex[:6]}:{KEY}"],
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    with running_collector(s) as base:
        yield base, s


def app_id(s: Settings) -> str:
    return s.write_keys[0].split(":", 1)[0]


def topic_messages(s: Settings, which: str) -> list[dict[str, Any]]:
    """Every message on one of the module's topics, read up to the end it has now."""
    topic = getattr(catalogue(s.topic_prefix, s.event_partitions), which).name
    consumer = Consumer(kafka_conf(s.kafka, {"group.id": f"hostile-{uuid.uuid4().hex}", "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            out.append(orjson.loads(msg.value()))
            if msg.offset() + 1 >= ends.get(msg.partition(), 0):
                ends.pop(msg.partition(), None)
        assert not ends, f"could not read {topic} to its end"
        return out
    finally:
        consumer.close()


def assert_healthy(base: str) -> None:
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    ok = httpx.post(f"{base}/v1/events", json=[_event(f"u-ok-{uuid.uuid4().hex[:6]}")], headers=WRITE, timeout=10)
    assert ok.status_code == 200 and len(ok.json()["accepted"]) == 1, ok.text


def _event(user: str, event_type: str = "login", **extra: Any) -> dict[str, Any]:
    base = {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "user_id": user,
        "event_type": event_type,
        "event_time": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "platform": "web",
    }
    base.update(extra)
    return base


# ------------------------------------------------------------------------------------------------------
# Whole bodies
# ------------------------------------------------------------------------------------------------------


def test_unusable_bodies_get_a_clear_4xx_and_are_dead_lettered(hostile: tuple[str, Settings]) -> None:
    base, s = hostile
    limit = s.collector_max_body_bytes

    def tok() -> bytes:
        return f"tok-{uuid.uuid4().hex}".encode()

    # (body, extra headers, status, words the detail must contain, token the dead letter's raw must hold or None)
    cases: list[tuple[bytes, dict[str, str], int, str, bytes | None]] = []

    def case(make: Any, headers: dict[str, str], status: int, words: str, kept: bool = True) -> None:
        t = tok()
        cases.append((make(t), headers, status, words, t if kept else None))

    case(lambda t: b'{"events": [{"event_id": "' + t, {}, 400, "not valid JSON")
    case(lambda t: b"<html>" + t + b"</html>", {"Content-Type": "text/html"}, 400, "not valid JSON")
    case(lambda t: b"events=" + t, {"Content-Type": "application/x-www-form-urlencoded"}, 400, "not valid JSON")
    case(
        lambda t: b"--x\r\nContent-Disposition: form-data; name=events\r\n\r\n" + t + b"\r\n--x--\r\n",
        {"Content-Type": "multipart/form-data; boundary=x"},
        400,
        "not valid JSON",
    )
    case(lambda t: b"\xff\xfe\x00" + t, {}, 400, "not valid JSON")
    case(lambda t: b"\xef\xbb\xbf[" + t + b"]", {}, 400, "not valid JSON")
    case(lambda t: b'{"events": [NaN], "t": "' + t + b'"}', {}, 400, "not valid JSON")
    case(lambda t: b'{"events": [1e400], "t": "' + t + b'"}', {}, 400, "not valid JSON")
    case(lambda t: b'{"events": ["\\ud800' + t + b'"]}', {}, 400, "not valid JSON")
    case(lambda t: b"[" * 1_100 + t + b"]" * 1_100, {}, 400, "depth limit")
    case(lambda t: b'"' + t + b'"', {}, 400, "JSON object")
    case(lambda t: b'{"events": {"id": "' + t + b'"}}', {}, 400, "JSON object")
    case(lambda t: b'{"event": [{"id": "' + t + b'"}]}', {}, 400, "JSON object")
    case(lambda t: b'{"events": [], "t": "' + t + b'"}', {}, 400, "empty")
    case(lambda t: b"[" + b",".join([b'"' + t + b'"'] * (s.collector_max_batch_events + 1)) + b"]", {}, 400, "too many")
    case(lambda t: b'[{"t": "' + t + b'"}]', {"Content-Encoding": "br"}, 400, "Content-Encoding")
    case(lambda t: b'[{"t": "' + t + b'"}]', {"Content-Encoding": "gzip"}, 400, "not valid gzip")
    case(
        lambda t: gzip.compress(b'[{"t": "' + t + b'"}]')[:-8],
        {"Content-Encoding": "gzip"},
        400,
        "truncated",
        kept=False,  # kept, but compressed: the token is not readable in it
    )
    # A body at the limit of NUL bytes: its dead letter (JSON writes each NUL in 6 bytes) must still fit in Kafka.
    case(lambda t: t + b"\x00" * (limit - len(t)), {}, 400, "not valid JSON")
    case(lambda t: t + b" " * limit, {}, 413, "exceeds the limit", kept=False)
    case(
        lambda t: gzip.compress(b"[" + b" " * (limit * 4) + t + b"]"),
        {"Content-Encoding": "gzip"},
        413,
        "decompressed",
        kept=False,
    )

    expected_letters: dict[bytes, str] = {}
    for body, headers, status, words, token in cases:
        resp = httpx.post(f"{base}/v1/events", content=body, headers={**WRITE, **headers}, timeout=30)
        assert resp.status_code == status, (headers, body[:80], resp.status_code, resp.text[:300])
        answer = resp.json()
        assert answer["error"] in ("bad_request", "payload_too_large") and words in answer["detail"], answer
        if token is not None:
            expected_letters[token] = answer["detail"]
    for auth in ({"Authorization": "Bearer " + "x" * 10_000}, {"Authorization": "Basic Zm9vOmJhcg=="}, {}):
        resp = httpx.post(f"{base}/v1/events", content=b"[]", headers=auth, timeout=10)
        assert resp.status_code == 401 and "write key" in resp.json()["detail"]
    # text/plain (navigator.sendBeacon's type) with a valid body is taken, like application/json.
    beacon = httpx.post(
        f"{base}/v1/events", content=orjson.dumps([_event("u-beacon")]), headers={**WRITE, "Content-Type": "text/plain"}
    )
    assert beacon.status_code == 200 and len(beacon.json()["accepted"]) == 1
    assert_healthy(base)

    letters = [dl for dl in topic_messages(s, "dead_letters") if dl["app_id"] == app_id(s)]
    for token, detail in expected_letters.items():
        mine = [dl for dl in letters if token.decode() in dl["raw"]]
        assert len(mine) == 1, (token, detail)
        assert mine[0]["reason"] == detail and mine[0]["source"] == "collector"
    truncated = [dl for dl in letters if "truncated" in dl["reason"]]
    assert len(truncated) == 1


# ------------------------------------------------------------------------------------------------------
# Hostile events, one by one
# ------------------------------------------------------------------------------------------------------


def test_hostile_events_are_refused_one_by_one_with_reasons_on_the_dead_letter_topic(
    hostile: tuple[str, Settings],
) -> None:
    base, s = hostile
    user = f"u-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    quiz = {"course_id": "c1", "payload": {"quiz_id": "q1", "score": 5.0, "max_score": 10.0}}
    deep = "__NESTED_1000_DEEP__"  # replaced in the body (orjson writes at most 255 levels, reads 1024)
    token = uuid.uuid4().hex

    def quiz_with(**payload: Any) -> dict[str, Any]:
        return _event(user, "quiz_submitted", course_id="c1", payload={**quiz["payload"], **payload})

    # (event, a field or phrase its reason must name)
    refused: list[tuple[Any, str]] = [
        (_event(user, "teleported"), "unknown event_type 'teleported'"),
        (_event(user, "LOGIN"), "unknown event_type 'LOGIN'"),
        (_event(user, 42), "event_type"),
        ({k: v for k, v in _event(user).items() if k != "event_type"}, "event_type is missing"),
        (_event(user, event_time="9999-12-31T23:59:59+14:00"), "in the future"),
        (_event(user, event_time=(now + timedelta(minutes=6)).isoformat()), "in the future"),
        (_event(user, event_time="0001-01-01T00:00:00+00:00"), "older than 400 days"),
        (_event(user, event_time=(now - timedelta(days=401)).isoformat()), "older than 400 days"),
        (_event(user, event_time="2026-01-01T10:00:00"), "event_time"),
        (_event(user, event_time=str(int(now.timestamp()))), "event_time: must be an ISO 8601 string"),
        (_event(user, event_time=int(now.timestamp())), "event_time: must be an ISO 8601 string"),
        (_event(user, event_time="2024-02-30T10:00:00Z"), "event_time"),
        (quiz_with(score="5"), "payload.score"),
        (quiz_with(score=11.0), "score (11.0) cannot exceed max_score (10.0)"),
        (quiz_with(attempt=2**64 - 1), "payload.attempt"),
        (quiz_with(attempt=1.5), "payload.attempt"),
        (quiz_with(attempt=True), "payload.attempt"),
        (_event(user, platform="windows"), "platform"),
        (_event("u\u202eevil"), "user_id"),
        (_event("u\u200bx"), "user_id"),
        (_event("student-😀"), "user_id"),
        (_event(user, event_id=f"e\x00{token}"), "event_id"),
        (_event(user, event_id=f"e\u202e{token}"), "event_id"),
        ({**_event(user), "\u202efield\n": 1}, "\\u202efield\\n: is not a known field"),
        ({**_event(user), **{f"extra{i}": i for i in range(1_000)}}, "more problems not listed"),
        (_event(user, payload=[1]), "payload"),
        (_event(user, device="iPhone"), "device"),
        (_event(user, timezone="Europe/London\x00"), "timezone"),
        (_event(user, locale="en-GB\n"), "locale"),
        (_event(user, app_version="v" * 10_000), "app_version"),
        (_event(user, app_version=deep), "app_version"),
        (f"not-an-event-{token}", "an event must be a JSON object"),
        ([f"not-an-event-{token}"], "an event must be a JSON object"),
    ]
    accepted = [
        _event(
            user,
            app_version="😀👩\u200d👩\u200d👧",
            device={"model": "\u0645\u0631\u062d\u0628\u0627 \u202e", "os": "a\x00b"},
        ),
        _event(user, "session_started", session_id="s1", payload={"referrer": "zero\u200bwidth 🔥 \U0010ffff"}),
        quiz_with(score=1e308, max_score=1e308, attempt=2**63 - 1),
        _event(user, event_time=(now - timedelta(minutes=2)).astimezone(timezone(timedelta(hours=14))).isoformat()),
        _event(user, event_time=(now - timedelta(minutes=2)).astimezone(timezone(timedelta(hours=-12))).isoformat()),
        _event(user, event_time=(now + timedelta(minutes=4)).isoformat()),
        _event(user, event_time=(now - timedelta(days=399)).isoformat()),
        _event(user, locale="en_GB", timezone="Pacific/Kiritimati"),
    ]
    batch = [e for e, _ in refused] + accepted
    body = orjson.dumps(batch).replace(f'"{deep}"'.encode(), b"[" * 1000 + b"1" + b"]" * 1000)
    resp = httpx.post(f"{base}/v1/events", content=body, headers=WRITE, timeout=30)
    assert resp.status_code == 200, resp.text[:500]
    answer = resp.json()
    assert answer["accepted"] == [e["event_id"] for e in accepted]
    reasons = {r["index"]: r["reason"] for r in answer["rejected"]}
    assert sorted(reasons) == list(range(len(refused)))
    for index, (_, words) in enumerate(refused):
        assert words in reasons[index], (index, words, reasons[index])
        assert reasons[index].isprintable(), reasons[index]
    # One event of ~1 MiB with 80,000 unknown fields: a short reason, and a dead letter that fits in Kafka.
    many = _event(user)
    many.update({f"k{i:06d}": 0 for i in range(80_000)})
    resp = httpx.post(f"{base}/v1/events", content=orjson.dumps([many]), headers=WRITE, timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    (rejection,) = resp.json()["rejected"]
    assert rejection["reason"].endswith("(event): 79980 more problems not listed")
    refused.append((many, "k000000: is not a known field"))
    reasons[len(refused) - 1] = rejection["reason"]
    assert_healthy(base)

    # Every refused event is on the dead-letter topic, with the same reason and its raw JSON where it had one.
    letters = [dl for dl in topic_messages(s, "dead_letters") if dl["app_id"] == app_id(s)]
    by_reason = Counter(dl["reason"] for dl in letters)
    for index, (event, _) in enumerate(refused):
        assert by_reason[reasons[index]] >= 1, reasons[index]
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            mine = [dl for dl in letters if dl["event_id"] == event["event_id"]]
            assert [dl["reason"] for dl in mine] == [reasons[index]]
            if event is many:  # ~1 MiB: kept up to what fits in one Kafka message, and says so
                assert mine[0]["raw"].endswith("more characters not kept]")
            elif event.get("app_version") != deep:
                assert orjson.loads(mine[0]["raw"]) == event
    assert sum(1 for dl in letters if token in dl["raw"] and "JSON object" in dl["reason"]) == 2

    # The accepted ones, unicode and all, are on the events topic exactly as sent (received_at stamped).
    stored = {e["event_id"]: e for m in topic_messages(s, "events") if m["user_id"] == user for e in m["events"]}
    for sent in accepted:
        got = stored[sent["event_id"]]
        for key, value in sent.items():
            if key == "locale":
                assert got[key] == "en-GB"
            elif key in ("device", "payload"):
                assert {k: got[key][k] for k in value} == value
            elif key == "event_time":
                assert datetime.fromisoformat(got[key]) == datetime.fromisoformat(value)
            else:
                assert got[key] == value


# ------------------------------------------------------------------------------------------------------
# A duplicate flood
# ------------------------------------------------------------------------------------------------------


def test_a_duplicate_flood_is_answered_and_stored_once(hostile: tuple[str, Settings]) -> None:
    base, s = hostile
    event = _event(f"u-flood-{uuid.uuid4().hex[:6]}", "lesson_completed", course_id="c1")
    event["payload"] = {"lesson_id": "l1", "duration_seconds": 60.0}
    # In one request: the first copy is taken, the other 499 are reported as duplicates.
    resp = httpx.post(f"{base}/v1/events", json=[event] * s.collector_max_batch_events, headers=WRITE, timeout=30)
    assert resp.status_code == 200
    assert resp.json()["accepted"] == [event["event_id"]]
    assert len(resp.json()["duplicates"]) == s.collector_max_batch_events - 1
    # Across 40 concurrent requests (a client retrying in a loop): each is answered 200.
    statuses: list[int] = []

    def send() -> None:
        statuses.append(httpx.post(f"{base}/v1/events", json=[event, event], headers=WRITE, timeout=30).status_code)

    threads = [threading.Thread(target=send) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [200] * 40
    assert_healthy(base)

    # The collector is idempotent per request; across requests, storage is: behavior_events holds it once.
    runner = SinkRunner(
        BehaviorEventsSink(s),
        bootstrap=s.kafka,
        topic=catalogue(s.topic_prefix, s.event_partitions).events.name,
        dead_letters=None,
        group_id=f"sink-{uuid.uuid4().hex[:6]}",
        batch_seconds=0.3,
    )
    runner.run(idle_exit_seconds=3.0)
    client = connect(s)
    rows = client.execute(
        f"SELECT count() FROM {s.clickhouse_database}.behavior_events FINAL WHERE event_id = %(e)s",
        {"e": event["event_id"]},
    )
    assert rows[0][0] == 1


# ------------------------------------------------------------------------------------------------------
# A burst of random bodies
# ------------------------------------------------------------------------------------------------------

_BURST: dict[str, int] = {"requests": 0, "letters": 0}


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(body=bodies(), gzipped=st.booleans(), content_type=st.sampled_from(["application/json", "text/plain", None]))
def _burst(base: str, body: bytes, gzipped: bool, content_type: str | None) -> None:
    body, headers = as_sent(body, WRITE, content_type, gzipped)
    resp = httpx.post(f"{base}/v1/events", content=body, headers=headers, timeout=30)
    assert resp.status_code in (200, 400), (body[:200], resp.status_code, resp.text[:300])
    answer = resp.json()
    _BURST["requests"] += 1
    if resp.status_code == 400:
        assert answer["error"] == "bad_request" and answer["detail"]
        _BURST["letters"] += 1  # the whole body
    else:
        assert all(r["reason"] for r in answer["rejected"])
        _BURST["letters"] += len(answer["rejected"])


def test_a_burst_of_random_bodies_never_gets_a_5xx_and_every_refusal_is_kept(infra: Infra, settings: Settings) -> None:
    # Its own collector and topics, so the dead letters can be counted exactly.
    s = settings.model_copy(
        update={
            "topic_prefix": f"burst-{uuid.uuid4().hex[:8]}",
            "collector_port": free_port(),
            "write_keys": [f"burst-{uuid.uuid4().hex[:6]}:{KEY}"],
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    with running_collector(s) as base:
        _burst(base)
        assert_healthy(base)
        letters = [dl for dl in topic_messages(s, "dead_letters") if dl["app_id"] == app_id(s)]
    assert _BURST["requests"] >= 80
    assert len(letters) == _BURST["letters"]
    assert all(dl["reason"] for dl in letters)
