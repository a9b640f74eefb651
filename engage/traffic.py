"""Drive simulated students' events into the pipeline: through the HTTP collector or the producer library.

Time can be compressed: each simulated day is sent in ``day_seconds`` real seconds (0 = as fast as
possible), and ``rate`` caps events per second; event times are always the simulated ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from config.settings import Settings
from engage.simulator import Population, ground_truth, iter_event_days, last_finished_day, write_ground_truth
from kafka_io.producer import EventProducer
from schemas.topics import catalogue

Via = Literal["collector", "producer"]


@dataclass
class TrafficResult:
    days: int = 0
    events_sent: int = 0
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    failed_requests: int = 0
    seconds: float = 0.0
    rejections: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TrafficPlan:
    students: int = 500
    days: int = 28
    seed: int = 42
    via: Via = "producer"
    rate: float = 0.0  # events/s cap, 0 = none
    day_seconds: float = 0.0  # real seconds per simulated day, 0 = as fast as possible
    end: date | None = None  # last simulated day; default yesterday, so a collector accepts every event
    batch_size: int = 100  # events per collector request (one user's events, as a client app would send)
    connections: int = 8
    truth_path: Path | None = None

    @property
    def start(self) -> date:
        end = self.end or last_finished_day()
        return end - timedelta(days=self.days - 1)


def _client_batches(events: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    """Per-user batches in the day's order, as each student's app would flush its queue."""
    per_user: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        per_user.setdefault(e["user_id"], []).append(e)
    for user_events in per_user.values():
        for i in range(0, len(user_events), size):
            yield user_events[i : i + size]


class _Pacer:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0

    async def wait(self, n: int) -> None:
        self.sent += n
        if self.rate > 0:
            ahead = self.sent / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def _post_day(
    client: httpx.AsyncClient,
    url: str,
    key: str,
    batches: list[list[dict[str, Any]]],
    plan: TrafficPlan,
    pacer: _Pacer,
    result: TrafficResult,
) -> None:
    queue: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)

    async def worker() -> None:
        while not queue.empty():
            batch = queue.get_nowait()
            await pacer.wait(len(batch))
            for attempt in range(5):
                try:
                    resp = await client.post(
                        url,
                        content=orjson.dumps({"events": batch}),
                        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                    )
                except httpx.HTTPError:
                    resp = None
                if resp is not None and resp.status_code == 200:
                    body = resp.json()
                    result.accepted += len(body["accepted"]) + len(body["duplicates"])
                    result.rejected += len(body["rejected"])
                    result.rejections.extend(r["reason"] for r in body["rejected"][:2])
                    break
                await asyncio.sleep(0.2 * 2**attempt)  # 503 or connection trouble: the batch is safe to retry
            else:
                result.failed_requests += 1
            result.requests += 1

    await asyncio.gather(*(worker() for _ in range(plan.connections)))


async def _run_collector(
    plan: TrafficPlan,
    settings: Settings,
    days: Iterator[tuple[int, list[dict[str, Any]]]],
    progress: Progress,
    task: Any,
    result: TrafficResult,
) -> None:
    url = f"http://{settings.collector_host}:{settings.collector_port}/v1/events"
    key = settings.write_keys[0].partition(":")[2]
    pacer = _Pacer(plan.rate)
    limits = httpx.Limits(max_connections=plan.connections, max_keepalive_connections=plan.connections)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:
        for _, events in days:
            day_started = time.monotonic()
            await _post_day(client, url, key, list(_client_batches(events, plan.batch_size)), plan, pacer, result)
            result.events_sent += len(events)
            result.days += 1
            progress.update(task, advance=1, events=result.events_sent)
            if plan.day_seconds > 0:
                await asyncio.sleep(max(0.0, plan.day_seconds - (time.monotonic() - day_started)))


def _run_producer(
    plan: TrafficPlan,
    settings: Settings,
    days: Iterator[tuple[int, list[dict[str, Any]]]],
    progress: Progress,
    task: Any,
    result: TrafficResult,
) -> None:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    pacer_start = time.monotonic()
    with EventProducer(settings.kafka, topics, source="simulator") as producer:
        for _, events in days:
            day_started = time.monotonic()
            for chunk in _client_batches(events, plan.batch_size):  # one message per student flush, as apps do
                producer.send(chunk)
                result.events_sent += len(chunk)
                if plan.rate > 0:
                    ahead = result.events_sent / plan.rate - (time.monotonic() - pacer_start)
                    if ahead > 0:
                        time.sleep(ahead)
            result.days += 1
            progress.update(task, advance=1, events=result.events_sent)
            if plan.day_seconds > 0:
                time.sleep(max(0.0, plan.day_seconds - (time.monotonic() - day_started)))
        if producer.flush(120):
            raise RuntimeError("Kafka did not acknowledge every simulated event within 120 s")
        result.accepted = result.events_sent - producer.stats.failed
        result.failed_requests = producer.stats.failed


def run_traffic(plan: TrafficPlan, settings: Settings, console: Console) -> TrafficResult:
    population = Population.generate(plan.students, seed=plan.seed, start=plan.start)
    if plan.truth_path is not None:
        write_ground_truth(ground_truth(population, plan.days), plan.truth_path)
    result = TrafficResult()
    started = time.monotonic()
    columns = (
        TextColumn("[bold]simulating[/bold] day"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[events]:,} events"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("days", total=plan.days, events=0)
        days = iter_event_days(population, plan.days)
        if plan.via == "collector":
            asyncio.run(_run_collector(plan, settings, days, progress, task, result))
        else:
            _run_producer(plan, settings, days, progress, task, result)
    result.seconds = time.monotonic() - started
    return result
