"""Overload against the real collector and Kafka: 429 or 503 with Retry-After, never a 5xx crash, and it recovers."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from deploy.infra import Infra
from deploy.process import free_port
from engage.settings import Settings
from tests.integration.helpers import running_collector

pytestmark = pytest.mark.integration


def _batch(n: int) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {"events": [{"event_id": f"ov-{uuid.uuid4().hex}", "user_id": f"ov-{n % 7}", "event_type": "login",
                        "event_time": now, "platform": "web"}]}  # fmt: skip


async def _burst(url: str, key: str, requests: int, concurrency: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
        gate = asyncio.Semaphore(concurrency)

        async def one(n: int) -> httpx.Response:
            async with gate:
                return await client.post(f"{url}/v1/events", json=_batch(n))

        return list(await asyncio.gather(*(one(n) for n in range(requests))))


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
        answers = asyncio.run(_burst(url, key, requests=150, concurrency=16))
        refused = _check_refusals(answers, 429, "rate_limited")
        assert 40 <= len(answers) - refused <= 90, "about the burst (40) plus the rate over the run should pass"
        other = s.write_keys[1].partition(":")[2]  # another app's key is not limited by this one's traffic
        assert httpx.post(f"{url}/v1/events", json=_batch(1), headers={"Authorization": f"Bearer {other}"}).is_success
        time.sleep(int(answers[[a.status_code for a in answers].index(429)].headers["Retry-After"]) + 0.5)
        again = httpx.post(f"{url}/v1/events", json=_batch(2), headers={"Authorization": f"Bearer {key}"})
        assert again.status_code == 200, again.text


def test_too_many_requests_at_once_get_503_not_a_crash(infra: Infra, settings: Settings) -> None:
    s = settings.model_copy(update={"collector_port": free_port(), "collector_max_in_progress": 2})
    key = s.write_keys[0].partition(":")[2]
    with running_collector(s) as url:
        answers = asyncio.run(_burst(url, key, requests=200, concurrency=64))
        refused = _check_refusals(answers, 503, "overloaded")
        assert refused > 0, "64 requests at once against a limit of 2 in progress: some must be refused"
        assert len(answers) - refused > 0
        assert httpx.get(f"{url}/readyz").status_code == 200
        assert httpx.post(f"{url}/v1/events", json=_batch(3), headers={"Authorization": f"Bearer {key}"}).is_success
