"""The scorer's model: promoted one, hot-reloaded on promotion, a broken promotion refused, heuristic fallback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.registry import ModelRegistry
from models.serving import ModelProvider
from models.training import TrainConfig, train
from tests.unit.test_model_training import synthetic


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    reg = ModelRegistry(tmp_path_factory.mktemp("serving"))
    data, _ = synthetic(users=60, days=100)
    for version in ("a", "b"):
        train(data, TrainConfig(max_rounds=30, early_stopping_rounds=5), reg, version=version)
    broken = reg.root / "broken"
    broken.mkdir()
    meta = json.loads((reg.root / "a" / "metadata.json").read_text())
    (broken / "metadata.json").write_text(json.dumps(meta))  # but no booster files
    return reg


def test_heuristic_until_something_is_promoted_then_reload_on_promotion(registry: ModelRegistry) -> None:
    clock = Clock()
    provider = ModelProvider(registry, check_seconds=5.0, clock=clock)
    assert provider.current().version == "heuristic-1"
    registry.promote("a")
    clock.t = 1.0
    assert provider.current().version == "heuristic-1"  # not checked again yet
    clock.t = 6.0
    assert provider.current().version == "lightgbm-a"
    registry.promote("b")
    clock.t = 12.0
    assert provider.current().version == "lightgbm-b"


def test_a_broken_promotion_keeps_the_previous_model_and_rollback_returns(registry: ModelRegistry) -> None:
    clock = Clock()
    registry.promote("a")
    provider = ModelProvider(registry, check_seconds=1.0, clock=clock)
    assert provider.current().version == "lightgbm-a"
    registry.promote("broken")
    clock.t = 2.0
    assert provider.current().version == "lightgbm-a"  # refused, still scoring
    registry.rollback()
    clock.t = 4.0
    assert provider.current().version == "lightgbm-a"
    while registry.pointer_stamp() is not None:
        registry.rollback()
    clock.t = 6.0
    assert provider.current().version == "heuristic-1"


def test_no_registry_means_the_heuristic(tmp_path: Path) -> None:
    assert ModelProvider(ModelRegistry(tmp_path / "empty")).current().version == "heuristic-1"
    assert ModelProvider(None).current().version == "heuristic-1"


def test_a_worker_scoring_with_the_heuristic_does_not_load_lightgbm():
    """lightgbm, pandas and scipy are ~90 MB of a worker's memory: loaded with the first promoted model only."""
    import subprocess
    import sys

    from config.settings import PROJECT_ROOT

    heavy = "('lightgbm', 'pandas', 'scipy')"
    check = f"import sys, streams.worker.app; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, check=True,
                          cwd=PROJECT_ROOT)  # fmt: skip
    assert done.stdout.strip() == "[]"
