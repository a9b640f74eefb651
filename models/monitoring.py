"""Is the served model still right? Accuracy of matured predictions, and feature drift (PSI) against training.

- Drift: the training rows' distribution of every feature is kept with the model (decile edges and shares,
  plus the share of missing values). The population stability index of recent snapshots against it:
  ``sum((a - e) * ln(a / e))`` over the bins (missing is a bin). Rule of thumb: < 0.1 stable, 0.1-0.25
  shifting, > 0.25 drifted (retrain).
- Accuracy: predictions whose horizon has passed, joined with what happened (``models.labels``): ROC AUC and
  expected calibration error per horizon.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

from models.features import FEATURES, row_vector
from models.labels import StudentOutcome, label
from models.metrics import calibration_table, expected_calibration_error, roc_auc
from models.registry import ModelRegistry
from models.training_data import EPOCH, day_number, load_warehouse

NOTHING = StudentOutcome()
EPSILON = 1e-4  # an empty bin on either side would make the log infinite


def drift_reference(matrix: np.ndarray, feature_names: Sequence[str], bins: int = 10) -> dict[str, Any]:
    """Per feature: decile edges of the training values and each bin's share (missing values apart)."""
    out: dict[str, Any] = {}
    for k, name in enumerate(feature_names):
        column = matrix[:, k]
        present = column[~np.isnan(column)]
        edges = sorted(set(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]).tolist())) if len(present) else []
        out[name] = {"edges": edges, "expected": _shares(column, edges)}
    return out


def _shares(column: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Shares of: missing, then each bin between the edges (right-closed)."""
    n = len(column)
    if n == 0:
        return [0.0] * (len(edges) + 2)
    missing = np.isnan(column)
    present = column[~missing]
    counts = np.bincount(np.searchsorted(np.asarray(edges), present, side="left"), minlength=len(edges) + 1)
    return [float(missing.sum()) / n, *(float(c) / n for c in counts)]


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def feature_psi(reference: dict[str, Any], matrix: np.ndarray, feature_names: Sequence[str]) -> dict[str, float]:
    """PSI of each feature of ``matrix`` (recent snapshots) against the training reference."""
    out = {}
    for k, name in enumerate(feature_names):
        ref = reference.get(name)
        if ref is None:
            continue
        out[name] = psi(ref["expected"], _shares(matrix[:, k], ref["edges"]))
    return out


@dataclass
class MonitorReport:
    data_end: date | None = None
    accuracy: dict[tuple[int, str], dict[str, float]] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None


def measure_with(client: Any, registry: ModelRegistry, window_days: int = 30) -> MonitorReport:
    """``client`` has the engine's database selected (clickhouse-driver, or chdb in tests)."""
    report = MonitorReport()
    last = client.execute("SELECT max(day) FROM user_daily_activity")[0][0]
    if not last or last <= EPOCH:
        return report
    report.data_end = last
    since = last - timedelta(days=window_days + 30)
    warehouse = load_warehouse(client, since=since)
    end = day_number(last)
    for horizon in (7, 30):
        scores: dict[str, list[float]] = defaultdict(list)
        labels: dict[str, list[int]] = defaultdict(list)
        for row in warehouse.rows:
            day = day_number(row["day"])
            if not end - horizon - window_days <= day <= end - horizon:
                continue
            # no activity stored at all is an outcome too: nothing came after the prediction
            y = label(warehouse.outcomes.get(row["user_id"], NOTHING), day, horizon, end)
            if y is None:
                continue
            scores[row["model_version"]].append(row["risk_7d" if horizon == 7 else "risk_30d"] / 100)
            labels[row["model_version"]].append(y)
        for version, p in scores.items():
            y_arr = np.asarray(labels[version])
            report.accuracy[(horizon, version)] = {
                "roc_auc": roc_auc(p, y_arr),
                "ece": expected_calibration_error(calibration_table(p, y_arr)),
                "n": float(len(p)),
            }
    entry = registry.promoted()
    if entry is not None and "drift_reference" in entry.metadata:
        report.model_version = f"lightgbm-{entry.version}"
        recent = [r for r in warehouse.rows if day_number(r["day"]) > end - 7]
        if recent:
            matrix = np.asarray([row_vector(r) for r in recent], dtype=float)
            report.psi = feature_psi(entry.metadata["drift_reference"], matrix, list(FEATURES))
    return report
