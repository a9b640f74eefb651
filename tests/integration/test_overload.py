"""Overload against the real collector and a real worker's engagement API: 429 or 503 with Retry-After, never a
5xx crash, and both recover."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from schemas.topics import catalogue
from tests.integration.helpers import running_collector
from tests.integration.workers import SERVER_KEY, WorkerProcess, wait_for

pytestmark = pytest.mark.integration


def _batch(n: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"events": [{"event_id": f"ov-{uuid.uuid4().hex}", "user_id": f"ov-{n % 7}", "event_type": "login",
                        "event_time": now, "platform": "web"}]}  # fmt: skip


async def _calls(
    url: str,
    headers: dict[str, str],
    method: str,
    path: Callable[[int], str],
    requests: int,
    concurrency: int,
    body: Callable[[int], dict[str, Any]] | None = None,
) -> list[httpx.Response]:
    """``requests`` calls (the n-th to ``path(n)``, with ``body(n)`` as JSON), ``concurrency`` at a time."""
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> httpx.Response:
            async with gate:
                return await client.request(method, f"{url}{path(n)}", json=body(n) if body else None)

        return list(await asyncio.gather(*(one(n) for n in range(requests))))


def _burst(url: str, key: str, requests: int, concurrency: int) -> list[httpx.Response]:
    """Event batches to the collector."""
    auth = {"Authorization": f"Bearer {key}"}
    return asyncio.run(_calls(url, auth, "POST", lambda n: "/v1/events", requests, concurrency, _batch))


def _check_refusals(answers: list[httpx.Response], status: int, error: str) -> int:
    refused = [a for a in answers if a.status_code == status]
    for a in refused:
        assert a.json()["error"] == error and int(a.headers["Retry-After"]) >= 1
        assert a.json()["retry_after_seconds"] == int(a.headers["Retry-After"])
    assert {a.status_code for a in answers} <= {200, status}, {a.status_code for a in answers}
    return len(refused)


def test_a_key_over_its_rate_gets_429_and_the_collector_recovers(infra: Infra, settings: Settings) -> None:
    s = settings.model_copy(update={"collector_port": free_port(), "collector_rate_per_key": 20.0})
    key = s.write_keys[0].partition(":")[2]
    with running_collector(s) as url:
        started = time.monotonic()
        answers = _burst(url, key, requests=150, concurrency=16)
        elapsed = time.monotonic() - started
        refused = _check_refusals(answers, 429, "rate_limited")
        assert refused > 0
        # the burst (2 s at 20/s = 40) plus the rate over the run may pass, no more
        assert 40 <= len(answers) - refused <= 40 + 20 * elapsed + 1, (len(answers) - refused, elapsed)
        other = s.write_keys[1].partition(":")[2]  # another app's key is not limited by this one's traffic
        assert httpx.post(f"{url}/v1/events", json=_batch(1), headers={"Authorization": f"Bearer {other}"}).is_success
        time.sleep(int(answers[[a.status_code for a in answers].index(429)].headers["Retry-After"]) + 0.5)
        again = httpx.post(f"{url}/v1/events", json=_batch(2), headers={"Authorization": f"Bearer {key}"})
        assert again.status_code == 200, again.text


def test_too_many_requests_at_once_get_503_not_a_crash(infra: Infra, settings: Settings) -> None:
    s = settings.model_copy(update={"collector_port": free_port(), "collector_max_in_progress": 2})
    key = s.write_keys[0].partition(":")[2]
    with running_collector(s) as url:
        answers = _burst(url, key, requests=200, concurrency=64)
        refused = _check_refusals(answers, 503, "overloaded")
        assert refused > 0, "64 requests at once against a limit of 2 in progress: some must be refused"
        assert len(answers) - refused > 0
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.post(f"{url}/v1/events", json=_batch(3), headers={"Authorization": f"Bearer {key}"}).is_success


def _api_calls(
    url: str, method: str, action: str, users: list[str], requests: int, concurrency: int
) -> list[httpx.Response]:
    """``/v1/users/{user}/{action}`` round the users."""
    return asyncio.run(
        _calls(url, SERVER_KEY, method, lambda n: f"/v1/users/{users[n % len(users)]}/{action}", requests, concurrency)
    )


def test_the_engagement_api_answers_overload_with_429_and_503_and_recovers(
    infra: Infra, settings: Settings, tmp_path: Any
) -> None:
    s = settings.model_copy(
        update={
            "topic_prefix": f"ov-{uuid.uuid4().hex[:8]}",
            "worker_api_rate_per_key": 10.0,
            "worker_api_max_in_progress": 2,
            "worker_store": "memory://",
        }
    )
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    users = [f"ov-{n}" for n in range(10)]
    with EventProducer(s.kafka, topics) as producer:
        for n, user in enumerate(users):
            producer.send([{"event_id": f"ov-e{n}", "user_id": user, "event_type": "login",
                            "event_time": datetime.now(UTC).isoformat(), "platform": "web"}])  # fmt: skip
    worker = WorkerProcess(s, free_port(), tmp_path / "worker.log").start()
    try:
        assert wait_for(lambda: all(worker.engagement(u).status_code == 200 for u in users), timeout=60)
        time.sleep(2.5)  # the key's bucket refills
        # Faster than the key's rate: 429s. Reads finish at once, so they never pile up.
        reads = _api_calls(worker.url, "GET", "engagement", users, requests=100, concurrency=8)
        # More at once than it handles: re-scores wait for Kafka, so they pile up and the rest get 503.
        time.sleep(2.5)
        writes = _api_calls(worker.url, "POST", "recalculate", users, requests=60, concurrency=48)
        for answers, status, error in ((reads, 429, "rate_limited"), (writes, 503, "overloaded")):
            statuses = {a.status_code for a in answers}
            assert statuses <= {200, status}, statuses  # never a 5xx crash
            refused = [a for a in answers if a.status_code == status]
            assert refused and len(refused) < len(answers), statuses
            assert all(a.json()["error"] == error and int(a.headers["Retry-After"]) >= 1 for a in refused)
        assert httpx.get(f"{worker.url}/healthz").status_code == 200  # health is never refused
        time.sleep(2.5)  # the key's bucket refills
        assert worker.engagement(users[0]).status_code == 200
        metrics = httpx.get(f"{worker.url}/metrics").text
        assert 'engage_api_refused_requests_total{status="503"}' in metrics
    finally:
        worker.stop()
