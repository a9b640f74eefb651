"""Gamification in a real worker: XP, level-ups, unlocks, celebrations and standings on their topics, the API's
gamification block agreeing with them, and the rules file replaced (and broken) while the worker runs."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from processors.gamification.rules import DEFAULT_RULES_PATH
from schemas.gamification import AchievementUnlocked, Celebration, LevelUp, Standing, XpAward, XpAwardBatch
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end
from tests.integration.test_worker import _send
from tests.integration.workers import WorkerProcess, wait_for, workers

pytestmark = pytest.mark.integration

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)  # one UTC day for all


def _event(user: str, kind: str, minute: int, **payload: Any) -> dict[str, Any]:
    payloads: dict[str, dict[str, Any]] = {
        "login": {"method": "password"},
        "lesson_completed": {"lesson_id": f"l{minute}", "duration_seconds": 300.0},
        "quiz_submitted": {"quiz_id": f"q{minute}", "score": 95.0, "max_score": 100.0},
    }
    e = {
        "event_id": f"{user}-{kind}-{minute}-{uuid.uuid4().hex[:6]}",
        "user_id": user,
        "event_type": kind,
        "event_time": (T0 + timedelta(minutes=minute)).isoformat(),
        "platform": "web",
        "payload": {**payloads[kind], **payload},
    }
    if kind != "login":
        e["course_id"] = "course-1"
    return e


def _write_rules(path: Path, doc: dict[str, Any]) -> None:
    """Replace the file in one step (a reader never sees half of it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def _metric(worker: WorkerProcess, pattern: str) -> float | None:
    found = re.search(rf"^{pattern} (\S+)$", httpx.get(f"{worker.url}/metrics", timeout=10).text, re.M)
    return float(found.group(1)) if found else None


def _game(worker: WorkerProcess, user: str) -> dict[str, Any] | None:
    resp = worker.engagement(user)
    return resp.json()["gamification"] if resp.status_code == 200 else None


class Topics:
    """The gamification topics, read to their end offsets, for one student."""

    def __init__(self, s: Settings) -> None:
        self.s, self.t = s, catalogue(s.topic_prefix, s.event_partitions)

    def read(self, name: str, user: str, model: Callable[..., Any]) -> list[Any]:
        rows = read_to_end(self.s.kafka, getattr(self.t, name).name)
        return [model.model_validate(r) for r in rows if r["user_id"] == user]  # type: ignore[attr-defined]

    def awards(self, user: str) -> list[XpAward]:
        """The student's awards, from their ``XpAwardBatch`` messages (one per events message that earned XP)."""
        batches = self.read("xp_awards", user, XpAwardBatch)
        return [award for batch in batches for award in batch.expand()]


def test_worker_awards_xp_and_hot_reloads_rules(infra: Infra, settings: Settings, tmp_path: Path) -> None:
    rules_path = tmp_path / "gamification.json"
    v1 = json.loads(DEFAULT_RULES_PATH.read_text())
    assert v1["version"] == 1
    _write_rules(rules_path, v1)
    s = settings.model_copy(
        update={
            "topic_prefix": f"game-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
            "gamification": True,
            "gamification_rules_path": rules_path,
            "gamification_check_seconds": 0.3,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    topics = Topics(s)
    user, other = "gamer-1", "gamer-2"
    # Default rules, one local (UTC) day: first activity 10, four lessons 4 x 20, a 95 % quiz passed 15 + aced 10.
    first = [_event(user, "login", 0), *(_event(user, "lesson_completed", m) for m in (1, 2, 3, 4)),
             _event(user, "quiz_submitted", 5), _event(other, "lesson_completed", 1)]  # fmt: skip

    with workers(s, [free_port()], tmp_path) as (worker,):
        _send(s, first[:3])
        _send(s, first[3:])  # two messages: standings from more than one gather
        _send(s, first[1:3])  # a client retry: the same event ids earn nothing

        def settled(u: str, xp: int) -> bool:
            game = _game(worker, u)
            return game is not None and game["xp"] == xp and sum(a.xp for a in topics.awards(u)) == xp

        assert wait_for(lambda: settled(user, 115), timeout=90), (_game(worker, user), topics.awards(user))
        assert wait_for(lambda: settled(other, 30), timeout=30)  # first activity 10 + a lesson 20

        awards = topics.awards(user)
        assert sorted(a.rule_id for a in awards) == sorted(
            ["first_activity_of_day"] + ["lesson_completed"] * 4 + ["quiz_passed", "quiz_aced"]
        )
        assert len({a.award_id for a in awards}) == len(awards) and {a.rules_version for a in awards} == {1}
        assert max(a.total_xp for a in awards) == 115

        game = _game(worker, user)
        assert game is not None
        assert (game["xp"], game["level"], game["next_level_xp"]) == (115, 2, 283)
        assert game["progress_to_next_level_pct"] == round(100 * 15 / 183, 1)

        assert wait_for(lambda: len(topics.read("standings", user, Standing)) >= 1, timeout=30)
        standings = topics.read("standings", user, Standing)
        seqs = [st.seq for st in standings]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"standing seq must increase: {seqs}"
        assert standings[-1].global_xp.total == 115 and standings[-1].level == 2
        assert standings[-1].courses["course-1"].total == 105  # the login has no course
        assert standings[-1].global_xp.day == T0.date()

        ups = topics.read("level_ups", user, LevelUp)
        assert [(u.level_up_id, u.level) for u in ups] == [(f"{user}:level:2", 2)]
        unlocked = topics.read("achievements", user, AchievementUnlocked)
        assert [u.achievement_id for u in unlocked] == ["first-lesson"]
        assert game["achievements_unlocked"] == 1
        assert [a["achievement_id"] for a in game["recent_achievements"]] == ["first-lesson"]
        assert game["recent_achievements"][0]["name"] == unlocked[0].name == "First steps"
        celebrations = topics.read("celebrations", user, Celebration)
        assert sorted(c.celebration_id for c in celebrations) == sorted(
            [f"level_up:{user}:level:2", f"achievement:{user}:first-lesson"]
        )

        # Version 2 while the worker runs: lessons worth 50, and an achievement for two more lessons.
        v2 = json.loads(json.dumps(v1))
        v2["version"] = 2
        next(r for r in v2["xp"] if r["id"] == "lesson_completed")["xp"] = 50
        v2["achievements"].append({"id": "lesson-pair", "kind": "count", "name": "Pair", "description": "Two lessons",
                                   "match": {"event_type": "lesson_completed"}, "tiers": [2]})  # fmt: skip
        _write_rules(rules_path, v2)
        version = "engage_gamification_rules_version"
        assert wait_for(lambda: _metric(worker, version) == 2.0, timeout=30), "rules version 2 never loaded"
        _send(s, [_event(user, "lesson_completed", m) for m in (10, 11)])
        assert wait_for(lambda: settled(user, 215), timeout=60), _game(worker, user)
        new = [a for a in topics.awards(user) if a.rules_version == 2]
        assert [(a.rule_id, a.xp) for a in new] == [("lesson_completed", 50)] * 2
        pair = [u for u in topics.read("achievements", user, AchievementUnlocked) if u.achievement_id == "lesson-pair"]
        assert len(pair) == 1 and pair[0].rules_version == 2 and pair[0].name == "Pair"

        # A broken version 3 is refused; the worker keeps awarding with version 2.
        v3 = json.loads(json.dumps(v2))
        v3["version"] = 3
        next(r for r in v3["xp"] if r["id"] == "lesson_completed")["xp"] = -50
        pid = worker.proc.pid if worker.proc else None
        _write_rules(rules_path, v3)
        refused = 'engage_gamification_rules_reloads_total{outcome="refused"}'
        assert wait_for(lambda: (_metric(worker, refused) or 0) >= 1, timeout=30), "the broken file was not refused"
        assert _metric(worker, version) == 2.0
        log = worker.log.read_text()
        assert "gamification rules refused, still using version 2" in log and "XP cannot be negative" in log
        _send(s, [_event(user, "lesson_completed", 12)])
        assert wait_for(lambda: settled(user, 265), timeout=60), _game(worker, user)
        last = max(topics.awards(user), key=lambda a: a.total_xp)
        assert (last.rules_version, last.xp, last.total_xp) == (2, 50, 265)
        assert worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == pid  # no restart

    # The worker stopped cleanly: each award, unlock and level-up was sent once.
    awards = topics.awards(user)
    assert len(awards) == len({a.award_id for a in awards}) == 10
    unlocks = topics.read("achievements", user, AchievementUnlocked)
    assert len(unlocks) == len({u.unlock_id for u in unlocks})
