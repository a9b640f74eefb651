"""A burst the worker cannot keep up with: it slows its intake instead of exiting (streams.worker.core.backpressure).

An OULAD replay at any pace ended with the worker exiting (code 75) a few minutes in: the event-clock silence
pass rewrote every known student each replayed day faster than Kafka acknowledged the changelog, and the
commit gave up waiting after 60 s. Here many students' first days land at once, on the event clock, with a small
bound on unacknowledged writes so that the worker must wait for Kafka many times over."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from engage.simulator import Population, iter_event_days
from engage.traffic import _client_batches
from kafka_io.admin import ensure_topics, group_lag
from kafka_io.producer import EventProducer, key_partition
from schemas.topics import TopicCatalogue, catalogue
from tests.integration.workers import WorkerProcess

pytestmark = pytest.mark.integration


def _three_days_on(s: Settings, topics: TopicCatalogue, events: list[dict[str, Any]], day: date) -> None:
    """One event on ``day`` for a student of each partition: every partition's event clock moves there."""
    ticks: dict[int, dict[str, Any]] = {}
    for e in events:
        ticks.setdefault(key_partition(e["user_id"].encode(), s.event_partitions), e)
    assert len(ticks) == s.event_partitions
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).isoformat()
    with EventProducer(s.kafka, topics) as producer:
        producer.send([{**e, "event_id": f"tick-{p}", "event_time": at} for p, e in ticks.items()])
        assert producer.flush(30) == 0


def _metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_a_burst_faster_than_the_worker_folds_is_taken_at_kafkas_pace_and_every_event_folded(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    s = settings.model_copy(
        update={
            "topic_prefix": f"burst-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "worker_clock": "event",
            "silence_tick_seconds": 0.1,
            "broker_session_timeout_seconds": 6.0,
            "worker_max_unacknowledged_writes": 50,
        }
    )
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    start = date.today() - timedelta(days=10)  # the day boundary below stays in the past
    population = Population.generate(1_500, seed=29, start=start)
    events = [e for _, day in iter_event_days(population, 6) for e in day]
    worker = WorkerProcess(s, free_port(), tmp_path / "worker.log").start()
    try:
        with EventProducer(s.kafka, topics) as producer:
            for batch in _client_batches(events, 200):
                producer.send(batch)
            assert producer.flush(60) == 0
        lags, group = [], f"{s.topic_prefix}-worker"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert worker.proc is not None and worker.proc.poll() is None, "the worker exited under the burst"
            lags.append(group_lag(s.kafka, group, topics.events.name))
            if lags[-1] == 0:
                break
            time.sleep(0.5)
        assert lags[-1] == 0, f"the worker did not catch up: lag {lags[-10:]}"
        assert max(lags) > 0, "the burst never got ahead of the worker: nothing was shown"
        metrics = httpx.get(f"{worker.url}/metrics", timeout=10).text
        assert _metric(metrics, "engage_worker_events_processed_total") == len(events), "every event folded"

        # Whether the burst itself ever gets over the bound depends on the CPU (a commit's write-back is waited for
        # before Faust fetches more, and outputs are acknowledged in milliseconds): 2 of 4 runs beside two busy
        # loops waited 0 s. What must wait whatever the CPU does: three days pass for everyone at once (one event
        # on every partition), the event clock moves past every student's last score, and one silence pass
        # re-scores all 1,500, writing them in slices of 256, each only once the backlog is under the bound (50).
        _three_days_on(s, topics, events, start + timedelta(days=9))
        deadline = time.monotonic() + 120
        waited = 0.0
        while time.monotonic() < deadline and not waited:
            assert worker.proc.poll() is None, "the worker exited under the silence pass"
            metrics = httpx.get(f"{worker.url}/metrics", timeout=10).text
            waited = _metric(metrics, "engage_worker_backpressure_seconds_total")
            time.sleep(0.5)
        assert waited > 0, "the worker never waited for Kafka"
        assert worker.proc.poll() is None
    finally:
        worker.stop()
    log = (tmp_path / "worker.log").read_text()
    assert "exiting so that the worker restarts" not in log
