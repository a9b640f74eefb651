"""Every sink under faults, on the real servers: ClickHouse down mid-stream, and a crash between insert and commit.

The guarantee is at-least-once delivery into tables that collapse re-deliveries by a natural key
(ReplacingMergeTree, read with FINAL): these tests show nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from config.settings import Settings
from deploy.infra import Infra
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from processors.pipeline import UserRecord, ingest, student_profile
from processors.policy import PolicyConfig
from processors.profile import ProfileCohorts
from processors.signals import snapshot
from schemas.experiments import ArmOutcome, Exposure, Surface, exposure_id
from schemas.gamification import (
    AchievementUnlocked,
    Celebration,
    CelebrationKind,
    LeaderboardRow,
    LeagueOutcome,
    LeagueResult,
    LeagueTier,
    LevelUp,
    XpAwardBatch,
    league_result_id,
    level_up_id,
    unlock_id,
)
from schemas.interventions import InterventionOutcome, InterventionType, OutcomeKind
from schemas.messages import DeadLetter
from schemas.profile import Profile
from schemas.streaks import StreakMilestone
from schemas.topics import TopicCatalogue, catalogue
from sinks.clickhouse.client import connect
from sinks.positions import SINK_NAMES
from sinks.runner import SinkRunner
from sinks.service import build_runners
from tests.analytics.conftest import request, risk

pytestmark = pytest.mark.integration

# table, how many messages of it one "wave" sends, rows per message
TABLES = {
    "behavior_events": 300,  # EventBatch messages of 2 events each
    "risk_updates": 200,
    "intervention_requests": 100,
    "intervention_outcomes": 100,
    "streak_milestones": 60,
    "dead_letters": 60,
    "xp_awards": 200,
    "level_ups": 60,
    "achievements_unlocked": 60,
    "celebrations": 60,
    "leaderboard_snapshots": 60,
    "league_results": 60,
    "experiment_exposures": 60,
    "user_profiles_daily": 60,
    "bandit_outcomes": 60,
}
EVENTS_PER_MESSAGE = 2


def _isolated(settings: Settings, **extra: Any) -> Settings:
    tag = uuid.uuid4().hex[:8]
    update = {"topic_prefix": f"fault-{tag}", "clickhouse_database": f"fault_{tag}", **extra}
    s = settings.model_copy(update=update)
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def _send_wave(producer: EventProducer, topics: TopicCatalogue, wave: int) -> None:
    """One wave of distinct messages on every topic the sinks read."""
    base = datetime(2026, 11, 2, 8, tzinfo=UTC) + timedelta(days=wave)
    day = base.date().isoformat()
    for i in range(TABLES["behavior_events"]):
        user = f"w{wave}-u{i}"
        producer.send(
            [
                {
                    "event_id": f"w{wave}-e{i}-{k}",
                    "user_id": user,
                    "event_type": "login",
                    "event_time": (base + timedelta(minutes=k)).isoformat(),
                    "platform": "web",
                    "timezone": "UTC",
                }
                for k in range(EVENTS_PER_MESSAGE)
            ]
        )
    encoded: list[tuple[str, str]] = []
    encoded += [
        (topics.risk_updates.name, risk(f"w{wave}-r{i}", day, 50.0).model_dump_json())
        for i in range(TABLES["risk_updates"])
    ]
    encoded += [
        (
            topics.interventions.name,
            request(f"w{wave}-i{i}", day, "send", InterventionType.gentle_reminder, "low").model_dump_json(),
        )
        for i in range(TABLES["intervention_requests"])
    ]
    encoded += [
        (
            topics.intervention_outcomes.name,
            InterventionOutcome(
                intervention_id=f"w{wave}-o{i}", user_id=f"w{wave}-o{i}", outcome=OutcomeKind.sent, at=base
            ).model_dump_json(),
        )
        for i in range(TABLES["intervention_outcomes"])
    ]
    encoded += [
        (
            topics.streak_milestones.name,
            StreakMilestone(
                milestone_id=f"w{wave}-m{i}",
                user_id=f"w{wave}-m{i}",
                milestone_days=7,
                streak_days=7,
                run_start=date(2026, 10, 1),
                reached_on=base.date(),
                timezone="UTC",
                event_time=base,
            ).model_dump_json(),
        )
        for i in range(TABLES["streak_milestones"])
    ]
    encoded += [
        (
            topics.dead_letters.name,
            DeadLetter(
                dead_letter_id=f"w{wave}-d{i}", received_at=base, source="collector", reason="test", raw="{}"
            ).model_dump_json(),
        )
        for i in range(TABLES["dead_letters"])
    ]
    encoded += _gamification_wave(topics, wave, base)
    for topic, value in encoded:
        producer.send_encoded(b"k", value.encode(), topic=topic)
    producer.flush()


def _gamification_wave(topics: TopicCatalogue, wave: int, base: datetime) -> list[tuple[str, str]]:
    encoded = [
        (
            topics.xp_awards.name,
            XpAwardBatch(user_id=f"w{wave}-x{i}", rules_version=1,
                         awards=[("lesson", "e1", "", 10, 10, 1.0, 10, base.date(), base)]).model_dump_json(),
        )
        for i in range(TABLES["xp_awards"])
    ]  # fmt: skip
    encoded += [
        (
            topics.level_ups.name,
            LevelUp(level_up_id=level_up_id(f"w{wave}-l{i}", 2), user_id=f"w{wave}-l{i}", level=2, total_xp=100,
                    event_time=base).model_dump_json(),
        )
        for i in range(TABLES["level_ups"])
    ]  # fmt: skip
    encoded += [
        (
            topics.achievements.name,
            AchievementUnlocked(unlock_id=unlock_id(f"w{wave}-a{i}", "first"), user_id=f"w{wave}-a{i}",
                                achievement_id="first", name="First", description="d", rules_version=1,
                                event_time=base).model_dump_json(),
        )
        for i in range(TABLES["achievements_unlocked"])
    ]  # fmt: skip
    encoded += [
        (
            topics.celebrations.name,
            Celebration(celebration_id=f"level_up:w{wave}-c{i}:level:2", user_id=f"w{wave}-c{i}",
                        kind=CelebrationKind.level_up, source_id=f"w{wave}-c{i}:level:2", title="Level 2!", body="b",
                        event_time=base).model_dump_json(),
        )
        for i in range(TABLES["celebrations"])
    ]  # fmt: skip
    encoded += [
        (
            topics.leaderboard_snapshots.name,
            LeaderboardRow(snapshot_id=f"global:all:w{wave}:{i + 1}", board="global", period="all", taken_at=base,
                           rank=i + 1, user_id=f"w{wave}-b{i}", xp=1000 - i).model_dump_json(),
        )
        for i in range(TABLES["leaderboard_snapshots"])
    ]  # fmt: skip
    encoded += [
        (
            topics.league_results.name,
            LeagueResult(league_result_id=league_result_id(f"w{wave}-l{i}", "2026-W47"), user_id=f"w{wave}-l{i}",
                         week="2026-W47", week_start=date(2026, 11, 16), tier=LeagueTier.silver,
                         group_id="2026-W47:silver:1", group_size=30, rank=1 + i % 30, week_xp=100 - i % 30,
                         outcome=LeagueOutcome.stayed, next_tier=LeagueTier.silver).model_dump_json(),
        )
        for i in range(TABLES["league_results"])
    ]  # fmt: skip
    encoded += [
        (
            topics.exposures.name,
            Exposure(exposure_id=exposure_id("copy", f"w{wave}-e{i}", "control"), experiment="copy",
                     variant="control", user_id=f"w{wave}-e{i}", at=base, surface=Surface.template).model_dump_json(),
        )
        for i in range(TABLES["experiment_exposures"])
    ]  # fmt: skip
    profile = _a_profile()
    encoded += [
        (
            topics.profiles.name,
            profile.model_copy(update={"user_id": f"w{wave}-p{i}", "profile_id": f"w{wave}-p{i}:{profile.day}"})
            .model_dump_json(),
        )
        for i in range(TABLES["user_profiles_daily"])
    ]  # fmt: skip
    encoded += [
        (
            topics.bandit_outcomes.name,
            ArmOutcome(intervention_id=f"w{wave}-n{i}:bandit", user_id=f"w{wave}-n{i}",
                       arm=InterventionType.gentle_reminder, tier="low", success=i % 2 == 0, sent_at=base,
                       at=base + timedelta(days=7)).model_dump_json(),
        )
        for i in range(TABLES["bandit_outcomes"])
    ]  # fmt: skip
    return encoded


def _a_profile() -> Profile:
    """A real profile, as the worker builds one (the sink's rows come from it, one per student and day)."""
    record = UserRecord.load(None, "p")
    now = datetime.now(UTC)
    ingest(record, "p", [{"event_id": "p1", "user_id": "p", "event_type": "login", "event_time": now.isoformat(),
                          "platform": "web", "payload": {}}])  # fmt: skip
    snap = snapshot(record.state, now)
    return student_profile(record, "p", snap, ProfileCohorts(), None, PolicyConfig(), None, observe=False)


def _expected(waves: int) -> dict[str, int]:
    per = dict(TABLES, behavior_events=TABLES["behavior_events"] * EVENTS_PER_MESSAGE)
    return {t: n * waves for t, n in per.items()}


def _stored(settings: Settings) -> dict[str, int]:
    client = connect(settings)
    out = {}
    for table in TABLES:
        try:
            out[table] = client.execute(f"SELECT count() FROM {settings.clickhouse_database}.{table} FINAL")[0][0]
        except Exception:
            out[table] = -1  # not there yet, or ClickHouse down
    return out


def _wait_for(settings: Settings, expected: dict[str, int], timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    stored = _stored(settings)
    while stored != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        stored = _stored(settings)
    return stored


def test_every_sink_waits_out_a_clickhouse_outage_and_stores_everything_once(infra: Infra, settings: Settings) -> None:
    from deploy import server

    s = _isolated(settings, sink_batch_rows=150, sink_batch_seconds=0.2)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    dead = EventProducer(s.kafka, topics, source="sink")
    runners = build_runners(s, SINK_NAMES, dead)
    for r in runners:
        r.max_backoff_seconds = 0.5
    threads = [threading.Thread(target=r.run, kwargs={"idle_exit_seconds": 120.0}, daemon=True) for r in runners]
    with EventProducer(s.kafka, topics) as producer:
        _send_wave(producer, topics, 0)
        for t in threads:
            t.start()
        assert _wait_for(s, _expected(1), 60) == _expected(1)
        server.stop(infra.clickhouse)
        try:
            _send_wave(producer, topics, 1)  # keeps flowing while ClickHouse is down
            deadline = time.monotonic() + 20
            while any(r.stats.write_failures == 0 for r in runners) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            server.start(infra.clickhouse)
    failed = {r.sink.name: r.stats.write_failures for r in runners}
    stored = _wait_for(s, _expected(2), 90)
    for r in runners:
        r.stop()
    for t in threads:
        t.join(timeout=30)
    dead.close()
    assert all(n > 0 for n in failed.values()), f"some sink never noticed the outage: {failed}"
    assert stored == _expected(2)
    for r in runners:
        # memory bound: one batch being gathered (at most batch_rows plus one message's rows), one in flight
        assert r.stats.max_buffered_rows <= r.batch_rows + EVENTS_PER_MESSAGE, r.sink.name


class _Crash(RuntimeError):
    pass


class _DiesBeforeCommit:
    """A consumer whose process "dies" right after the insert, before the offsets are committed."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def commit(self, *args: Any, **kwargs: Any) -> None:
        raise _Crash("killed between insert and commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_a_batch_replayed_after_a_crash_between_insert_and_commit_is_stored_once(
    infra: Infra, settings: Settings
) -> None:
    s = _isolated(settings, sink_batch_rows=100_000, sink_batch_seconds=0.5)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    with EventProducer(s.kafka, topics) as producer:
        _send_wave(producer, topics, 0)
    dead = EventProducer(s.kafka, topics, source="sink")
    crashing: list[SinkRunner] = build_runners(s, SINK_NAMES, dead)
    for r in crashing:
        r._consumer = _DiesBeforeCommit(r._consumer)  # type: ignore[assignment]
        with pytest.raises(_Crash):
            r.run(idle_exit_seconds=10.0)
        assert r.stats.rows_written == 0  # nothing was acknowledged...
    stored_once = _stored(s)
    assert stored_once == _expected(1)  # ...but every row is in ClickHouse already
    again = build_runners(s, SINK_NAMES, dead)
    threads = [threading.Thread(target=r.run, kwargs={"idle_exit_seconds": 3.0}) for r in again]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    dead.close()
    expected = _expected(1)
    # the restarted sinks re-read the uncommitted range and inserted it again...
    assert {r.sink.name: r.stats.rows_written for r in again} == expected
    # ...and each row still counts once
    assert _stored(s) == expected
