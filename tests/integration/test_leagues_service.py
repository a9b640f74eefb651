"""Weekly leagues on real Kafka: the leaderboard service places the students of a week's standings in league
groups, closes the week after its grace and publishes the results the rules (``processors.gamification.leagues``)
give, once; the next week is played in the tiers those results left; ``GET /v1/leagues/users/{id}`` answers; and
a restarted service reads the tiers back from the league-results topic and publishes nothing again.

The service runs in this process (``leaderboards.runner.running``, as the other leaderboard tests) on a clock the
test moves, so a week can close without waiting for a Monday."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from kafka_io.client import kafka_conf
from leaderboards.runner import running
from leaderboards.service import Service
from processors.gamification.leagues import LeagueRules, close_week, last_result
from processors.gamification.weeks import iso_week
from schemas.gamification import BoardXp, LeagueOutcome, LeagueResult, LeagueTier, Standing
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end
from tests.integration.test_leaderboard_service import SERVER_KEY, produce, until

pytestmark = pytest.mark.integration

W48_DAY, W49_DAY = date(2026, 11, 27), date(2026, 12, 2)  # a Friday of 2026-W48, a Wednesday of 2026-W49
W48, W49 = iso_week(W48_DAY), iso_week(W49_DAY)
W48_CLOSES = datetime(2026, 11, 30, 0, 10, tzinfo=UTC)  # Monday 00:00 + the 600 s grace
W49_CLOSES = datetime(2026, 12, 7, 0, 10, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def standing(user: str, seq: int, week_xp: int, day: date, total: int = 0) -> Standing:
    xp = BoardXp(total=max(total, week_xp), day=day, day_xp=week_xp, week=iso_week(day), week_xp=week_xp)
    return Standing(user_id=user, level=1, global_xp=xp, seq=seq)


def league(service: Service, user: str, neighbours: int = 3) -> dict[str, Any]:
    answer = httpx.get(f"{service.url}/v1/leagues/users/{user}?neighbours={neighbours}", headers=SERVER_KEY, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def results_on_topic(s: Settings) -> list[LeagueResult]:
    topic = catalogue(s.topic_prefix, s.event_partitions).league_results.name
    return [LeagueResult.model_validate(m) for m in read_to_end(s.kafka, topic)]


def raw_messages(s: Settings) -> list[tuple[str, bytes | None]]:
    """(key, value) of every message on the league-results topic, tombstones included."""
    topic = catalogue(s.topic_prefix, s.event_partitions).league_results.name
    consumer = Consumer(kafka_conf(s.kafka, {"group.id": f"lr-raw-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False}))  # fmt: skip
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        left = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in left])
        out: list[tuple[str, bytes | None]] = []
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() or (msg.offset() or 0) >= ends[msg.partition() or 0]:
                continue
            out.append(((msg.key() or b"").decode(), msg.value()))
            if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
                left.discard(msg.partition() or 0)
        assert not left, f"{topic}: partitions {sorted(left)} not read to their ends"
        return out
    finally:
        consumer.close()


def ordered(results: Any) -> list[LeagueResult]:
    return sorted(results, key=lambda r: (r.week, r.user_id))


def settle(s: Settings, seconds: float = 3.0) -> list[LeagueResult]:
    """The results on the topic once the service has had ``seconds`` to publish anything more."""
    time.sleep(seconds)
    return results_on_topic(s)


def test_a_week_closes_into_the_results_the_rules_give_once_and_the_next_week_plays_in_the_new_tiers(
    settings: Settings, infra: Infra
) -> None:
    s = settings.model_copy(
        update={
            "topic_prefix": f"lg-{uuid.uuid4().hex[:8]}",
            "leaderboard_port": free_port(),
            "leaderboard_snapshot_seconds": 0.0,
            # small groups, so a few dozen students make several groups and every kind of outcome
            "league_group_size": 10,
            "league_promote": 3,
            "league_demote": 2,
            "league_close_grace_seconds": 600.0,
        }
    )
    rules = LeagueRules(10, 3, 2)
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())

    # W48: 40 students, XP with ties (every fourth shares a score), and one whose standing comes in the grace
    w48 = {f"p{i:02d}": 10 + (i // 4) * 7 for i in range(40)}
    expected_w48 = close_week(W48, w48 | {"late": 3}, {}, rules)
    tiers = {r.user_id: last_result(r) for r in expected_w48}
    # W49: the 12 the rules promote, 8 who stayed, 10 new students
    promoted = sorted(r.user_id for r in expected_w48 if r.outcome == LeagueOutcome.promoted)
    stayed = sorted(r.user_id for r in expected_w48 if r.outcome == LeagueOutcome.stayed and r.user_id != "late")
    w49 = {u: 5 + 3 * i for i, u in enumerate([*promoted, *stayed[:8]])} | {f"n{i:02d}": 4 + 2 * i for i in range(10)}
    produce(s, *(standing(u, 1, xp, W48_DAY) for u, xp in w48.items()))
    clock = Clock(datetime(2026, 11, 29, 20, 0, tzinfo=UTC))  # Sunday evening of W48
    with running(s, clock=clock) as service:
        ann = league(service, "p00")
        assert (ann["week"], ann["tier"], ann["placed"], ann["days_left"]) == (W48, "bronze", True, 1)
        assert ann["group_size"] == 10 and ann["group_id"].startswith(f"{W48}:bronze:")
        assert len(ann["standings"]) == 10 and ann["standings"][ann["rank"] - 1]["user_id"] == "p00"
        assert [r["rank"] for r in ann["standings"]] == list(range(1, 11))
        assert league(service, "nobody")["placed"] is False
        bad = httpx.get(f"{service.url}/v1/leagues/users/p00?neighbours=x", headers=SERVER_KEY, timeout=30)
        assert bad.status_code == 400
        assert httpx.get(f"{service.url}/v1/leagues/users/p00", timeout=30).status_code == 401

        # Monday 00:05, in the grace: a late W48 standing still counts; W49 begins for 15 of them and 15 new.
        clock.now = datetime(2026, 11, 30, 0, 5, tzinfo=UTC)
        produce(s, standing("late", 1, 3, W48_DAY), *(standing(u, 2, xp, W49_DAY - timedelta(days=2), total=100 + xp)
                                                       for u, xp in w49.items()))  # fmt: skip
        until("the W49 standings", lambda: league(service, "n09")["placed"])
        idle = stayed[-1]
        assert league(service, idle)["placed"] is False  # no XP in W49 (yet)
        assert settle(s, 2.0) == []  # not closed during the grace

        # 00:10: W48 closes.
        clock.now = W48_CLOSES
        got = until("the W48 results", lambda: ordered(results_on_topic(s)) if len(results_on_topic(s)) >= 41 else None)
        assert got == expected_w48
        assert len({r.group_id for r in expected_w48}) == 4  # 41 students: groups of 10, 10, 10, 11
        outcomes = Counter(r.outcome for r in expected_w48)
        assert outcomes == {LeagueOutcome.promoted: 12, LeagueOutcome.stayed: 29}  # nobody falls below bronze

        # W49 is played in the tiers W48 left: the promoted in a silver group, the rest and the new in bronze.
        for user in (promoted[0], promoted[-1], stayed[0], "n00"):
            view = league(service, user)
            tier = tiers[user].next_tier if user in tiers else LeagueTier.bronze
            assert (view["week"], view["tier"], view["placed"]) == (W49, tier.value, True), view
            assert view["group_id"].startswith(f"{W49}:{tier.value}:")
        assert league(service, promoted[0])["group_size"] == 12
        assert league(service, idle)["last_result"] == {"week": W48, "tier": "bronze", "next_tier": "bronze"}
        before_restart = {u: league(service, u) for u in w49}
        assert ordered(settle(s)) == got  # published once

    # A restart in W49: the tiers come back from the topic, W48 is not closed again, the groups are the same.
    clock.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    with running(s, clock=clock) as again:
        assert {u: league(again, u) | {"days_left": 0} for u in w49} == {
            u: v | {"days_left": 0} for u, v in before_restart.items()
        }
        assert ordered(settle(s)) == got

        # Monday 00:10 of the next week: W49 closes, its tiers from the W48 results.
        clock.now = W49_CLOSES
        expected_w49 = close_week(W49, w49, tiers, rules)
        done = until("the W49 results", lambda: results_on_topic(s) if len(results_on_topic(s)) >= 41 + 30 else None)
        assert ordered(r for r in done if r.week == W49) == expected_w49
        silver = Counter(r.outcome for r in expected_w49 if r.tier == LeagueTier.silver)
        assert silver == {LeagueOutcome.promoted: 3, LeagueOutcome.stayed: 7, LeagueOutcome.demoted: 2}
        first = expected_w49[0]
        view = league(again, first.user_id)  # the week after W49: the tier it left, not placed yet
        assert (view["tier"], view["placed"]) == (first.next_tier.value, False)

    # Another restart, after both closes: nothing new is published, nothing was dead-lettered (keys are user ids).
    clock.now = W49_CLOSES + timedelta(minutes=30)
    with running(s, clock=clock) as third:
        assert league(third, promoted[0])["last_result"]["week"] == W49
        final = settle(s)
        assert len(final) == 41 + 30 and len({r.league_result_id for r in final}) == len(final)
        assert ordered(final) == ordered([*expected_w48, *expected_w49])

        # An erased student (a tombstone on the standings topic) leaves the leagues: their result gets a tombstone.
        produce(s, (promoted[0].encode(), None))
        until("the erasure", lambda: league(third, promoted[0])["last_result"] is None)
        tombstones = until("the result's tombstone", lambda: [k for k, v in raw_messages(s) if v is None])
        assert tombstones == [promoted[0]]
    letters = [d for d in read_to_end(s.kafka, topics.dead_letters.name) if d["source"] == "leaderboards"]
    assert letters == []
