"""The model monitor on both engines: accuracy of matured predictions and drift of the promoted model's inputs."""

from __future__ import annotations

import time
from pathlib import Path

from dashboards.model_health import ModelHealth
from models.features import FEATURES
from models.monitoring import measure_with
from models.registry import ModelRegistry
from models.training import TrainConfig, train
from tests.analytics.conftest import Warehouse
from tests.analytics.test_named_queries import _prediction_data
from tests.unit.test_model_training import synthetic


def test_matured_accuracy_and_drift(warehouse: Warehouse, tmp_path: Path) -> None:
    _prediction_data(warehouse)  # the data prediction_accuracy is checked on, by hand
    registry = ModelRegistry(tmp_path)
    assert measure_with(warehouse.client, registry).psi == {}  # nothing promoted: no drift to measure
    data, _ = synthetic(users=30, days=100)
    train(data, TrainConfig(max_rounds=10, early_stopping_rounds=3), registry, version="m")
    registry.promote("m")
    report = measure_with(warehouse.client, registry)
    # Data ends on Nov 16: the Nov 2 and Nov 9 predictions have a finished 7-day horizon, none a 30-day one.
    # Dropped off (see prediction_accuracy): p1 (80), p4 (90), p5 (30); stayed: p2 (60, 10), p3 (60), p4 (20).
    # AUC: p1 and p4 beat all four, p5 beats 20 and 10 -> 10 / 12.
    assert report.accuracy[(7, "heuristic-1")]["roc_auc"] == 10 / 12
    assert report.accuracy[(7, "heuristic-1")]["n"] == 7
    assert (30, "heuristic-1") not in report.accuracy
    assert set(report.psi) == set(FEATURES) and all(v >= 0 for v in report.psi.values())
    assert report.model_version == "lightgbm-m"


def test_the_predictions_page_measures_in_the_background_and_shows_it_per_version(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """dashboards.model_health: the first read starts the measurement and finds nothing; later reads show the
    same figures as the monitor, per horizon and model version, with the drift per feature in words."""
    _prediction_data(warehouse)
    registry = ModelRegistry(tmp_path)
    data, _ = synthetic(users=30, days=100)
    train(data, TrainConfig(max_rounds=10, early_stopping_rounds=3), registry, version="m")
    registry.promote("m")
    health = ModelHealth(lambda: warehouse.client, registry, every=3600)
    assert health.current() is None and health.rows() == ([], [])
    deadline = time.monotonic() + 60
    while health.current() is None and health.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert health.error is None and health.current() is not None
    accuracy, drift = health.rows()
    ece = round(measure_with(warehouse.client, registry).accuracy[(7, "heuristic-1")]["ece"], 3)
    assert accuracy == [{"horizon": "7 d", "model_version": "heuristic-1", "predictions": 7,
                         "roc_auc": round(10 / 12, 3), "calibration_error": ece}]  # fmt: skip
    assert {d["feature"] for d in drift} == set(FEATURES)
    assert all(d["reading"] in ("stable", "shifting", "drifted") for d in drift)
    assert [d["psi"] for d in drift] == sorted((d["psi"] for d in drift), reverse=True)
