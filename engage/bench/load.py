"""`engage bench load`: the collector and the engagement API under sustained load and under overload.

A real collector and a real worker run as child processes with their default limits; this process is the
load generator (raw keep-alive sockets on loopback, ``engage.bench.loadgen``), bounded in time:

1. collector, sustained: batches of simulator events paced at a fixed rate; latency p50/p95/p99 from each
   request's scheduled send time (queueing cannot hide), error share;
2. engagement API, sustained: reads paced at a fixed rate while events keep arriving through the collector;
3. overload, each service in turn: far more connections than it takes at once, as fast as it answers. The
   service must answer 429/503 with Retry-After (refused, by design) rather than fail, stay up, and answer
   normally again right after.

Errors are broken connections, 5xx other than a 503 with Retry-After, and refusals without Retry-After.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from config.settings import Settings, settings_env
from deploy.process import free_port
from engage.bench.ingest import simulated_events
from engage.bench.loadgen import LoadResult, build_request, run_load
from engage.bench.report import Figure, Report
from engage.children import child, wait_for_worker, wait_http
from kafka_io.admin import delete_topics, ensure_topics
from schemas.topics import catalogue


@dataclass(frozen=True)
class LoadBenchConfig:
    seconds: float = 20.0  # each sustained phase
    batch_events: int = 50  # events per collector request (one app flush)
    collector_events_per_second: int = 5_000
    api_requests_per_second: float = 500.0
    background_events_per_second: int = 2_000  # arriving while the API is measured
    connections: int = 16
    overload_seconds: float = 10.0
    overload_connections: int = 512  # collector: twice its default requests in progress


@dataclass
class Services:
    collector: str
    worker: str
    procs: list[Any]
    write_key: str
    server_key: str

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)


@contextmanager
def _services(settings: Settings, work: Path) -> Iterator[Services]:
    collector_port, worker_port = free_port(), free_port()
    env = settings_env(settings.model_copy(update={"collector_port": collector_port, "worker_web_port": worker_port}))
    cli = [sys.executable, "-m", "engage.cli"]
    with (
        child([*cli, "collector"], work / "collector.log", env) as collector,
        child([*cli, "worker"], work / "worker.log", env) as worker,
    ):
        urls = f"http://127.0.0.1:{collector_port}", f"http://127.0.0.1:{worker_port}"
        wait_http(f"{urls[0]}/healthz", collector, log=work / "collector.log")
        wait_http(f"{urls[1]}/healthz", worker, log=work / "worker.log", timeout=90)
        yield Services(*urls, [collector, worker], _secret(settings.write_keys), _secret(settings.server_keys))


def _secret(pairs: list[str]) -> str:
    return pairs[0].partition(":")[2]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _event_requests(url: str, key: str, events: list[dict[str, Any]], batch: int) -> list[bytes]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return [
        build_request("127.0.0.1", _port(url), "/v1/events", orjson.dumps({"events": events[i : i + batch]}), headers)
        for i in range(0, len(events) - batch + 1, batch)
    ]


def _api_requests(url: str, key: str, users: list[str], method: str = "GET", action: str = "engagement") -> list[bytes]:
    headers = {"Authorization": f"Bearer {key}"}
    return [build_request("127.0.0.1", _port(url), f"/v1/users/{u}/{action}", b"", headers, method) for u in users]


def _load(
    url: str, requests: list[bytes], connections: int, seconds: float, rate: float = 0.0
) -> Coroutine[Any, Any, LoadResult]:
    """``run_load`` against a service on loopback, by its URL (paced at ``rate`` requests/s, or closed loop)."""
    return run_load("127.0.0.1", _port(url), requests, connections=connections, seconds=seconds, rate=rate)


def _wait_caught_up(services: Services, accepted_events: int, timeout: float = 300.0) -> None:
    """Until the worker folded what the collector accepted: reads of students it does not know yet are 404s."""
    wait_for_worker(services.worker, accepted_events, timeout)


def _recovered(services: Services, requests: list[bytes], url: str) -> bool:
    """Alive, and a short paced run right after the overload is answered without refusals or errors."""
    time.sleep(1.5)  # one Retry-After
    if not services.alive():
        return False
    after = asyncio.run(_load(url, requests, connections=2, seconds=3.0, rate=20.0))
    return after.requests > 0 and after.refused == 0 and after.failed == 0 and 200 in after.statuses


def _sustained(name: str, result: LoadResult, offered: str) -> list[Figure]:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.statuses.items()))
    notes = f"{result.requests:,} requests in {result.seconds:.0f} s, statuses {statuses}"
    notes += f"; broken connections {result.errors}"
    return [
        Figure(f"{name} p50 at {offered}", result.percentile(0.5) * 1000, "ms"),
        Figure(f"{name} p95 at {offered}", result.percentile(0.95) * 1000, "ms"),
        Figure(f"{name} p99 at {offered}", result.percentile(0.99) * 1000, "ms", aim="< 100 ms"),
        Figure(f"{name} errors at {offered}", result.error_share * 100, "%", aim="0 %", notes=notes),
        Figure(f"{name} refused (429/503) at {offered}", result.refused_share * 100, "%", aim="0 %"),
    ]


def _overload(name: str, result: LoadResult, connections: int, recovered: bool) -> list[Figure]:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(result.statuses.items()))
    what = f"{name} overloaded ({connections} connections, closed loop)"
    return [
        Figure(f"{what}: answered", result.requests / result.seconds, "req/s", notes=f"statuses {statuses}"),
        Figure(f"{what}: refused with Retry-After", result.refused_share * 100, "%", aim="> 0 %"),
        Figure(
            f"{what}: errors",
            result.error_share * 100,
            "%",
            aim="0 %",
            notes=f"broken connections {result.errors}, without Retry-After {result.refusals_without_retry_after}",
        ),
        Figure(f"{what}: p99 of answers", result.percentile(0.99) * 1000, "ms"),
        Figure(f"{name} up and answering 200s right after", 1.0 if recovered else 0.0, "yes=1", aim="1"),
    ]


def run_load_bench(settings: Settings, console: Console, out: Path, cfg: LoadBenchConfig | None = None) -> Report:
    cfg = cfg or LoadBenchConfig()
    run_id = uuid.uuid4().hex[:6]
    work = settings.run_dir / f"bench-load-{run_id}"
    s = settings.model_copy(update={"topic_prefix": f"bl-{run_id}", "run_dir": work, "sink_metrics_port": 0})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    report = Report(
        "engage bench load",
        context={
            "config": cfg.__dict__,
            "partitions": s.event_partitions,
            "collector_limits": {
                "rate_per_key": s.collector_rate_per_key,
                "max_in_progress": s.collector_max_in_progress,
            },
            "api_limits": {"rate_per_key": s.worker_api_rate_per_key, "max_in_progress": s.worker_api_max_in_progress},
        },
    )
    collector_rate = cfg.collector_events_per_second / cfg.batch_events
    needed = int(cfg.collector_events_per_second * cfg.seconds + cfg.background_events_per_second * cfg.seconds)
    console.print(f"generating {needed:,} simulator events ...")
    events = simulated_events(needed)
    split = int(cfg.collector_events_per_second * cfg.seconds)
    users = sorted({e["user_id"] for e in events[:split]})
    try:
        with _services(s, work) as services:
            c_requests = _event_requests(services.collector, services.write_key, events[:split], cfg.batch_events)
            background = _event_requests(services.collector, services.write_key, events[split:], cfg.batch_events)
            offered = f"{cfg.collector_events_per_second:,} events/s"
            console.print(
                f"collector: {offered} ({collector_rate:.0f} requests/s of {cfg.batch_events}), {cfg.seconds:.0f} s ..."
            )
            collector = asyncio.run(
                _load(services.collector, c_requests, cfg.connections, cfg.seconds, rate=collector_rate)
            )
            for f in _sustained("collector", collector, offered):
                report.add(f)

            _wait_caught_up(services, collector.statuses.get(200, 0) * cfg.batch_events)
            reads = _api_requests(services.worker, services.server_key, users)
            api_offered = f"{cfg.api_requests_per_second:,.0f} req/s"
            console.print(
                f"engagement API: {api_offered} while {cfg.background_events_per_second:,} events/s arrive ..."
            )

            async def api_phase() -> LoadResult:
                results = await asyncio.gather(
                    _load(services.worker, reads, cfg.connections, cfg.seconds, rate=cfg.api_requests_per_second),
                    _load(services.collector, background, 4, cfg.seconds,
                          rate=cfg.background_events_per_second / cfg.batch_events),
                )  # fmt: skip
                return results[0]

            for f in _sustained("engagement API", asyncio.run(api_phase()), api_offered):
                report.add(f)

            console.print(
                f"collector overload: {cfg.overload_connections} connections for {cfg.overload_seconds:.0f} s ..."
            )
            flood = asyncio.run(_load(services.collector, c_requests, cfg.overload_connections, cfg.overload_seconds))
            ok = _recovered(services, background, services.collector)
            for f in _overload("collector", flood, cfg.overload_connections, ok):
                report.add(f)

            # Reads and re-scores together: re-scores wait for Kafka, so they are what piles up in progress.
            rescores = _api_requests(services.worker, services.server_key, users, "POST", "recalculate")
            api_connections = cfg.overload_connections // 2
            console.print(
                f"engagement API overload: {api_connections} connections for {cfg.overload_seconds:.0f} s ..."
            )

            async def api_flood() -> LoadResult:
                half = api_connections // 2
                a, b = await asyncio.gather(
                    _load(services.worker, reads, half, cfg.overload_seconds),
                    _load(services.worker, rescores, half, cfg.overload_seconds),
                )
                return _merged(a, b)

            flood = asyncio.run(api_flood())
            ok = _recovered(services, reads, services.worker)
            for f in _overload("engagement API", flood, api_connections, ok):
                report.add(f)
    finally:
        delete_topics(s.kafka, [t.name for t in topics.all()])
    report.print(console)
    console.print(f"saved {report.save(out)}")
    return report


def _merged(a: LoadResult, b: LoadResult) -> LoadResult:
    statuses = dict(a.statuses)
    for k, v in b.statuses.items():
        statuses[k] = statuses.get(k, 0) + v
    return LoadResult(
        a.requests + b.requests,
        a.errors + b.errors,
        statuses,
        a.latencies + b.latencies,
        max(a.seconds, b.seconds),
        a.refusals_without_retry_after + b.refusals_without_retry_after,
    )
