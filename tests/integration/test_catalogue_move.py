"""Growing past the partition count (#27, deploy/SCALING.md): a catalogue of 2 partitions moved to one of 4.

Real Kafka, real `engage worker` processes, the real `engage topics move` command. The old catalogue's worker
folds the first days; the collectors (here: a producer) switch to the new catalogue and send the last days there
while the old worker still runs; the move is refused until that worker is stopped; then the state is carried over
and a worker of the new catalogue folds the rest. Every student's state must equal a control worker's that folded
all days in one catalogue of 4 partitions, and the compacted topics' messages must sit where their students now
hash to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from kafka_io.client import kafka_conf
from kafka_io.producer import EventProducer, key_partition
from schemas.topics import catalogue
from tests.integration.test_worker import _send
from tests.integration.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

STUDENTS, DAYS, DAYS_BEFORE_SWITCH = 30, 6, 4
TODAY = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
COMPARED = {
    "events": ("signals", "events_total"),
    "logins": ("signals", "logins_30d"),
    "lessons": ("signals", "lessons_completed_30d"),
    "active days": ("signals", "active_days_30d"),
    "current streak": ("streak", "current_days"),
    "longest streak": ("streak", "longest_days"),
    "xp": ("gamification", "xp"),
    "level": ("gamification", "level"),
}


def _day(day: int) -> list[dict[str, Any]]:
    """Day ``day`` of DAYS (0 = the oldest): every student who is active that day logs in and completes lessons."""
    at = TODAY - timedelta(days=DAYS - day)
    events: list[dict[str, Any]] = []
    for u in range(STUDENTS):
        if (u + day) % 3 == 0 and u % 2:  # gaps, so streaks differ between students
            continue
        user = f"mv-u{u}"
        events.append({"event_id": f"{user}-d{day}-login", "user_id": user, "event_type": "login",
                       "event_time": at.isoformat(), "platform": "web", "payload": {"method": "password"}})  # fmt: skip
        for n in range(1 + u % 3):
            lesson = {"lesson_id": f"l{day}-{n}", "duration_seconds": 300.0}
            events.append({"event_id": f"{user}-d{day}-l{n}", "user_id": user, "event_type": "lesson_completed",
                           "event_time": (at + timedelta(minutes=5 + n)).isoformat(), "platform": "web",
                           "course_id": "course-1", "payload": lesson})  # fmt: skip
    return events


def _catalogue_settings(settings: Settings, tmp_path: Path, name: str, partitions: int) -> Settings:
    prefix = f"mv{name}-{uuid.uuid4().hex[:6]}"
    return settings.model_copy(update={"topic_prefix": prefix, "event_partitions": partitions,
                                       "run_dir": tmp_path / name, "broker_session_timeout_seconds": 6.0,
                                       "score_debounce_seconds": 0.2, "gamification": True})  # fmt: skip


def _answers(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    out = {}
    for u in range(STUDENTS):
        resp = worker.engagement(f"mv-u{u}")
        if resp.status_code == 200:
            body = resp.json()
            out[f"mv-u{u}"] = {name: (body.get(part) or {}).get(field) for name, (part, field) in COMPARED.items()}
    return out


def _shortfall(worker: WorkerProcess, expected: dict[str, int]) -> dict[str, tuple[int | None, int]]:
    """Each student whose folded event count differs from the expected one: (folded, expected)."""
    answers = _answers(worker)
    folded = {user: answers.get(user, {}).get("events") for user in expected}
    return {user: (folded[user], count) for user, count in expected.items() if folded[user] != count}


def _folded(worker: WorkerProcess, expected: dict[str, int]) -> bool:
    return not _shortfall(worker, expected)


def _short(worker: WorkerProcess, expected: dict[str, int], which: str) -> str:
    """Why ``worker`` is not done: its shortfall, log and stacks."""
    short = _shortfall(worker, expected)
    log = worker.log.read_text()[-4000:]
    return (f"{which} worker did not fold every event; (folded, sent) per student short of it: {short}\n"
            f"its log, and its threads' and tasks' stacks now:\n{log}{worker.stacks()}")  # fmt: skip


def _move(s: Settings, from_prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engage.cli", "topics", "move", "--from-prefix", from_prefix],
                          env={**os.environ, **settings_env(s)}, cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=180)  # fmt: skip


def _publish_contacts(s: Settings) -> None:
    """Contacts on the old catalogue's compacted topic: one per student, the last student's deleted again."""
    topics = catalogue(s.topic_prefix, s.event_partitions)
    with EventProducer(s.kafka, topics, source="test") as producer:
        for u in range(STUDENTS):
            user = f"mv-u{u}".encode()
            producer.send_encoded(user, b'{"user_id": "%s"}' % user, topic=topics.contacts.name,
                                  partition=key_partition(user, s.event_partitions))  # fmt: skip
        last = f"mv-u{STUDENTS - 1}".encode()
        producer.send_encoded(last, None, topic=topics.contacts.name, partition=key_partition(last, s.event_partitions))
        assert producer.flush(30) == 0


def _placement(s: Settings, topic: str, partitions: int) -> dict[bytes, tuple[int, int]]:
    """Each key of ``topic``: the partition it sits in, and its Kafka timestamp (ms)."""
    consumer = Consumer(
        kafka_conf(s.kafka, {"group.id": f"mv-check-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    )
    try:
        tps = [TopicPartition(topic, p, 0) for p in range(partitions)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        consumer.assign(tps)
        placed: dict[bytes, tuple[int, int]] = {}
        for _ in range(30):  # at most ~60 s
            if len(placed) >= sum(ends.values()):
                break
            for msg in consumer.consume(500, timeout=2.0):
                if msg.error() is None:
                    placed[msg.key() or b""] = (msg.partition(), msg.timestamp()[1])
        return placed
    finally:
        consumer.close()


def test_state_moved_to_a_catalogue_with_more_partitions_equals_one_folded_there_from_the_start(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    old = _catalogue_settings(settings, tmp_path, "old", 2)
    new = _catalogue_settings(settings, tmp_path, "new", 4)
    control = _catalogue_settings(settings, tmp_path, "control", 4)
    days = [_day(d) for d in range(DAYS)]
    expected: dict[str, int] = {}
    for event in (e for day in days for e in day):
        expected[event["user_id"]] = expected.get(event["user_id"], 0) + 1
    for s in (old, new, control):
        ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    _publish_contacts(old)

    old_worker = WorkerProcess(old, free_port(), tmp_path / "old-worker.log").start()
    try:
        for day in days[:DAYS_BEFORE_SWITCH]:
            _send(old, day)
        before = {u: sum(1 for d in days[:DAYS_BEFORE_SWITCH] for e in d if e["user_id"] == u) for u in expected}
        assert wait_for(lambda: _folded(old_worker, before), 90), "the old catalogue's worker should fold its days"
        for day in days[DAYS_BEFORE_SWITCH:]:
            _send(new, day)  # the collectors moved to the new catalogue: its events wait for its workers
        refused = _move(new, old.topic_prefix)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "still has 1 member(s)" in refused.stdout, refused.stdout
    finally:
        old_worker.stop()

    moved_at_ms = time.time() * 1000
    moved = _move(new, old.topic_prefix)
    assert moved.returncode == 0, moved.stdout + moved.stderr
    print(moved.stdout)
    assert f"{new.topic_prefix}-worker-user-state-changelog" in moved.stdout

    new_worker = WorkerProcess(new, free_port(), tmp_path / "new-worker.log").start()
    control_worker = WorkerProcess(control, free_port(), tmp_path / "control-worker.log").start()
    try:
        for day in days:
            _send(control, day)
        assert wait_for(lambda: _folded(new_worker, expected), 90), _short(new_worker, expected, "the new catalogue's")
        assert wait_for(lambda: _folded(control_worker, expected), 90), _short(control_worker, expected, "the control")
        moved_answers, control_answers = _answers(new_worker), _answers(control_worker)
    finally:
        new_worker.stop()
        control_worker.stop()
    differing = {u: (moved_answers.get(u), control_answers.get(u)) for u in expected
                 if moved_answers.get(u) != control_answers.get(u)}  # fmt: skip
    assert not differing, differing
    assert len({a["longest streak"] for a in control_answers.values()}) > 1  # the students differ, as meant

    contacts = catalogue(new.topic_prefix, new.event_partitions).contacts.name
    placed = _placement(new, contacts, new.event_partitions)
    assert len(placed) == STUDENTS - 1  # the deleted contact is not carried
    assert all(partition == key_partition(key, 4) for key, (partition, _) in placed.items())
    assert all(0 < stamp < moved_at_ms for _, stamp in placed.values())  # each kept its own time (and retention)
