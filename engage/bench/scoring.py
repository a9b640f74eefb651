"""`engage bench scoring`: what a trained model costs the scorer, per row, alone and in micro-batches.

The model is trained here on synthetic rows (its cost depends on its size, not on what it learned), then
scores snapshots of simulated students through the scorer's own code (``LightGBMRiskModel.score_many``: two
calibrated predictions plus TreeSHAP factors). Baseline, same run: a plain ``Booster.predict`` of the 7-day
booster on the same feature rows, one row and a batch at a time.
"""

from __future__ import annotations

import statistics
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console

from engage.bench.report import Figure, Report, percentile, timed
from engage.simulator import Population, iter_event_days
from kafka_io.producer import group_by_user
from models.features import feature_matrix
from models.lightgbm_model import LightGBMRiskModel
from models.registry import ModelRegistry
from models.synthetic import synthetic_training_set
from models.training import TrainConfig, train
from processors.pipeline import UserRecord, ingest
from processors.signals import snapshot
from schemas.signals import SignalSnapshot


def _snapshots(n: int) -> list[SignalSnapshot]:
    population = Population.generate(n, seed=3, start=date.today() - timedelta(days=28))
    records: dict[str, UserRecord] = {}
    for _, events in iter_event_days(population, 28):
        for user, evs in group_by_user(events).items():
            ingest(records.setdefault(user, UserRecord.load(None, user)), user, evs)
    now = datetime.now(UTC)
    return [snapshot(r.state, now) for r in records.values()]


def run_scoring_bench(console: Console, out: Path | None, batch: int = 500, single_runs: int = 2_000) -> Report:
    with tempfile.TemporaryDirectory() as tmp:
        registry = ModelRegistry(tmp)
        data, _ = synthetic_training_set(users=400, days=100)
        result = train(data, TrainConfig(fixed_rounds=300), registry, version="bench")  # a realistic size
        model = LightGBMRiskModel(registry.get(result.version))
        snaps = _snapshots(batch)
        matrix = np.asarray(feature_matrix(snaps), dtype=float)
        booster = model.boosters[7]
        single, _ = timed(lambda: model.score_many(snaps[:1]), single_runs)
        plain_single, _ = timed(lambda: booster.predict(matrix[:1], num_threads=1), single_runs)
        batched, _ = timed(lambda: model.score_many(snaps), 20)
        plain_batched, _ = timed(lambda: booster.predict(matrix, num_threads=1), 20)
        trees = {h: b.num_trees() for h, b in model.boosters.items()}
    report = Report("Scoring cost of a trained model (LightGBM, 7- and 30-day boosters)",
                    context={"trees": trees, "batch": batch, "features": matrix.shape[1]})  # fmt: skip
    report.add(
        Figure(
            "one student, p99",
            percentile(single, 0.99) * 1e6,
            "µs",
            "plain Booster.predict, one row, p99",
            percentile(plain_single, 0.99) * 1e6,
            notes=f"median {statistics.median(single) * 1e6:.0f} µs",
        )
    )
    report.add(
        Figure(
            f"per student in batches of {len(snaps)}",
            statistics.median(batched) / len(snaps) * 1e6,
            "µs",
            "plain Booster.predict per row, same batch",
            statistics.median(plain_batched) / len(snaps) * 1e6,
            notes="the scorer: two calibrated predictions and TreeSHAP factors; the baseline: one raw predict",
        )
    )
    report.print(console)
    console.print(f"  trees: {trees}; {matrix.shape[1]} features")
    if out is not None:
        console.print(f"wrote {report.save(out)}")
    return report
