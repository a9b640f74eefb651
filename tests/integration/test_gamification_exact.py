"""XP, levels and achievements stay exact through a worker SIGKILLed mid-stream: every student's numbers equal the
chaos reference (computed from the sent events and the rules file, apart from the engine), and the XP awards on
Kafka, each counted once per award id, add up to the same total the engagement API answers."""

from __future__ import annotations

import signal
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from engage.chaos.reference import Expected, expected_by_user
from engage.chaos.verify import Difference, game_differences, topic_messages, worker_differences
from engage.simulator import Population, iter_event_days, last_finished_day
from engage.traffic import _client_batches
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from processors.gamification.rules import DEFAULT_RULES_PATH, GameRules, rules_from_file
from schemas.gamification import award_rows
from schemas.topics import catalogue
from tests.integration.workers import SERVER_KEY, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

DAYS = 16


def _settings(base: Settings, tmp_path: Path) -> Settings:
    s = base.model_copy(
        update={
            "topic_prefix": f"game-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
            "worker_store": "rocksdb://",  # the record survives in the local store and the changelog
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def _days(students: int, seed: int) -> list[list[dict[str, Any]]]:
    """Simulated students' events, one list per day in time order, the last day over in every zone."""
    population = Population.generate(students, seed=seed, start=last_finished_day() - timedelta(days=DAYS - 1))
    return [events for _, events in iter_event_days(population, DAYS)]


def _send(s: Settings, days: list[list[dict[str, Any]]]) -> None:
    """Each day's events as the students' apps send them: per student, batches of at most 50, in order."""
    with EventProducer(s.kafka, catalogue(s.topic_prefix, s.event_partitions)) as p:
        for events in days:
            for batch in _client_batches(events, 50):
                p.send(batch)
        assert p.flush(60) == 0


def _api_differences(worker: WorkerProcess, expected: dict[str, Expected]) -> list[Difference]:
    skipped: Counter[str] = Counter()
    found = worker_differences(expected, worker.url, SERVER_KEY, skipped)
    assert not skipped  # sent in order: the reference is sure of everything
    return found


def _differences_now(worker: WorkerProcess, sent: list[dict[str, Any]], rules: GameRules) -> list[Difference]:
    """The API against the reference taken at this instant: streaks and windows count to 'today', so a reference
    taken before a student's local midnight and an answer after it would differ (the next poll agrees again)."""
    return _api_differences(worker, expected_by_user(sent, datetime.now(UTC), rules))


def test_xp_levels_and_achievements_are_exact_through_a_sigkill(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    s = _settings(settings, tmp_path)
    rules = rules_from_file(s.gamification_rules_path or DEFAULT_RULES_PATH)
    days = _days(students=40, seed=22)
    sent = [e for events in days for e in events]
    first_sent = [e for events in days[:6] for e in events]
    first_part = expected_by_user(first_sent, datetime.now(UTC), rules)
    port = free_port()
    worker = WorkerProcess(s, port, tmp_path / "worker.log").start()
    try:
        _send(s, days[:6])
        assert wait_for(lambda: not _differences_now(worker, first_sent, rules), timeout=90), _differences_now(
            worker, first_sent, rules
        )[:5]
        _send(s, days[6:11])
        # Mid-stream: once the worker has folded some of the new days, but (with 40 students) hardly all of them.
        totals = {u: e.events for u, e in first_part.items()}
        assert wait_for(
            lambda: any(
                r.status_code == 200 and r.json()["signals"]["events_total"] > totals.get(u, 0)
                for u in list(totals)[:5]
                for r in [worker.engagement(u)]
            ),
            timeout=60,
        )
        worker.stop(signal.SIGKILL)  # no clean shutdown: offsets, changelog and outputs may be behind
        _send(s, days[11:])
        _send(s, days[9:10])  # apps retrying a day they had sent: repeated event ids count once
        worker = WorkerProcess(s, port, tmp_path / "worker.log").start()
        assert wait_for(lambda: not _differences_now(worker, sent, rules), timeout=120), _differences_now(
            worker, sent, rules
        )[:5]
        expected = expected_by_user(sent, datetime.now(UTC), rules)  # XP, levels, achievements: not time-dependent
        answers = {u: worker.engagement(u).json()["gamification"] for u in expected}
    finally:
        worker.stop()  # SIGTERM: the outputs still queued are flushed before it exits

    # What the worker emitted, read to the end: every award and unlock, including those sent again after the kill.
    topics = catalogue(s.topic_prefix, s.event_partitions)
    batches = topic_messages(s.kafka, topics.xp_awards.name)
    awards = [award for batch in batches for award in award_rows(batch)]
    unlocks = topic_messages(s.kafka, topics.achievements.name)
    skipped: Counter[str] = Counter()
    worker_xp = {u: a["xp"] for u, a in answers.items()}
    assert game_differences(expected, awards, unlocks, worker_xp, skipped) == []
    assert not skipped
    # The checks had something to check: XP, levels and most kinds of achievement were earned.
    assert sum(worker_xp.values()) == sum(e.xp for e in expected.values()) > 0
    assert max(a["level"] for a in answers.values()) >= 4
    kinds = {a.split(".")[0] for e in expected.values() for a in e.achievements}
    assert {"first-lesson", "lessons", "quiz-streak", "streak", "level-5"} <= kinds, kinds
    # ... and per award id the XP was summed once: the distinct ids' total is the API's, whatever was re-sent.
    per_id = {a["award_id"]: a["xp"] for a in awards}
    print(f"awards on Kafka: {len(awards)} in {len(batches)} messages, {len(per_id)} ids; unlocks: {len(unlocks)}")
    assert sum(per_id.values()) == sum(worker_xp.values())
    assert len({u["unlock_id"] for u in unlocks}) == sum(len(e.achievements) for e in expected.values())
