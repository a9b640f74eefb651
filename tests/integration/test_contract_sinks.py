"""Risk updates, interventions, milestones, dead letters and gamification's messages into ClickHouse, on the real
servers."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from deploy.infra import Infra
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from schemas.gamification import (
    AchievementUnlocked,
    BoardXp,
    Celebration,
    CelebrationKind,
    LeaderboardRow,
    LevelUp,
    Standing,
    XpAward,
    XpAwardBatch,
    award_entry,
    award_id,
    level_up_id,
    unlock_id,
)
from schemas.interventions import InterventionRequest, InterventionType
from schemas.messages import DeadLetter
from schemas.risk import RiskUpdate
from schemas.signals import RiskFactor, SignalSnapshot
from schemas.streaks import StreakMilestone, milestone_id
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.positions import SERVICE_NAMES, sink_lag
from sinks.service import run_sinks

pytestmark = pytest.mark.integration


def test_contract_topics_are_stored_once_each(infra: Infra, settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"topic_prefix": f"cs-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    now = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    update = RiskUpdate(
        update_id="u1:1",
        user_id="u1",
        scored_at=now,
        as_of=now,
        trigger="events",
        risk_7d=82.5,
        risk_30d=90.0,
        tier="critical",
        confidence=0.7,
        factors=[
            RiskFactor(
                signal="days_since_last_login", group="login", description="No login for 9 days", contribution=30.0
            )
        ],
        model_version="heuristic-1",
        signals=SignalSnapshot(user_id="u1", as_of=now, logins_30d=4, days_since_last_login=9.0),
    )
    request = InterventionRequest(
        intervention_id="i-1",
        user_id="u1",
        created_at=now,
        status="held_out",
        tier="critical",
        intervention_type=InterventionType.human_outreach,
        reason="No login for 9 days",
        deadline=now + timedelta(hours=4),
        risk_7d=82.5,
        model_version="heuristic-1",
        triggered_by_event_time=now,
    )
    milestone = StreakMilestone(
        milestone_id=milestone_id("u2", date(2026, 11, 1), 7),
        user_id="u2",
        milestone_days=7,
        streak_days=7,
        run_start=date(2026, 11, 1),
        reached_on=date(2026, 11, 7),
        timezone="Europe/London",
        event_time=now,
    )
    letter = DeadLetter(dead_letter_id="d-1", received_at=now, source="collector", reason="bad", raw="{}")
    with EventProducer(s.kafka, topics) as producer:
        for _ in range(2):  # everything twice: a re-delivery must not show up as a second row
            for topic, value in (
                (topics.risk_updates.name, update.model_dump_json()),
                (topics.interventions.name, request.model_dump_json()),
                (topics.streak_milestones.name, milestone.model_dump_json()),
                (topics.dead_letters.name, letter.model_dump_json()),
            ):
                producer.send_encoded(b"k", value.encode(), topic=topic)
        producer.send_encoded(b"k", b"not json", topic=topics.risk_updates.name)
    names = ["risk-updates", "interventions", "milestones", "dead-letters"]
    assert sink_lag(s, names) == {"risk-updates": 3, "interventions": 2, "milestones": 2, "dead-letters": 2}
    stats = run_sinks(s, names, idle_exit=2.0)
    assert stats["risk_updates"].dead_letters == 1
    assert sink_lag(s, names[:3]) == dict.fromkeys(names[:3], 0)  # (the new dead letter may still be in flight)

    client = connect(s)
    db = s.clickhouse_database
    rows = client.execute(
        f"SELECT user_id, tier, risk_7d, signals_logins_30d, signals_days_since_last_login, factors, as_of "
        f"FROM {db}.risk_updates FINAL WHERE update_id = 'u1:1'"
    )
    assert len(rows) == 1
    user, tier, risk, logins, since, factors, as_of = rows[0]
    assert (user, tier, risk, logins, since) == ("u1", "critical", 82.5, 4, 9.0)
    assert "No login for 9 days" in factors and as_of.replace(tzinfo=UTC) == now
    requests = client.execute(
        f"SELECT status, intervention_type, channels FROM {db}.intervention_requests FINAL "
        "WHERE intervention_id = 'i-1'"
    )
    assert requests == [("held_out", "human_outreach", "[]")]
    assert client.execute(
        f"SELECT milestone_days, run_start, reached_on FROM {db}.streak_milestones FINAL WHERE user_id = 'u2'"
    ) == [(7, date(2026, 11, 1), date(2026, 11, 7))]
    letters = client.execute(f"SELECT source, reason FROM {db}.dead_letters FINAL ORDER BY source")
    assert ("collector", "bad") in letters


def test_migrations_on_the_local_server(infra: Infra, settings: Settings) -> None:
    from sinks.clickhouse.migrations import MIGRATIONS, migrate, status

    client = connect(settings)
    db = f"mig_{uuid.uuid4().hex[:6]}"
    assert [m.version for m in migrate(client, db)] == [m.version for m in MIGRATIONS]
    assert migrate(client, db) == []
    assert all(at is not None for _, _, at in status(client, db))
    tables = {r[0] for r in client.execute(f"SELECT name FROM system.tables WHERE database = '{db}'")}
    assert {"behavior_events", "risk_updates", "intervention_requests", "streak_milestones", "dead_letters"} <= tables
    assert {"xp_awards", "level_ups", "achievements_unlocked", "celebrations", "leaderboard_snapshots"} <= tables
    assert "standings" not in tables  # derived state: the leaderboard snapshots are what is kept of it


def test_intervention_outcomes_reported_over_http_land_in_clickhouse(infra: Infra, settings: Settings) -> None:
    import httpx

    from tests.integration.helpers import read_topic, running_collector

    s = settings.model_copy(update={"topic_prefix": f"oc-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    good = {"intervention_id": "i-9", "user_id": "u9", "outcome": "opened", "at": "2026-11-20T10:00:00+00:00"}
    bad = {"intervention_id": "i-10", "user_id": "u10", "outcome": "liked", "at": "2026-11-20T10:00:00+00:00"}
    with running_collector(s) as base:
        url = f"{base}/v1/interventions/outcomes"
        refused = httpx.post(url, json={"outcomes": [good]}, headers={"Authorization": "Bearer wk_demo_web"})
        assert refused.status_code == 403 and "server key" in refused.json()["detail"]
        assert httpx.post(url, json={"outcomes": [good]}).status_code == 401
        answer = httpx.post(url, json={"outcomes": [good, bad]}, headers={"Authorization": "Bearer sk_demo_backend"})
        assert answer.status_code == 200
        body = answer.json()
        assert body["accepted"] == 1
        assert body["rejected"][0]["index"] == 1 and body["rejected"][0]["reason"].startswith("outcome: ")
        empty = httpx.post(url, json={"outcomes": []}, headers={"Authorization": "Bearer sk_demo_backend"})
        assert empty.status_code == 400 and "at least one outcome" in empty.json()["detail"]
    letters = read_topic(s.kafka, topics.dead_letters.name, expect=2, timeout=10)
    assert any('"liked"' in letter["raw"] and letter["reason"].startswith("outcome: ") for letter in letters)
    run_sinks(s, ["outcomes"], idle_exit=2.0)
    client = connect(s)
    stored = client.execute(
        f"SELECT intervention_id, outcome, at FROM {s.clickhouse_database}.intervention_outcomes FINAL "
        "WHERE user_id = 'u9'"
    )
    assert stored == [("i-9", "opened", datetime(2026, 11, 20, 10, 0, tzinfo=UTC))]


GAME_SINKS = ["xp-awards", "level-ups", "achievements", "celebrations", "leaderboard-snapshots"]


def test_gamification_topics_are_stored_once_each(infra: Infra, settings: Settings) -> None:
    """Worker-free: the messages are produced here, as the worker and the leaderboard service would send them."""
    assert set(GAME_SINKS) <= set(SERVICE_NAMES)  # started by ``engage sink all``
    s = settings.model_copy(update={"topic_prefix": f"gs-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    award = XpAward(
        award_id=award_id("g1", "ev-1", "quiz_passed"),
        user_id="g1",
        rule_id="quiz_passed",
        rules_version=3,
        source="ev-1",
        course_id="c-1",
        xp=17,
        base_xp=15,
        multiplier=1.1,
        total_xp=117,
        local_day=date(2026, 11, 21),  # the student's zone is ahead of UTC
        event_time=when,
    )
    lesson = award.model_copy(
        update={"award_id": award_id("g1", "ev-2", "lesson_completed"), "source": "ev-2",
                "rule_id": "lesson_completed", "xp": 22, "base_xp": 20, "total_xp": 139}
    )  # fmt: skip
    # The worker sends a student's awards from one events message as one batch; the sink stores a row for each.
    awards = XpAwardBatch(user_id="g1", rules_version=3, awards=[award_entry(award), award_entry(lesson)])
    assert awards.expand() == [award, lesson]
    up = LevelUp(level_up_id=level_up_id("g1", 2), user_id="g1", level=2, total_xp=117, event_time=when)
    live = AchievementUnlocked(
        unlock_id=unlock_id("g1", "first-lesson"),
        user_id="g1",
        achievement_id="first-lesson",
        name="First steps",
        description="Completed your first lesson",
        rules_version=3,
        event_time=when,
        first_seen=when - timedelta(days=2),
    )
    backfilled = live.model_copy(
        update={"unlock_id": unlock_id("g2", "lessons.10"), "user_id": "g2", "achievement_id": "lessons.10",
                "first_seen": None, "backfilled": True}
    )  # fmt: skip
    cheer = Celebration(
        celebration_id=f"level_up:{up.level_up_id}",
        user_id="g1",
        kind=CelebrationKind.level_up,
        source_id=up.level_up_id,
        title="Level 2!",
        body="You reached level 2 with 117 XP.",
        event_time=when,
    )
    board_rows = [
        LeaderboardRow(
            snapshot_id=f"global:2026-W47:{when.isoformat()}:{rank}",
            board="global",
            period="2026-W47",
            taken_at=when,
            rank=rank,
            user_id=user,
            xp=xp,
        )
        for rank, user, xp in ((1, "g1", 117), (2, "g2", 90))
    ]
    xp = BoardXp(total=117, day=date(2026, 11, 20), day_xp=17, week="2026-W47", week_xp=117)
    standing = Standing(user_id="g1", level=2, global_xp=xp, seq=1)
    sent: list[tuple[str, str, str]] = [
        (topics.xp_awards.name, "g1", awards.model_dump_json()),
        (topics.level_ups.name, "g1", up.model_dump_json()),
        (topics.achievements.name, "g1", live.model_dump_json()),
        (topics.achievements.name, "g2", backfilled.model_dump_json()),
        (topics.celebrations.name, "g1", cheer.model_dump_json()),
        *((topics.leaderboard_snapshots.name, "global", r.model_dump_json()) for r in board_rows),
    ]
    with EventProducer(s.kafka, topics) as producer:
        for _ in range(2):  # everything twice: a re-delivery must not show up as a second row
            for topic, key, value in sent:
                producer.send_encoded(key.encode(), value.encode(), topic=topic)
        producer.send_encoded(b"g1", standing.model_dump_json().encode(), topic=topics.standings.name)
        producer.send_encoded(b"g1", b'{"award_id": ', topic=topics.xp_awards.name)  # cut short
        producer.send_encoded(b"g1", b'{"user_id": "g1", "rules_version": 3, "awards": [["x", "ev-9"]]}',
                              topic=topics.xp_awards.name)  # an award row with two of its nine fields # fmt: skip
    expected_lag = {"xp-awards": 4, "level-ups": 2, "achievements": 4, "celebrations": 2, "leaderboard-snapshots": 4}
    assert sink_lag(s, GAME_SINKS) == expected_lag
    stats = run_sinks(s, GAME_SINKS, idle_exit=2.0)
    assert stats["xp_awards"].dead_letters == 2
    assert {name: st.rows_written for name, st in stats.items()} == {
        "xp_awards": 4,
        "level_ups": 2,
        "achievements_unlocked": 4,
        "celebrations": 2,
        "leaderboard_snapshots": 4,
    }
    assert sink_lag(s, GAME_SINKS) == dict.fromkeys(GAME_SINKS, 0)

    client = connect(s)
    db = s.clickhouse_database
    assert client.execute(
        f"SELECT award_id, course_id, xp, base_xp, multiplier, total_xp, local_day, event_time "
        f"FROM {db}.xp_awards FINAL ORDER BY award_id"
    ) == [
        ("g1:ev-1:quiz_passed", "c-1", 17, 15, 1.1, 117, date(2026, 11, 21), when),
        ("g1:ev-2:lesson_completed", "c-1", 22, 20, 1.1, 139, date(2026, 11, 21), when),
    ]
    assert client.execute(f"SELECT level_up_id, level, total_xp FROM {db}.level_ups FINAL") == [("g1:level:2", 2, 117)]
    assert client.execute(
        f"SELECT unlock_id, achievement_id, name, toUInt32(first_seen), backfilled "
        f"FROM {db}.achievements_unlocked FINAL ORDER BY unlock_id"
    ) == [
        ("g1:first-lesson", "first-lesson", "First steps", int((when - timedelta(days=2)).timestamp()), 0),
        ("g2:lessons.10", "lessons.10", "First steps", 0, 1),  # first_seen unknown: 0
    ]
    assert client.execute(f"SELECT celebration_id, kind, title FROM {db}.celebrations FINAL") == [
        ("level_up:g1:level:2", "level_up", "Level 2!")
    ]
    assert client.execute(
        f"SELECT board, period, rank, user_id, xp FROM {db}.leaderboard_snapshots FINAL ORDER BY rank"
    ) == [("global", "2026-W47", 1, "g1", 117), ("global", "2026-W47", 2, "g2", 90)]


def test_exposures_are_stored_once_and_one_failing_its_contract_is_dead_lettered(
    infra: Infra, settings: Settings
) -> None:
    from schemas.experiments import Exposure, Surface, exposure_id
    from tests.integration.helpers import read_topic

    assert "exposures" in SERVICE_NAMES
    s = settings.model_copy(update={"topic_prefix": f"ex-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    when = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    first = Exposure(
        exposure_id=exposure_id("copy", "e1", "control"),
        experiment="copy",
        variant="control",
        user_id="e1",
        at=when,
        surface=Surface.template,
        intervention_id="i-1",
        context={"tier": "low", "channel": "email"},
    )
    second = first.model_copy(update={"at": when + timedelta(days=1), "intervention_id": "i-2"})
    wrong_id = first.model_dump(mode="json") | {"exposure_id": "copy:e1:treatment"}  # names another variant
    with EventProducer(s.kafka, topics) as producer:
        for _ in range(2):  # a re-delivery must not show up as a second row
            for message in (first, second):
                producer.send_encoded(b"e1", message.model_dump_json().encode(), topic=topics.exposures.name)
        producer.send_encoded(b"e1", json.dumps(wrong_id).encode(), topic=topics.exposures.name)
    stats = run_sinks(s, ["exposures"], idle_exit=2.0)
    assert stats["experiment_exposures"].dead_letters == 1
    assert sink_lag(s, ["exposures"]) == {"exposures": 0}
    letters = read_topic(s.kafka, topics.dead_letters.name, expect=1, timeout=10)
    reason = letters[0]["reason"]
    assert reason.startswith("not a valid Exposure: ") and "exposure_id must be 'copy:e1:control'" in reason
    assert "copy:e1:treatment" in letters[0]["raw"]
    client = connect(s)
    rows = client.execute(
        f"SELECT exposure_id, variant, surface, intervention_id, context, at "
        f"FROM {s.clickhouse_database}.experiment_exposures FINAL ORDER BY at"
    )
    assert [r[:4] for r in rows] == [
        ("copy:e1:control", "control", "template", "i-1"),
        ("copy:e1:control", "control", "template", "i-2"),  # a second message: kept, so its opens count
    ]
    assert json.loads(rows[0][4]) == {"tier": "low", "channel": "email"} and rows[0][5] == when


def test_bandit_outcomes_are_stored_once_and_one_failing_its_contract_is_dead_lettered(
    infra: Infra, settings: Settings
) -> None:
    from schemas.experiments import ArmOutcome
    from tests.integration.helpers import read_topic

    assert "bandit-outcomes" in SERVICE_NAMES
    s = settings.model_copy(update={"topic_prefix": f"bo-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    sent = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    back = ArmOutcome(
        intervention_id="b1:bandit:1",
        user_id="b1",
        arm=InterventionType.streak_warning,
        tier="high",
        profile="video",
        success=True,
        sent_at=sent,
        at=sent + timedelta(days=2),
    )
    silent = ArmOutcome(
        intervention_id="b2:bandit:1",
        user_id="b2",
        arm=InterventionType.gentle_reminder,
        tier="medium",
        success=False,
        sent_at=sent,
        at=sent + timedelta(days=7),
    )
    no_such_arm = back.model_dump(mode="json") | {"intervention_id": "b3:bandit:1", "arm": "carrier_pigeon"}
    with EventProducer(s.kafka, topics) as producer:
        for _ in range(2):  # the worker re-sends after a crash: still one row each
            for message in (back, silent):
                producer.send_encoded(
                    message.user_id.encode(), message.model_dump_json().encode(), topic=topics.bandit_outcomes.name
                )
        producer.send_encoded(b"b3", json.dumps(no_such_arm).encode(), topic=topics.bandit_outcomes.name)
    stats = run_sinks(s, ["bandit-outcomes"], idle_exit=2.0)
    assert stats["bandit_outcomes"].dead_letters == 1
    assert sink_lag(s, ["bandit-outcomes"]) == {"bandit-outcomes": 0}
    letters = read_topic(s.kafka, topics.dead_letters.name, expect=1, timeout=10)
    assert letters[0]["reason"].startswith("not a valid ArmOutcome: arm: ")
    assert "carrier_pigeon" in letters[0]["raw"]
    rows = connect(s).execute(
        f"SELECT intervention_id, user_id, arm, tier, profile, success, sent_at, at "
        f"FROM {s.clickhouse_database}.bandit_outcomes FINAL WHERE user_id IN ('b1', 'b2', 'b3') ORDER BY user_id"
    )
    assert rows == [
        ("b1:bandit:1", "b1", "streak_warning", "high", "video", 1, sent, sent + timedelta(days=2)),
        ("b2:bandit:1", "b2", "gentle_reminder", "medium", "", 0, sent, sent + timedelta(days=7)),
    ]


def test_league_results_are_stored_once_a_tombstone_stores_nothing_and_a_wrong_tier_is_dead_lettered(
    infra: Infra, settings: Settings
) -> None:
    from schemas.gamification import LeagueOutcome, LeagueResult, LeagueTier, league_result_id
    from tests.integration.helpers import read_topic

    assert "league-results" in SERVICE_NAMES  # started by ``engage sink all``
    s = settings.model_copy(update={"topic_prefix": f"lr-{uuid.uuid4().hex[:8]}", "sink_batch_seconds": 0.2})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    up = LeagueResult(
        league_result_id=league_result_id("l1", "2026-W48"),
        user_id="l1",
        week="2026-W48",
        week_start=date(2026, 11, 23),
        tier=LeagueTier.silver,
        group_id="2026-W48:silver:2",
        group_size=30,
        rank=1,
        week_xp=340,
        outcome=LeagueOutcome.promoted,
        next_tier=LeagueTier.gold,
    )
    down = up.model_copy(
        update={"league_result_id": league_result_id("l2", "2026-W48"), "user_id": "l2", "rank": 30, "week_xp": 5,
                "outcome": LeagueOutcome.demoted, "next_tier": LeagueTier.bronze}
    )  # fmt: skip
    no_such_tier = up.model_dump(mode="json") | {"league_result_id": "l3:league:2026-W48", "user_id": "l3",
                                                 "tier": "wood"}  # fmt: skip
    topic = topics.league_results.name
    with EventProducer(s.kafka, topics) as producer:
        for _ in range(2):  # another service process (or a retry) publishes the same results: one row each
            for result in (up, down):
                producer.send_encoded(result.user_id.encode(), result.model_dump_json().encode(), topic=topic)
        producer.send_encoded(b"l3", json.dumps(no_such_tier).encode(), topic=topic)
        producer.send_encoded(b"l9", None, topic=topic)  # an erased student's tombstone
    stats = run_sinks(s, ["league-results"], idle_exit=2.0)
    assert stats["league_results"].dead_letters == 1 and stats["league_results"].rows_written == 4
    assert sink_lag(s, ["league-results"]) == {"league-results": 0}
    letters = read_topic(s.kafka, topics.dead_letters.name, expect=1, timeout=10)
    assert letters[0]["reason"].startswith("not a valid LeagueResult: tier: ")
    rows = connect(s).execute(
        f"SELECT league_result_id, week_start, tier, group_id, rank, week_xp, outcome, next_tier "
        f"FROM {s.clickhouse_database}.league_results FINAL ORDER BY user_id"
    )
    assert rows == [
        ("l1:league:2026-W48", date(2026, 11, 23), "silver", "2026-W48:silver:2", 1, 340, "promoted", "gold"),
        ("l2:league:2026-W48", date(2026, 11, 23), "silver", "2026-W48:silver:2", 30, 5, "demoted", "bronze"),
    ]
