"""The stream processors on real Kafka: simulated students in; signals, streaks, risk and interventions out."""

from __future__ import annotations

import json
import re
import signal
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port, free_ports
from engage.simulator import Population, iter_event_days, last_finished_day
from engage.traffic import _client_batches
from kafka_io.admin import ensure_topics
from kafka_io.client import kafka_conf
from kafka_io.producer import EventProducer, key_partition
from processors.pipeline import ScoreRequest, UserRecord, ingest, owe_score
from schemas.topics import TopicSpec, catalogue
from tests.integration.helpers import read_to_end, read_topic
from tests.integration.workers import SERVER_KEY, WorkerProcess, wait_for, workers

pytestmark = pytest.mark.integration


def _settings(base: Settings, tmp_path: Path, **overrides: Any) -> Settings:
    s = base.model_copy(
        update={
            "topic_prefix": f"w-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
            **overrides,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def _simulated(students: int, days: int, seed: int) -> list[dict[str, Any]]:
    start = last_finished_day() - timedelta(days=days - 1)
    population = Population.generate(students, seed=seed, start=start)
    return [e for _, events in iter_event_days(population, days) for e in events]


def _send(settings: Settings, events: list[dict[str, Any]]) -> None:
    with EventProducer(settings.kafka, catalogue(settings.topic_prefix, settings.event_partitions)) as p:
        for batch in _client_batches(events, 50):
            p.send(batch)
        assert p.flush(60) == 0


def _unique_counts(events: list[dict[str, Any]]) -> dict[str, int]:
    ids: dict[str, set[str]] = defaultdict(set)
    for e in events:
        ids[e["user_id"]].add(e["event_id"])
    return {u: len(s) for u, s in ids.items()}


def _totals_match(worker: WorkerProcess, expected: dict[str, int]) -> bool:
    return not _total_differences(worker, expected, first_only=True)


def _total_differences(
    worker: WorkerProcess, expected: dict[str, int], first_only: bool = False
) -> dict[str, tuple[int | None, int]]:
    """Students whose events_total the worker does not answer as expected: user -> (answered, expected)."""
    differences: dict[str, tuple[int | None, int]] = {}
    for user, n in expected.items():
        resp = worker.engagement(user)
        got = resp.json()["signals"]["events_total"] if resp.status_code == 200 else None
        if got != n:
            differences[user] = (got, n)
            if first_only:
                break
    return differences


def _rescored(worker: WorkerProcess, user: str) -> bool:
    """The worker answers for the student with a score (the API shows the record's last assessment)."""
    resp = worker.engagement(user)
    return resp.status_code == 200 and resp.json()["risk"] is not None


def _longest_local_run(events: list[dict[str, Any]]) -> int:
    """Longest run of consecutive local days with activity, computed independently of the processors."""
    days = set()
    for e in events:
        zone = ZoneInfo(e["timezone"]) if e.get("timezone") else None
        t = datetime.fromisoformat(e["event_time"])
        days.add((t.astimezone(zone) if zone else t).date().toordinal())
    best = run = 0
    for d in sorted(days):
        run = run + 1 if d - 1 in days else 1
        best = max(best, run)
    return best


def test_events_in_signals_risk_interventions_and_milestones_out(infra: Infra, settings: Settings, tmp_path: Path):
    s = _settings(settings, tmp_path)
    events = _simulated(students=40, days=16, seed=11)
    for i in range(0, len(events), 2_000):
        _send(s, events[i : i + 2_000])
        _send(s, events[i + 1_900 : i + 2_000])  # clients retrying a batch: repeated event ids count once
    expected = _unique_counts(events)
    with workers(s, [free_port()], tmp_path) as (worker,):
        assert wait_for(lambda: _totals_match(worker, expected), timeout=90), "signals never matched the sent events"
        body = worker.engagement(events[0]["user_id"]).json()
        assert body["risk"]["tier"] in ("critical", "high", "medium", "low", "minimal")
        assert 0 <= body["risk"]["risk_7d"] <= 100 and body["risk"]["factors"]
        metrics = __import__("httpx").get(f"{worker.url}/metrics").text
        assert 'engage_worker_events_processed_total{event_type="login"}' in metrics
        assert "engage_event_to_risk_seconds_bucket" in metrics
        assert 'engage_risk_score_bucket{horizon="7d",le="100.0"}' in metrics
        lag = float(re.search(r"^engage_worker_consumer_lag_seconds (\S+)$", metrics, re.M).group(1))  # type: ignore[union-attr]
        assert 0.0 <= lag < 120.0, f"lag {lag} s: the newest message processed was sent just now"
        assert "user_id" not in metrics

    # The worker has stopped (cleanly: its outputs were flushed): what is on the topics now is all it emitted,
    # read to their end offsets, so the "at most once" checks below see every message.
    topics = catalogue(s.topic_prefix, s.event_partitions)
    updates = read_to_end(s.kafka, topics.risk_updates.name)
    assert {u["user_id"] for u in updates} == set(expected)
    for u in updates:
        assert u["factors"] is not None and u["model_version"] == "heuristic-1"

    requests = read_to_end(s.kafka, topics.interventions.name)
    assert requests, "no student in 40 simulated ones called for an intervention"
    by_user_tier = {u["user_id"]: u["tier"] for u in updates}
    for r in requests:
        assert r["status"] in ("send", "held_out", "deferred") and r["reason"]
        assert r["tier"] != "minimal" and r["user_id"] in by_user_tier
    # The whole run takes seconds of wall time, inside every type's cooldown (48 h by default): each student gets
    # each intervention type at most once. (A lost history update would let repeats through.)
    per_type = Counter((r["user_id"], r["intervention_type"]) for r in requests)
    assert max(per_type.values()) == 1, per_type.most_common(3)

    milestones = read_to_end(s.kafka, topics.streak_milestones.name)
    with_seven = {m["user_id"] for m in milestones if m["milestone_days"] == 7}
    per_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        per_user[e["user_id"]].append(e)
    independent = {u for u, evs in per_user.items() if _longest_local_run(evs) >= 7}
    assert independent and independent <= with_seven
    assert len({m["milestone_id"] for m in milestones}) == len(milestones), "a milestone was emitted twice"
    # ... nor under two ids: one per (student, streak run, milestone), what its id is derived from.
    per_run = Counter((m["user_id"], m["run_start"], m["milestone_days"]) for m in milestones)
    assert max(per_run.values()) == 1, per_run.most_common(3)


def test_worker_killed_mid_stream_recovers_without_double_counts(infra: Infra, settings: Settings, tmp_path: Path):
    s = _settings(settings, tmp_path, worker_store="rocksdb://")
    events = _simulated(students=30, days=12, seed=5)
    half = len(events) // 2
    port = free_port()
    worker = WorkerProcess(s, port, tmp_path / "worker.log").start()
    try:
        _send(s, events[:half])
        first = _unique_counts(events[:half])
        assert wait_for(lambda: _totals_match(worker, first), timeout=60)
        _send(s, events[half : half + half // 2])
        worker.stop(signal.SIGKILL)  # no clean shutdown: offsets and changelog may be behind
        _send(s, events[half + half // 2 :])
        worker = WorkerProcess(s, port, tmp_path / "worker.log").start()
        expected = _unique_counts(events)
        recovered = wait_for(lambda: _totals_match(worker, expected), timeout=90)
        assert recovered, f"recovered totals differ (answered, expected): {_total_differences(worker, expected)}"
    finally:
        worker.stop()


def test_two_workers_split_partitions_and_answer_for_any_user(infra: Infra, settings: Settings, tmp_path: Path):
    s = _settings(settings, tmp_path)
    events = _simulated(students=24, days=6, seed=3)
    _send(s, events)
    expected = _unique_counts(events)
    with workers(s, free_ports(2), tmp_path) as (a, b):
        assert wait_for(lambda: _totals_match(a, expected) and _totals_match(b, expected), timeout=90)
        stable = ("events_total", "lessons_completed_30d", "longest_streak_days", "first_seen", "last_event_time")
        for user in list(expected)[:8]:
            from_a, from_b = a.engagement(user).json()["signals"], b.engagement(user).json()["signals"]
            assert {k: from_a[k] for k in stable} == {k: from_b[k] for k in stable}
            assert from_a["events_total"] == expected[user]
        # Auth: the collector's write keys cannot read; no key is refused.
        user = next(iter(expected))
        assert a.engagement(user, headers={"Authorization": "Bearer wk_demo_web"}).status_code == 403
        assert a.engagement(user, headers={"X-Nothing": "1"}).status_code == 401
        recalc = __import__("httpx").post(f"{b.url}/v1/users/{user}/recalculate", headers=SERVER_KEY, timeout=10)
        assert recalc.status_code == 200 and recalc.json()["risk_update"]["trigger"] == "manual"


def test_silent_student_risk_rises_without_new_events(infra: Infra, settings: Settings, tmp_path: Path):
    s = _settings(settings, tmp_path, worker_clock="event", silence_tick_seconds=1.0, rescore_after_seconds=2.0)
    day0 = datetime.now(ZoneInfo("Europe/London")).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(
        days=30
    )

    def login(user: str, day: int) -> dict[str, Any]:
        return {
            "event_id": f"{user}-{day}",
            "user_id": user,
            "event_type": "login",
            "event_time": (day0 + timedelta(days=day)).isoformat(),
            "platform": "web",
            "timezone": "Europe/London",
        }

    quiet = [login("quiet-1", d) for d in range(0, 8)]
    busy = [login("busy-1", d) for d in range(0, 8)]
    with workers(s, [free_port()], tmp_path) as (worker,):
        _send(s, quiet + busy)
        assert wait_for(lambda: worker.engagement("quiet-1").status_code == 200, timeout=60)
        before = worker.engagement("quiet-1").json()["risk"]["risk_7d"]
        # Only the other student keeps going: the event clock moves 20 days on, quiet-1 sends nothing.
        _send(s, [login("busy-1", d) for d in range(8, 28)])

        def risen() -> bool:
            risk = worker.engagement("quiet-1").json()["risk"]
            return risk is not None and risk["risk_7d"] > before + 20

        assert wait_for(risen, timeout=60), "the silent student's risk did not rise"
    updates = read_to_end(s.kafka, catalogue(s.topic_prefix, 4).risk_updates.name)  # the worker stopped
    assert any(u["user_id"] == "quiet-1" and u["trigger"] == "silence" for u in updates)


def test_outputs_of_an_uncommitted_batch_are_sent_again_when_its_record_is_restored(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    """A worker can crash after Kafka acknowledged a student's record but before it acknowledged the milestone
    sent beside it; the re-delivered message is then skipped as folded. The record's outbox carries the
    milestone, and whoever restores the record while its batch is uncommitted sends it again and re-scores."""
    s = _settings(settings, tmp_path)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    user = "outbox-u1"
    record = UserRecord.load(None, user)
    login = {"event_id": "ob-1", "user_id": user, "event_type": "login", "platform": "web",
             "event_time": datetime.now().astimezone().isoformat()}  # fmt: skip
    ingest(record, user, [login])
    record.source_offset = 0  # folded from offset 0 of its partition; the group has committed nothing
    milestone = {"milestone_id": f"{user}:streak:7", "user_id": user, "milestone_days": 7}
    record.outbox.append([topics.streak_milestones.name, user, json.dumps(milestone)])
    # What the crashed worker's changelog write left behind (the worker would create this topic itself).
    changelog = TopicSpec(f"{s.topic_prefix}-worker-user-state-changelog", s.event_partitions)
    ensure_topics(s.kafka, [changelog])
    producer = Producer(kafka_conf(s.kafka))
    producer.produce(changelog.name, record.to_bytes(), user.encode(), key_partition(user.encode(), s.event_partitions))
    assert producer.flush(30) == 0

    with workers(s, [free_port()], tmp_path) as (worker,):
        assert wait_for(lambda: _rescored(worker, user), timeout=60), "the restored record was never re-scored"
    # Read once the re-score happened and the worker stopped (its outputs flushed), to the topics' end offsets:
    # every message, not the first one. A second restore (a rebalance) may send the milestone again under its
    # own id, which is at-least-once and fine; anything else on the topic is not.
    resent = read_to_end(s.kafka, topics.streak_milestones.name)
    assert resent and all(m == milestone for m in resent), resent
    rescored = read_to_end(s.kafka, topics.risk_updates.name)
    assert rescored and {u["user_id"] for u in rescored} == {user}


def test_outputs_of_a_debounce_tick_are_sent_again_when_its_owed_record_is_restored(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    """A debounce tick waits for Kafka's acknowledgement outside the records lock, leaving the record owed with
    the tick's outputs in its outbox; a commit may write it meanwhile, its batch long committed. Whoever
    restores an owed record sends its outbox again (and re-scores), committed batch or not."""
    s = _settings(settings, tmp_path)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    user = "owed-u1"
    partition = key_partition(user.encode(), s.event_partitions)
    record = UserRecord.load(None, user)
    now = datetime.now().astimezone()
    login = {"event_id": "ow-1", "user_id": user, "event_type": "login", "platform": "web",
             "event_time": now.isoformat()}  # fmt: skip
    ingest(record, user, [login])
    owe_score(record, ScoreRequest(user, now, "events"))
    update = {"update_id": "sent-by-the-tick", "user_id": user, "tier": "low"}  # what the tick sent (any JSON will do)
    record.outbox.append([topics.risk_updates.name, user, json.dumps(update)])
    changelog = TopicSpec(f"{s.topic_prefix}-worker-user-state-changelog", s.event_partitions)
    ensure_topics(s.kafka, [changelog])
    producer = Producer(kafka_conf(s.kafka))
    producer.produce(changelog.name, record.to_bytes(), user.encode(), partition)
    assert producer.flush(30) == 0
    # The record's batch is committed: the group's offset is past its source offset.
    group = Consumer(kafka_conf(s.kafka, {"group.id": f"{s.topic_prefix}-worker"}))
    group.commit(offsets=[TopicPartition(topics.events.name, partition, 1)], asynchronous=False)
    group.close()

    with workers(s, [free_port()], tmp_path) as (worker,):
        assert wait_for(lambda: _rescored(worker, user), timeout=60), "the owed record was never re-scored"
    updates = read_to_end(s.kafka, topics.risk_updates.name)  # once re-scored and stopped: see above
    assert update in updates  # the outbox, sent again
    assert any(u.get("trigger") == "events" and u["update_id"] != update["update_id"] for u in updates)


# Runs `engage worker` with a consumer that loses the messages at LOST (partition, offset) once each, the way
# Faust's fetcher lost one in a race after a SIGKILL (streams.worker.gaps); the acknowledgements still cover
# them, so Faust commits past them. Arguments after the script are the CLI's.
_SKIPPING_WORKER = """
import sys
from streams.worker.app import EngagementWorker
from engage.cli import main

handle_batch, lost = EngagementWorker.handle_batch, set()
LOST = {lost!r}

async def losing_some(self, batch):
    kept = []
    for event in batch:
        where = (event.message.partition, event.message.offset)
        if where in LOST and where not in lost:
            lost.add(where)
            continue
        kept.append(event)
    await handle_batch(self, kept)

EngagementWorker.handle_batch = losing_some
sys.argv = ["engage", *sys.argv[1:]]
main()
"""


def _messages_per_partition(s: Settings) -> dict[int, int]:
    topic = catalogue(s.topic_prefix, s.event_partitions).events.name
    consumer = Consumer(kafka_conf(s.kafka, {"group.id": f"{topic}-count"}))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(s.event_partitions)
        }
    finally:
        consumer.close()


def test_messages_the_consumer_skipped_are_read_directly_and_folded(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    """Every place a lost message can sit in its partition: the first (nothing folded or committed yet to compare
    with), one in the middle (the next batch shows the hole), and the last (no next batch ever shows it: a clean
    clone's run lost a student's events that way, on a day the simulated data gave a partition two messages)."""
    s = _settings(settings, tmp_path, worker_lost_message_grace_seconds=2.0)
    events = _simulated(students=24, days=5, seed=21)
    _send(s, events)
    counts = _messages_per_partition(s)
    assert all(n >= 3 for n in counts.values()), f"every partition needs a first, a middle and a last: {counts}"
    last = {p: n - 1 for p, n in counts.items()}
    lost = {(0, 0), (1, last[1]), (2, counts[2] // 2), (3, 0), (3, last[3])}
    expected = _unique_counts(events)
    script = _SKIPPING_WORKER.format(lost=lost)
    worker = WorkerProcess(s, free_port(), tmp_path / "worker.log", python=["-c", script]).start()
    try:
        folded = wait_for(lambda: _totals_match(worker, expected), timeout=60)
        assert folded, f"totals differ (answered, expected): {_total_differences(worker, expected)}, lost {lost}"
        metrics = __import__("httpx").get(f"{worker.url}/metrics").text
        refetched = re.search(r"^engage_worker_messages_refetched_total (\S+)$", metrics, re.M)
        assert refetched and float(refetched.group(1)) == len(lost), "each lost message read once more"
        log = (tmp_path / "worker.log").read_text()
        assert f"partition 1: offsets [{last[1]}] were handed to the stream" in log, "the tail found by the timer"
    finally:
        worker.stop()


# Runs `engage worker` with a consumer that takes every message of events partition DROP from Kafka and never
# hands it to the stream, the way a Faust fetch waking while no partition was active dropped prefetched events
# (streams.worker.faust_internals.fetch_only_partitions_active_when_asked): nothing is handed, so Faust's read
# offset stays unset, and the group has no committed offset for a seek to bring them back.
_DROPPING_WORKER = """
import sys
from faust.transport.consumer import Consumer
from engage.cli import main

getmany = Consumer.getmany
DROP = {drop}

async def dropping(self, timeout):
    async for tp, message in getmany(self, timeout):
        if tp.topic.endswith(".events.v1") and tp.partition == DROP:
            continue
        yield tp, message

Consumer.getmany = dropping
sys.argv = ["engage", *sys.argv[1:]]
main()
"""


def test_messages_the_consumer_took_and_never_handed_over_are_read_directly_and_folded(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    """A clean clone's catalogue move: the new catalogue's worker restored its state, and Faust dropped the events
    of a fetch that woke between the changelog's pause and the events' resume. No later batch shows the hole,
    no commit lets a seek bring them back: the timer sees the partition's end past the last folded offset with
    nothing handed, and reads them directly."""
    s = _settings(settings, tmp_path, worker_lost_message_grace_seconds=2.0)
    events = _simulated(students=12, days=3, seed=13)
    _send(s, events)
    counts = _messages_per_partition(s)
    drop = max(counts, key=lambda p: counts[p])
    expected = _unique_counts(events)
    script = _DROPPING_WORKER.format(drop=drop)
    worker = WorkerProcess(s, free_port(), tmp_path / "worker.log", python=["-c", script]).start()
    try:
        folded = wait_for(lambda: _totals_match(worker, expected), timeout=60)
        assert folded, f"totals differ (answered, expected): {_total_differences(worker, expected)}, dropped {drop}"
        log = (tmp_path / "worker.log").read_text()
        assert f"partition {drop}: offsets " in log and "taken from Kafka and never handed to the stream" in log
    finally:
        worker.stop()


def test_a_huge_message_that_is_not_an_event_batch_is_dead_lettered_and_the_worker_goes_on(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    """A 3.6 MB message the worker cannot read (Kafka takes up to 4 MiB) used to make a dead letter bigger than
    Kafka takes: the send failed, the worker stopped, and stopped again on the same message after every restart.
    Its letter now keeps the start and says where the whole message is; the events behind it are folded."""
    s = _settings(settings, tmp_path)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    huge = json.dumps({"user_id": "huge-1", "batches": ["ab"] * 600_000}).encode()  # 3.6 MB, 1.2 M quotes
    assert len(huge) < 4_194_304 < len(json.dumps({"raw": huge.decode()}))  # Kafka takes it, not its letter
    producer = Producer(kafka_conf(s.kafka, {"message.max.bytes": 4_194_304, "partitioner": "murmur2_random"}))
    producer.produce(topics.events.name, huge, b"huge-1")
    assert producer.flush(30) == 0
    events = _simulated(students=5, days=3, seed=5)
    _send(s, events)
    with workers(s, [free_port()], tmp_path) as (worker,):
        assert wait_for(lambda: _totals_match(worker, _unique_counts(events)), timeout=90), (
            "the events behind the unreadable message were not folded"
        )
    letters = read_topic(s.kafka, topics.dead_letters.name, expect=1, timeout=20)
    (letter,) = [dl for dl in letters if dl["original_topic"] == topics.events.name]
    assert letter["reason"].startswith("not an EventBatch") and letter["original_offset"] == 0
    assert letter["original_partition"] == key_partition(b"huge-1", s.event_partitions)
    assert letter["raw"].startswith('{"user_id": "huge-1"') and letter["raw"].endswith("more characters not kept]")


def test_a_partition_batch_is_folded_per_student_and_one_in_the_wrong_partition_is_dead_lettered(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    """The producer library packs students per partition (``PartitionBatch``); a student found in a partition
    their id does not hash to would have their state on the wrong worker: that batch is refused, the rest kept."""
    s = _settings(settings, tmp_path)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    events = _simulated(students=12, days=3, seed=8)
    with EventProducer(s.kafka, topics) as p:
        assert p.send(events) <= s.event_partitions  # all twelve students in one message per partition
        assert p.flush(60) == 0
    home = next(u for u in (f"home-{n}" for n in range(100)) if key_partition(u.encode(), s.event_partitions) == 0)
    stray = next(u for u in (f"stray-{n}" for n in range(100)) if key_partition(u.encode(), s.event_partitions) != 0)
    batches = [{"user_id": u, "events": [dict(events[0], event_id=f"{u}-e1", user_id=u)]} for u in (stray, home)]
    producer = Producer(kafka_conf(s.kafka))
    value = json.dumps({"schema_version": 1, "source": "test", "partition": 0, "batches": batches}).encode()
    producer.produce(topics.events.name, value, b"partition:0", partition=0)
    assert producer.flush(30) == 0
    with workers(s, [free_port()], tmp_path) as (worker,):
        expected = _unique_counts(events) | {home: 1}
        assert wait_for(lambda: _totals_match(worker, expected), timeout=90), _total_differences(worker, expected)
        assert worker.engagement(stray).status_code == 404
        metrics = __import__("httpx").get(f"{worker.url}/metrics").text
        assert re.search(r"^engage_worker_refused_batches_total 1\.0$", metrics, re.M), "counted for the dashboards"
    letters = read_topic(s.kafka, topics.dead_letters.name, expect=1, timeout=20)
    (letter,) = [dl for dl in letters if stray in dl["raw"]]
    assert f"belongs in partition {key_partition(stray.encode(), s.event_partitions)}" in letter["reason"]
    assert letter["original_partition"] == 0 and home not in letter["raw"]
