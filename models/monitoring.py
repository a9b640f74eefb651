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
from collections.abc import Sequence
from typing import Any

import numpy as np

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
