"""A promoted model takes over scoring in a running worker, under traffic, without a restart."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics, group_lag
from models.registry import ModelRegistry
from models.training import TrainConfig, train
from schemas.topics import catalogue
from tests.integration.helpers import read_topic
from tests.integration.test_worker import _send, _simulated
from tests.integration.workers import wait_for, workers
from tests.unit.test_model_training import synthetic

pytestmark = pytest.mark.integration


def test_promotion_under_traffic_switches_the_scoring_model(infra: Infra, settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(
        update={
            "topic_prefix": f"hot-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "model_registry_dir": tmp_path / "models",
            "model_check_seconds": 0.5,
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    registry = ModelRegistry(s.model_registry)
    data, _ = synthetic(users=60, days=100)
    train(data, TrainConfig(max_rounds=30, early_stopping_rounds=5), registry, version="hot")
    events = _simulated(students=12, days=6, seed=5)
    half = len(events) // 2
    user = events[0]["user_id"]
    with workers(s, [free_port()], tmp_path) as (worker,):
        _send(s, events[:half])

        def scored_by(version: str) -> bool:
            body = worker.engagement(user).json()
            return bool(body.get("risk")) and body["risk"]["model_version"] == version

        assert wait_for(lambda: scored_by("heuristic-1"), timeout=60)
        pid = worker.proc.pid if worker.proc else None
        registry.promote("hot")
        third = half + (len(events) - half) // 2
        _send(s, events[half:third])  # traffic keeps flowing while the worker picks the new model up

        def serving(version: str) -> bool:
            return f'engage_model_serving{{model_version="{version}"}} 1.0' in httpx.get(f"{worker.url}/metrics").text

        # The worker watches the registry on a timer, not only when it scores: the switch does not wait for an
        # event (scores made in the same check interval as the promotion may still come from the old model, so
        # whether the events above were scored by the new one is a race this test does not depend on).
        assert wait_for(lambda: serving("lightgbm-hot"), timeout=60), "the worker never loaded the promoted model"
        assert not serving("heuristic-1")
        _send(s, events[third:])
        if not wait_for(lambda: scored_by("lightgbm-hot"), timeout=120):
            wanted = ("engage_model", "risk_updates_total", "engage_worker_")
            metrics = [line for line in httpx.get(f"{worker.url}/metrics").text.splitlines() if line.startswith(wanted)]
            topic = catalogue(s.topic_prefix, s.event_partitions).events.name
            lag = group_lag(s.kafka, f"{s.topic_prefix}-worker", topic)
            raise AssertionError(
                f"the promoted model never scored {user}: {worker.engagement(user).json()['risk']} "
                f"events not committed by the worker: {lag}; {metrics}"
            )
        assert worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == pid  # no restart
        factors = worker.engagement(user).json()["risk"]["factors"]
        assert factors and all(":" in f["description"] for f in factors)
    updates = read_topic(s.kafka, catalogue(s.topic_prefix, s.event_partitions).risk_updates.name,
                         expect=100_000, timeout=6)  # fmt: skip
    versions = {u["model_version"] for u in updates}
    assert versions == {"heuristic-1", "lightgbm-hot"}
