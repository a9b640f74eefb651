"""Collector → Kafka → sink → ClickHouse, on the real servers."""

from __future__ import annotations

import gzip
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from config.settings import Settings
from deploy.infra import Infra
from kafka_io.producer import EventProducer
from schemas.topics import catalogue
from sinks.behavior_events import BehaviorEventsSink
from sinks.clickhouse.client import connect
from sinks.runner import SinkRunner
from tests.integration.helpers import read_topic, running_collector

pytestmark = pytest.mark.integration

WRITE = {"Authorization": "Bearer wk_demo_web"}


def _event(user: str, event_type: str = "login", **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC).astimezone()
    base = {
        "event_id": f"ev-{uuid.uuid4().hex}",
        "user_id": user,
        "event_type": event_type,
        "event_time": (now - timedelta(minutes=1)).isoformat(),
        "platform": "web",
        "timezone": "Europe/London",
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def collector(infra: Infra, settings: Settings) -> Iterator[str]:
    with running_collector(settings) as base:
        yield base


def _run_sink(settings: Settings, group: str) -> int:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    runner = SinkRunner(
        BehaviorEventsSink(settings),
        bootstrap=settings.kafka,
        topic=topics.events.name,
        dead_letters=None,
        group_id=group,
        batch_seconds=0.3,
    )
    return runner.run(idle_exit_seconds=3.0).rows_written


def _count(settings: Settings, where: str, params: dict[str, Any]) -> int:
    client = connect(settings)
    rows = client.execute(
        f"SELECT count() FROM {settings.clickhouse_database}.behavior_events FINAL WHERE {where}", params
    )
    return int(rows[0][0])


def test_batch_posted_to_collector_lands_in_behavior_events(collector: str, settings: Settings) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    events = [
        _event(user, "login"),
        _event(user, "session_started", session_id="s1"),
        _event(user, "quiz_submitted", course_id="c1", payload={"quiz_id": "q1", "score": 7.5, "max_score": 10.0}),
        _event(
            user,
            "content_viewed",
            payload={"content_id": "v1", "content_format": "video", "seconds_viewed": 30.0},
        ),
    ]
    resp = httpx.post(f"{collector}/v1/events", content=orjson.dumps({"events": events}), headers=WRITE)
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == [e["event_id"] for e in events]

    _run_sink(settings, f"sink-{uuid.uuid4().hex[:6]}")
    client = connect(settings)
    rows = client.execute(
        "SELECT event_type, score, content_format, course_id, timezone "
        f"FROM {settings.clickhouse_database}.behavior_events FINAL WHERE user_id = %(u)s ORDER BY event_type",
        {"u": user},
    )
    assert rows == [
        ("content_viewed", 0.0, "video", "", "Europe/London"),
        ("login", 0.0, "", "", "Europe/London"),
        ("quiz_submitted", 7.5, "", "c1", "Europe/London"),
        ("session_started", 0.0, "", "", "Europe/London"),
    ]
    when = client.execute(
        f"SELECT event_time, tz_offset_minutes, payload_json FROM {settings.clickhouse_database}.behavior_events"
        " FINAL WHERE event_id = %(e)s",
        {"e": events[2]["event_id"]},
    )
    sent = datetime.fromisoformat(events[2]["event_time"])
    assert when[0][0].replace(tzinfo=UTC) == sent.replace(microsecond=0)
    assert when[0][1] == int(sent.utcoffset().total_seconds()) // 60  # type: ignore[union-attr]
    assert orjson.loads(when[0][2]) == {
        "quiz_id": "q1",
        "score": 7.5,
        "max_score": 10.0,
        "attempt": 1,
        "duration_seconds": 0.0,
        "passed": None,
    }


def test_bad_events_get_reasons_and_go_to_dead_letters(collector: str, settings: Settings) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    good = _event(user)
    bad_score = _event(
        user, "quiz_submitted", course_id="c1", payload={"quiz_id": "q", "score": 11.0, "max_score": 10.0}
    )
    unknown = _event(user, "teleported")
    naive = _event(user, event_time="2026-01-01T10:00:00")
    resp = httpx.post(f"{collector}/v1/events", json=[good, bad_score, unknown, naive], headers=WRITE)
    assert resp.status_code == 200
    body = resp.json()
    assert body["accepted"] == [good["event_id"]]
    reasons = {r["index"]: r["reason"] for r in body["rejected"]}
    assert set(reasons) == {1, 2, 3}
    assert "score (11.0) cannot exceed max_score (10.0)" in reasons[1]
    assert "unknown event_type 'teleported'" in reasons[2]
    assert "event_time" in reasons[3] and "timezone" in reasons[3]

    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    letters = read_topic(settings.kafka, topics.dead_letters.name, expect=100, timeout=5)
    mine = {dl["event_id"]: dl for dl in letters if dl.get("user_id") == user}
    assert set(mine) == {bad_score["event_id"], unknown["event_id"], naive["event_id"]}
    assert "cannot exceed max_score" in mine[bad_score["event_id"]]["reason"]
    assert orjson.loads(mine[unknown["event_id"]]["raw"]) == unknown
    assert all(dl["source"] == "collector" and dl["app_id"] == "demo-web" for dl in mine.values())


def test_same_event_twice_is_stored_once(collector: str, settings: Settings) -> None:
    user = f"u-{uuid.uuid4().hex[:8]}"
    event = _event(user, "lesson_completed", course_id="c1", payload={"lesson_id": "l1", "duration_seconds": 60.0})
    for _ in range(2):
        assert httpx.post(f"{collector}/v1/events", json=[event], headers=WRITE).status_code == 200
    # And once more through the producer library, as a server-side producer retrying would.
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    with EventProducer(settings.kafka, topics) as producer:
        producer.send([event])
    _run_sink(settings, f"sink-{uuid.uuid4().hex[:6]}")
    assert _count(settings, "event_id = %(e)s", {"e": event["event_id"]}) == 1
    client = connect(settings)
    client.execute(f"OPTIMIZE TABLE {settings.clickhouse_database}.behavior_events FINAL")
    raw = client.execute(
        f"SELECT count() FROM {settings.clickhouse_database}.behavior_events WHERE event_id = %(e)s",
        {"e": event["event_id"]},
    )
    assert raw[0][0] == 1


def test_keys_and_limits(collector: str, settings: Settings) -> None:
    event = _event("u-keys")
    assert (
        httpx.post(f"{collector}/v1/events", json=[event], headers={"Authorization": "Bearer wrong-key"}).status_code
        == 401
    )
    assert httpx.post(f"{collector}/v1/events", json=[event]).status_code == 401
    assert (
        httpx.post(f"{collector}/v1/events", json=[event], headers={"X-Write-Key": "wk_demo_mobile"}).status_code == 200
    )

    gz = httpx.post(
        f"{collector}/v1/events",
        content=gzip.compress(orjson.dumps([_event("u-gzip")])),
        headers={**WRITE, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert gz.status_code == 200 and len(gz.json()["accepted"]) == 1

    too_many = [_event("u-many") for _ in range(settings.collector_max_batch_events + 1)]
    resp = httpx.post(f"{collector}/v1/events", json=too_many, headers=WRITE)
    assert resp.status_code == 400 and "too many events" in resp.json()["detail"]

    huge = b"[" + b" " * (settings.collector_max_body_bytes + 1) + b"]"
    assert httpx.post(f"{collector}/v1/events", content=huge, headers=WRITE).status_code == 413

    bomb = gzip.compress(b"[" + b" " * (settings.collector_max_body_bytes * 4) + b"]")
    resp = httpx.post(f"{collector}/v1/events", content=bomb, headers={**WRITE, "Content-Encoding": "gzip"})
    assert resp.status_code == 413 and "decompressed" in resp.json()["detail"]

    preflight = httpx.options(
        f"{collector}/v1/events",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] in (
        "*",
        "https://app.example",
    )

    doc = httpx.get(f"{collector}/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/v1/events" in doc["paths"]
    assert "BehaviorEvent" in doc["components"]["schemas"]


def test_sink_waits_for_clickhouse_and_loses_nothing(infra: Infra, settings: Settings) -> None:
    """ClickHouse goes away mid-stream: the runner pauses, retries and resumes; every event lands once."""
    from deploy import server

    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    user_prefix = f"outage-{uuid.uuid4().hex[:6]}"
    events = [_event(f"{user_prefix}-{i % 50}") for i in range(2_000)]
    group = f"sink-{uuid.uuid4().hex[:6]}"
    runner = SinkRunner(
        BehaviorEventsSink(settings),
        bootstrap=settings.kafka,
        topic=topics.events.name,
        dead_letters=None,
        group_id=group,
        batch_seconds=0.2,
        max_backoff_seconds=0.5,
    )
    thread = threading.Thread(target=runner.run, kwargs={"idle_exit_seconds": 60.0}, daemon=True)
    with EventProducer(settings.kafka, topics) as producer:
        producer.send(events[:1_000])
        producer.flush()
        thread.start()
        deadline = time.monotonic() + 30
        while runner.stats.rows_written < 1_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert runner.stats.rows_written >= 1_000  # (earlier tests' events share the topic)
        server.stop(infra.clickhouse)
        producer.send(events[1_000:])
        producer.flush()

    deadline = time.monotonic() + 10
    while runner.stats.write_failures == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert runner.stats.write_failures > 0, "the sink never noticed ClickHouse was down"
    server.start(infra.clickhouse)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if _count(settings, "startsWith(user_id, %(p)s)", {"p": user_prefix}) == len(events):
                break
        except Exception:
            pass
        time.sleep(0.5)
    runner.stop()
    thread.join(timeout=30)
    assert _count(settings, "startsWith(user_id, %(p)s)", {"p": user_prefix}) == len(events)
    assert runner.stats.max_buffered_rows <= runner.batch_rows + 2_000
