"""What `make demo` leaves running: detached services recorded by PID and stopped by them, and the trickle of
live traffic through a real collector."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_ports, pid_alive, port_open
from engage import background
from engage.simulator import Population, iter_event_days
from engage.traffic import TrafficPlan
from engage.trickle import trickle
from kafka_io.admin import ensure_topics
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end, running_collector
from tests.integration.workers import wait_for

pytestmark = pytest.mark.integration


def test_background_services_are_recorded_and_stopped_by_pid(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"run_dir": tmp_path})
    smtp, fcm, twilio = free_ports(3)
    args = ["providers", "serve", "--smtp-port", str(smtp), "--fcm-port", str(fcm), "--twilio-port", str(twilio),
            "--record", str(tmp_path / "record")]  # fmt: skip
    pid = background.start("providers", args, s)
    try:
        background.wait_until("providers", lambda: port_open("127.0.0.1", smtp), pid, s)
        assert background.running(s) == {"providers": pid}
        assert (tmp_path / "services" / "providers" / "pid").read_text() == str(pid)
    finally:
        stopped = background.stop_all(s)
    assert stopped == {"providers": True}
    assert wait_for(lambda: not pid_alive(pid), timeout=10) and not port_open("127.0.0.1", smtp)
    assert background.running(s) == {} and background.stop_all(s) == {}


def test_the_trickle_sends_the_next_days_stamped_now(infra: Infra, settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"topic_prefix": f"t-{uuid.uuid4().hex[:8]}", "run_dir": tmp_path})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    began = datetime.now(UTC)
    with running_collector(s):
        # 20 students, 3 days already sent; day 4 onwards at 20,000x: a simulated day in about 4 s.
        accepted = trickle(s, TrafficPlan(students=20, days=3, seed=7, via="collector"), 20_000, stop_after=6)
    ended = datetime.now(UTC)
    assert accepted > 0
    events = [e for batch in read_to_end(s.kafka, topics.events.name) for e in batch["events"]]
    assert len(events) == accepted
    stamps = [datetime.fromisoformat(e["event_time"]) for e in events]
    assert all(began <= t <= ended for t in stamps), "trickled events carry the time they were sent"
    assert len({e["event_id"] for e in events}) == len(events)
    assert len({e["user_id"] for e in events}) > 1
    # None of the days already sent comes again (a UTC day also holds the neighbouring local days).
    first_days = TrafficPlan(students=20, days=3, seed=7, via="collector")
    population = Population.generate(20, seed=7, start=first_days.start)
    earlier = {e["event_id"] for _, day in iter_event_days(population, 3) for e in day}
    assert earlier and not earlier & {e["event_id"] for e in events}
