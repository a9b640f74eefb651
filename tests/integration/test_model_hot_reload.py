"""A promoted model takes over scoring in a running worker, under traffic, without a restart."""

from __future__ import annotations

import uuid
from pathlib import Path

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
    ensure_topics(s.kafka_bootstrap, catalogue(s.topic_prefix, s.event_partitions).all())
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
        _send(s, events[half:])  # traffic keeps flowing while the worker picks the new model up
        if not wait_for(lambda: scored_by("lightgbm-hot"), timeout=120):
            # What the worker did (events taken, rebalances, commits unstuck) and what it left on the topic: a
            # failure here (seen once in a clean-clone run and 1 of 3 runs beside two busy loops) showed no score
            # at all after the promotion, as if the worker had stopped taking events.
            wanted = ("engage_model", "risk_updates_total", "engage_worker_")
            metrics = [line for line in __import__("httpx").get(f"{worker.url}/metrics").text.splitlines()
                       if line.startswith(wanted)]  # fmt: skip
            topic = catalogue(s.topic_prefix, s.event_partitions).events.name
            lag = group_lag(s.kafka_bootstrap, f"{s.topic_prefix}-worker", topic)
            raise AssertionError(
                f"the promoted model never took over: {worker.engagement(user).json()['risk']} "
                f"events not committed by the worker: {lag}; {metrics}"
            )
        assert worker.proc is not None and worker.proc.poll() is None and worker.proc.pid == pid  # no restart
        factors = worker.engagement(user).json()["risk"]["factors"]
        assert factors and all(":" in f["description"] for f in factors)
    updates = read_topic(s.kafka_bootstrap, catalogue(s.topic_prefix, s.event_partitions).risk_updates.name,
                         expect=100_000, timeout=6)  # fmt: skip
    versions = {u["model_version"] for u in updates}
    assert versions == {"heuristic-1", "lightgbm-hot"}
