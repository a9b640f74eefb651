"""Personalisation profiles on real Kafka and ClickHouse: the worker serves each student's profile, sends one per
student and local day, and the profiles sink stores them in ``user_profiles_daily``, one row per student and day."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from schemas.profile import Profile
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.service import run_sinks
from tests.integration.helpers import read_to_end
from tests.integration.test_worker import _send, _settings, _simulated, _totals_match, _unique_counts
from tests.integration.workers import SERVER_KEY, wait_for, workers

pytestmark = pytest.mark.integration


def test_profiles_are_served_sent_daily_and_stored_once_per_student_and_day(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    s = _settings(settings, tmp_path)
    events = _simulated(students=25, days=6, seed=23)
    _send(s, events)
    expected = _unique_counts(events)
    viewer = next(e["user_id"] for e in events if e["event_type"] == "content_viewed")
    with workers(s, [free_port()], tmp_path) as (worker,):
        assert wait_for(lambda: _totals_match(worker, expected), timeout=90), "signals never matched the sent events"
        resp = httpx.get(f"{worker.url}/v1/users/{viewer}/profile", headers=SERVER_KEY, timeout=10)
        assert resp.status_code == 200
        live = Profile.model_validate(resp.json())
        assert live.user_id == viewer and live.format_views > 0 and live.preferred_format is not None
        assert live.study_time.evidence > 0 and live.study_time.best_hours
        unknown = httpx.get(f"{worker.url}/v1/users/nobody-here/profile", headers=SERVER_KEY, timeout=10)
        assert unknown.status_code == 404
        assert httpx.get(f"{worker.url}/v1/users/{viewer}/profile", timeout=10).status_code == 401

    # The worker stopped cleanly: the topic holds everything it sent.
    topics = catalogue(s.topic_prefix, s.event_partitions)
    sent = [Profile.model_validate(p) for p in read_to_end(s.kafka, topics.profiles.name)]
    assert {p.user_id for p in sent} == set(expected)  # every scored student got a day's profile
    per_day = Counter((p.user_id, p.day) for p in sent)
    assert max(per_day.values()) == 1, per_day.most_common(3)  # one per student and local day

    stats = run_sinks(s, ["profiles"], idle_exit=2.0)
    assert stats["user_profiles_daily"].rows_written == len(sent)
    db = s.clickhouse_database
    rows = connect(s).execute(
        f"SELECT user_id, day, preferred_format, format_views FROM {db}.user_profiles_daily FINAL "
        f"WHERE user_id = %(u)s ORDER BY day",
        {"u": viewer},
    )
    mine = sorted((p for p in sent if p.user_id == viewer), key=lambda p: p.day)
    assert rows == [(p.user_id, p.day, p.preferred_format.value if p.preferred_format else "", p.format_views)
                    for p in mine]  # fmt: skip
