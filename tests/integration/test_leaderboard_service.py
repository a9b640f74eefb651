"""The leaderboard service on real Kafka: standings on the compacted topic become boards served over HTTP (ranks,
ties, neighbours, 404/400/401 answers), new standings and erasures (tombstones) are applied while it serves, a
message that is not a standing is dead-lettered, snapshots reach their topic, and a restarted service rebuilds
the same boards from the topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from kafka_io.client import kafka_conf
from leaderboards.runner import running
from leaderboards.service import Service
from processors.gamification.weeks import iso_week
from schemas.gamification import BoardXp, Standing
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end

pytestmark = pytest.mark.integration

SERVER_KEY = {"Authorization": "Bearer sk_demo_backend"}
NOW = datetime(2026, 12, 5, 15, 30, tzinfo=UTC)
TODAY = NOW.date().isoformat()
WEEK = iso_week(NOW.date())


def clock() -> datetime:
    return NOW


def board_xp(total: int, day_xp: int, week_xp: int, day: date | None = None) -> BoardXp:
    day = day or NOW.date()
    return BoardXp(total=total, day=day, day_xp=day_xp, week=iso_week(day), week_xp=week_xp)


def standing(user: str, seq: int, total: int, day_xp: int, **courses: int) -> Standing:
    return Standing(
        user_id=user,
        level=1 + total // 100,
        global_xp=board_xp(total, day_xp, day_xp),
        courses={c: board_xp(xp, min(xp, day_xp), min(xp, day_xp)) for c, xp in courses.items()},
        seq=seq,
    )


def produce(s: Settings, *messages: Standing | tuple[bytes, bytes | None]) -> None:
    producer = Producer(kafka_conf(s.kafka, {"partitioner": "murmur2_random"}))
    topic = catalogue(s.topic_prefix, s.event_partitions).standings.name
    for m in messages:
        key, value = m if isinstance(m, tuple) else (m.user_id.encode(), m.model_dump_json().encode())
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def get(service: Service, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{service.url}{path}", headers=SERVER_KEY if headers is None else headers, timeout=30)


def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def every_board(service: Service) -> dict[str, Any]:
    """The whole of each board the test uses, as the API gives it."""
    paths = [f"/v1/leaderboards/{b}/{p}?limit=1000" for b in ("global", "course:algebra") for p in ("all", "today",
             "this-week", TODAY, WEEK)]  # fmt: skip
    return {path: get(service, path).json() for path in paths}


@pytest.fixture
def lb_settings(settings: Settings, infra: Infra) -> Settings:
    s = settings.model_copy(
        update={
            "topic_prefix": f"lb-{uuid.uuid4().hex[:8]}",
            "leaderboard_port": free_port(),
            "leaderboard_snapshot_seconds": 3_600.0,  # one snapshot when ready, the next an hour later
            "leaderboard_snapshot_top": 3,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def test_serves_ranks_from_the_topic_keeps_up_and_rebuilds_the_same_boards(lb_settings: Settings) -> None:
    s = lb_settings
    topics = catalogue(s.topic_prefix, s.event_partitions)
    produce(
        s,
        standing("ann", 1, 100, 10, algebra=60),
        standing("ann", 2, 300, 40, algebra=200),  # replaces seq 1
        standing("bob", 7, 250, 40, algebra=250),
        standing("cat", 1, 250, 5),  # ties bob on all-time: rank 2 both, listed bob, cat
        standing("dan", 3, 90, 90, algebra=90),
        standing("eve", 1, 10, 0),  # no XP today: on all-time only
        standing("ann", 1, 999, 999),  # older seq than the one held: changes nothing
        (b"junk", b"{not a standing"),
    )
    with running(s, clock=clock) as service:
        top = get(service, "/v1/leaderboards/global/all").json()
        assert top["students"] == 5
        assert [(r["rank"], r["user_id"], r["xp"]) for r in top["rows"]] == [
            (1, "ann", 300), (2, "bob", 250), (2, "cat", 250), (4, "dan", 90), (5, "eve", 10)]  # fmt: skip
        today = get(service, "/v1/leaderboards/global/today?limit=2").json()
        assert today["period"] == TODAY and [(r["rank"], r["user_id"]) for r in today["rows"]] == [
            (1, "dan"),
            (2, "ann"),
        ]
        assert get(service, f"/v1/leaderboards/global/{WEEK}").json()["students"] == 4

        cat = get(service, "/v1/leaderboards/global/all/users/cat?neighbours=1").json()
        assert (cat["rank"], cat["xp"], cat["students"]) == (2, 250, 5)
        assert [r["user_id"] for r in cat["above"]] == ["bob"] and [r["user_id"] for r in cat["below"]] == ["dan"]
        course = get(service, "/v1/leaderboards/course:algebra/this-week/users/ann?neighbours=5").json()
        assert course["rank"] == 2 and [(r["rank"], r["user_id"]) for r in course["above"]] == [(1, "dan")]
        assert [(r["rank"], r["user_id"]) for r in course["below"]] == [(2, "bob")]  # 40 XP each: ann, then bob

        missing = get(service, "/v1/leaderboards/global/all/users/zoe")
        assert missing.status_code == 404 and "no standing for student 'zoe'" in missing.json()["detail"]
        off_board = get(service, "/v1/leaderboards/global/today/users/eve")
        assert off_board.status_code == 404 and "no XP on global" in off_board.json()["detail"]
        unknown = get(service, "/v1/leaderboards/course:history/all")
        assert unknown.status_code == 404 and "course:history" in unknown.json()["detail"]
        old = get(service, "/v1/leaderboards/global/2026-11-01")
        assert old.status_code == 404 and "not kept" in old.json()["detail"]
        assert get(service, "/v1/leaderboards/global/month").status_code == 400
        assert get(service, "/v1/leaderboards/global/all?limit=100000").status_code == 400
        assert get(service, "/v1/leaderboards/global/all", headers={}).status_code == 401
        write_key = {"Authorization": "Bearer wk_demo_web"}
        assert get(service, "/v1/leaderboards/global/all", headers=write_key).status_code == 403

        # While serving: a newer standing moves eve to the top; a tombstone (erasure) removes dan everywhere.
        produce(s, standing("eve", 2, 500, 50, algebra=20), (b"dan", None))

        def leader_is_eve() -> bool:
            rows = get(service, "/v1/leaderboards/global/all").json()["rows"]
            return [r["user_id"] for r in rows] == ["eve", "ann", "bob", "cat"]

        until("eve's new standing and dan's erasure", leader_is_eve)
        algebra = get(service, "/v1/leaderboards/course:algebra/all").json()["rows"]
        assert [r["user_id"] for r in algebra] == ["bob", "ann", "eve"]

        def dead_letters() -> list[dict[str, Any]]:
            return [d for d in read_to_end(s.kafka, topics.dead_letters.name) if d["source"] == "leaderboards"]

        letters = until("the dead letter", dead_letters)
        assert len(letters) == 1 and letters[0]["reason"].startswith("not a standing")
        assert letters[0]["original_topic"] == topics.standings.name and letters[0]["raw"] == "{not a standing"

        snapshot = until("the first snapshot", lambda: read_to_end(s.kafka, topics.leaderboard_snapshots.name))
        boards = {(r["board"], r["period"]) for r in snapshot}
        assert boards == {(b, p) for b in ("global", "course:algebra") for p in ("all", TODAY, WEEK)}
        first = [r for r in snapshot if (r["board"], r["period"]) == ("global", "all")]
        assert [(r["rank"], r["user_id"]) for r in first] == [(1, "ann"), (2, "bob"), (2, "cat")]
        assert len({r["snapshot_id"] for r in snapshot}) == len(snapshot)  # tied ranks, distinct ids

        metrics = get(service, "/metrics").text
        assert 'engage_leaderboard_standings_total{outcome="stale"} 1.0' in metrics
        assert 'engage_leaderboard_standings_total{outcome="invalid"} 1.0' in metrics
        assert 'engage_leaderboard_students{board="global",period="all"} 4.0' in metrics
        before = every_board(service)

    with running(s, clock=clock) as again:
        assert every_board(again) == before
