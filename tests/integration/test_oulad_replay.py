"""Real OU students (a 7-enrolment OULAD sample) through the live pipeline: producer, Kafka, worker, ClickHouse."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rich.console import Console

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from engage.oulad.dataset import OuladDataset
from engage.oulad.replay import replay
from kafka_io.admin import ensure_topics
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.positions import SINK_NAMES
from sinks.service import run_sinks
from tests.integration.workers import wait_for, workers

pytestmark = pytest.mark.integration

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "oulad_sample"


def test_oulad_sample_replayed_in_event_time_reaches_signals_and_clickhouse(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "topic_prefix": f"oulad-{tag}",
            "clickhouse_database": f"oulad_{tag}",
            "run_dir": tmp_path,
            "worker_clock": "event",
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    data = OuladDataset.load(SAMPLE)
    result = replay(data, s, Console(quiet=True))
    assert result.failed == 0 and result.events_sent == result.report.events == 2_118
    withdrawn = data.enrolments[("BBB-2013B", 52899)].user_id
    with workers(s, [free_port()], tmp_path) as (worker,):

        def folded() -> bool:
            body = worker.engagement(withdrawn)
            return body.status_code == 200 and body.json()["signals"]["courses_unenrolled"] == 1

        assert wait_for(folded, timeout=90), "the worker never folded the unregistration"
        # the student's last click in BBB 2013B was long before the replay's end (June 2014): silent for months,
        # once the event clock reaches the end (partitions idle for event_clock_idle_seconds stop holding it back)
        assert wait_for(
            lambda: worker.engagement(withdrawn).json()["signals"]["days_since_last_activity"] > 30, timeout=30
        )
        # the course calendar reached the worker: the retake (BBB 2013J, passed) is deep into the course and
        # had every assessment with a date fall due
        retake_signals = worker.engagement(data.enrolments[("BBB-2013J", 52899)].user_id).json()["signals"]
        assert retake_signals["course_day"] > 200 and retake_signals["assessments_due"] >= 5
    run_sinks(s, list(SINK_NAMES), idle_exit=3.0)
    client = connect(s)
    db = s.clickhouse_database
    assert client.execute(f"SELECT count() FROM {db}.behavior_events FINAL")[0][0] == 2_118
    quizzes = client.execute(f"SELECT count() FROM {db}.behavior_events FINAL WHERE event_type = 'quiz_submitted'")
    assert quizzes[0][0] == result.report.by_type["quiz_submitted"]
    users = client.execute(f"SELECT uniqExact(user_id) FROM {db}.user_daily_signals")[0][0]
    assert users == 7  # every enrolment has point-in-time feature rows
    retake = data.enrolments[("BBB-2013J", 52899)].user_id
    assert client.execute(f"SELECT count() FROM {db}.risk_updates WHERE user_id = '{retake}'")[0][0] > 0
