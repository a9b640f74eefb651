"""`engage gamification backfill` on the real servers: events stored through the sink's landing table, unlocks
sent to Kafka and stored by the achievements sink, run again and again without a second row."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from config.settings import Settings
from deploy.infra import Infra
from engage.gamification_backfill import replay_unlocks
from engage.gamification_cli import run_backfill
from kafka_io.admin import ensure_topics
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.tables import ACHIEVEMENTS_UNLOCKED
from sinks.positions import sink_lag
from sinks.service import run_sinks
from tests.analytics.conftest import Warehouse
from tests.gamification_history import DUPLICATED, EVENTS, EXPECTED, rules

pytestmark = pytest.mark.integration


def test_backfill_sends_each_unlock_once_and_skips_what_is_stored(infra: Infra, settings: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={"topic_prefix": f"bf-{tag}", "clickhouse_database": f"bf_{tag}", "sink_batch_seconds": 0.2}
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    db = s.clickhouse_database
    migrate(connect(s), db)
    warehouse = Warehouse(connect(s, db), db, "server-18.16")
    warehouse.events(*EVENTS)
    warehouse.events(*(e for e in EVENTS if e["event_id"] == DUPLICATED))  # a re-delivery, stored again
    # s1's first lesson was unlocked live by a worker: the backfill must leave that row as it is
    s1 = [e for e in EVENTS if e["user_id"] == "s1"]
    live = next(u for u in replay_unlocks("s1", s1, rules()) if u.achievement_id == "first-lesson")
    live = live.model_copy(update={"backfilled": False, "event_time": datetime.fromisoformat(s1[1]["event_time"])})
    warehouse.contract(ACHIEVEMENTS_UNLOCKED, live)
    found = sum(len(v) for v in EXPECTED.values())

    dry = run_backfill(s, rules(), dry_run=True, page_students=2)
    assert (dry.students, dry.sent) == (5, found - 1)
    assert sink_lag(s, ["achievements"]) == {"achievements": 0}  # nothing sent

    pages: list[int] = []
    first = run_backfill(s, rules(), page_students=2, progress=lambda summary: pages.append(summary.students))
    assert pages == [2, 4, 5]  # three pages of at most two students
    # the re-delivered event is read twice until ClickHouse merges it away; the replay counts it once either way
    assert first.students == 5 and len(EVENTS) <= first.events <= len(EVENTS) + 1
    assert sum(first.found.values()) == found and first.found["first-lesson"] == 3 and first.found["streak"] == 2
    assert first.already_stored == {"first-lesson": 1} and first.sent == found - 1
    again = run_backfill(s, rules(), page_students=2)  # before the sink stored the first run's: all sent again
    assert again.sent == found - 1
    assert sink_lag(s, ["achievements"]) == {"achievements": 2 * (found - 1)}

    run_sinks(s, ["achievements"], idle_exit=2.0)
    client = connect(s)
    stored = client.execute(
        f"SELECT user_id, achievement_id, backfilled, rules_version, toUInt32(event_time), toUInt32(first_seen) "
        f"FROM {db}.achievements_unlocked FINAL ORDER BY user_id, achievement_id"
    )
    assert [(u, a) for u, a, *_ in stored] == sorted((u, a) for u, ids in EXPECTED.items() for a in ids)
    by_key = {(u, a): rest for u, a, *rest in stored}
    assert by_key["s1", "first-lesson"][:1] == [0]  # the live row, untouched
    assert all(flag == 1 for (u, a), (flag, *_) in by_key.items() if (u, a) != ("s1", "first-lesson"))
    assert by_key["s1", "first-lesson"][2] == int(live.event_time.timestamp())
    streak = by_key["s1", "streak"]  # completed by s1's third event; first seen at the first
    assert streak[1:] == [7, int(datetime.fromisoformat(s1[2]["event_time"]).timestamp()),
                          int(datetime.fromisoformat(s1[0]["event_time"]).timestamp())]  # fmt: skip

    third = run_backfill(s, rules(), page_students=2)  # everything stored now: nothing to send
    assert third.sent == 0 and sum(third.already_stored.values()) == found
    assert sink_lag(s, ["achievements"]) == {"achievements": 0}
