"""The chaos run's traffic: simulated students' events through the HTTP collector, as a client app sends them.

Every batch is retried until the collector answers 200 (a 503 while Kafka restarts, a dropped connection),
and some batches are sent twice on purpose, as an app does when an answer is lost: the verifier then shows
that nothing was counted twice. What the collector accepted is recorded, so the reference counts exactly that.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class FeedStats:
    events: int = 0  # events in the plan
    accepted_ids: set[str] = field(default_factory=set)
    rejected: int = 0
    requests: int = 0
    retries: int = 0  # answers other than 200, and connection errors, each retried
    sent_twice: int = 0  # batches deliberately sent again after their 200
    lost_batches: int = 0  # never answered 200 within ``give_up_seconds``
    seconds: float = 0.0


def client_batches(events: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """Per-student batches in event order, as each app flushes its queue."""
    per_user: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        per_user.setdefault(e["user_id"], []).append(e)
    return [evs[i : i + size] for evs in per_user.values() for i in range(0, len(evs), size)]


async def feed(
    url: str,
    key: str,
    days: list[list[dict[str, Any]]],
    seconds: float,
    stats: FeedStats,
    *,
    seed: int = 0,
    batch_size: int = 50,
    connections: int = 8,
    resend_share: float = 0.03,
    give_up_seconds: float = 300.0,
) -> None:
    """Send ``days`` (each a list of events, in order) spread evenly over ``seconds``; day by day, so a
    student's days arrive in order."""
    rng = random.Random(seed)
    total = sum(len(d) for d in days)
    stats.events = total
    rate = total / seconds if seconds > 0 else 0.0
    started = time.monotonic()
    sent = 0
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)

    async def post(client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"events": batch})
        deadline = time.monotonic() + give_up_seconds
        delay = 0.1
        while True:
            stats.requests += 1
            try:
                resp = await client.post(url, content=body, headers=headers)
                if resp.status_code == 200:
                    answer = resp.json()
                    stats.accepted_ids.update(answer["accepted"])
                    stats.rejected += len(answer["rejected"])
                    return
            except httpx.HTTPError:
                pass
            stats.retries += 1
            if time.monotonic() > deadline:
                stats.lost_batches += 1
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        for events in days:
            queue = client_batches(events, batch_size)
            again = [b for b in queue if rng.random() < resend_share]
            stats.sent_twice += len(again)

            async def worker(todo: list[list[dict[str, Any]]]) -> None:
                nonlocal sent
                while todo:
                    batch = todo.pop()
                    await post(client, batch)
                    sent += len(batch)
                    if rate:
                        ahead = sent / rate - (time.monotonic() - started)
                        if ahead > 0:
                            await asyncio.sleep(ahead)

            todo = list(reversed(queue))
            await asyncio.gather(*(worker(todo) for _ in range(connections)))
            for batch in again:  # the answer was "lost": the app sends the same events again
                await post(client, batch)
    stats.seconds = time.monotonic() - started
