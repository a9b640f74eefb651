"""The engagement API's ranks: a real worker asks a real leaderboard service for the student's positions, and
answers without them (saying so) when the service is away."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from leaderboards.runner import running
from processors.gamification.weeks import iso_week
from schemas.topics import catalogue
from tests.integration.test_worker import _send
from tests.integration.test_worker_gamification import T0, _event
from tests.integration.workers import WorkerProcess, wait_for, workers

pytestmark = pytest.mark.integration


def _ranks(worker: WorkerProcess, user: str) -> dict[str, Any] | None:
    resp = worker.engagement(user)
    if resp.status_code != 200 or not resp.json().get("gamification"):
        return None
    return resp.json()["gamification"].get("leaderboards")


def _all_time(ranks: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ranks or not ranks["available"]:
        return None
    return next((b for b in ranks["boards"] if (b["board"], b["period"]) == ("global", "all")), None)


def test_the_engagement_answer_carries_the_students_ranks(infra: Infra, settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(
        update={
            "topic_prefix": f"ranks-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "broker_session_timeout_seconds": 6.0,
            "leaderboard_port": free_port(),
            "leaderboard_snapshot_seconds": 0.0,
            # No week closes during the test. In the first hours of a Monday (UTC) T0 lies in last week, and the
            # week's close would promote ann out of bronze or not depending on whether it landed before or after
            # her standing (a clean-clone run at 01:00 on a Monday found her in silver).
            "league_close_grace_seconds": 7 * 86_400.0,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    lessons = {"rank-ann": 3, "rank-bob": 1, "rank-cid": 2}  # first activity 10 + 20 a lesson: 70, 30, 50 XP
    events = [_event(u, "login", 0) for u in lessons]
    events += [_event(u, "lesson_completed", m + 1) for u, n in lessons.items() for m in range(n)]
    with workers(s, [free_port()], tmp_path) as (worker,):
        with running(s):
            _send(s, events)

            def placed(user: str, rank: int, xp: int) -> bool:
                board = _all_time(_ranks(worker, user))
                return board is not None and (board["rank"], board["xp"], board["students"]) == (rank, xp, 3)

            assert wait_for(lambda: placed("rank-ann", 1, 70), timeout=90), _ranks(worker, "rank-ann")
            assert wait_for(lambda: placed("rank-cid", 2, 50), timeout=30), _ranks(worker, "rank-cid")
            assert wait_for(lambda: placed("rank-bob", 3, 30), timeout=30), _ranks(worker, "rank-bob")
            ranks = _ranks(worker, "rank-ann")
            assert ranks is not None
            assert {b["board"] for b in ranks["boards"]} == {"global", "course:course-1"}
            # The weekly league, from the same service: ann leads this week's bronze group of the three.
            league = worker.engagement("rank-ann").json()["gamification"]["league"]
            assert league["available"] is True and league["tier"] == "bronze", league
            if iso_week(T0.date()) == iso_week(datetime.now(UTC).date()):  # not a run in Monday's first hours
                assert (league["placed"], league["rank"], league["group_size"], league["week_xp"]) == (True, 1, 3, 70)
                assert league["zone"] == "promotion" and "standings" not in league
        # The service is gone: the answer still comes, without ranks, and says why.
        resp = worker.engagement("rank-ann")
        assert resp.status_code == 200
        game = resp.json()["gamification"]
        assert game["xp"] == 70
        assert game["leaderboards"]["available"] is False and "unreachable" in game["leaderboards"]["detail"]
        assert game["league"]["available"] is False and game["league"]["detail"]
