"""Model quality measures, plain numpy: ROC AUC, PR AUC (average precision), Brier score, calibration table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Mann-Whitney U: the chance a random positive scores above a random negative (ties count half)."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def pr_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision: the sum over distinct score thresholds of the recall gained there times the precision
    there, AP = sum_n (R_n - R_{n-1}) * P_n. Tied scores are one threshold: ranking them one by one gave each
    an input-order precision, so the same scores and labels listed differently measured differently."""
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=int)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    ranked, hits = s[order], y[order]
    # The last position of each run of equal scores: a threshold takes in everything scored at or above it.
    ends = np.append(np.flatnonzero(ranked[1:] != ranked[:-1]), len(ranked) - 1)
    true_positives = np.cumsum(hits)[ends]
    precision = true_positives / (ends + 1)
    recall_gained = np.diff(true_positives, prepend=0) / true_positives[-1]
    return float((recall_gained * precision).sum())


def brier(probabilities: ArrayLike, labels: ArrayLike) -> float:
    p, y = np.asarray(probabilities, dtype=float), np.asarray(labels, dtype=float)
    return float(np.mean((p - y) ** 2))


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    count: int
    mean_predicted: float
    observed: float


def calibration_table(probabilities: ArrayLike, labels: ArrayLike, bins: int = 10) -> list[CalibrationBin]:
    """Per probability band: how many predictions, their mean, and the observed positive rate."""
    p, y = np.asarray(probabilities, dtype=float), np.asarray(labels, dtype=float)
    out = []
    edges = np.linspace(0.0, 1.0, bins + 1)
    for k in range(bins):
        inside = (p >= edges[k]) & ((p < edges[k + 1]) if k < bins - 1 else (p <= edges[k + 1]))
        n = int(inside.sum())
        if n:
            out.append(CalibrationBin(edges[k], edges[k + 1], n, float(p[inside].mean()), float(y[inside].mean())))
    return out


def expected_calibration_error(table: Sequence[CalibrationBin]) -> float:
    total = sum(b.count for b in table)
    return sum(b.count * abs(b.mean_predicted - b.observed) for b in table) / total if total else float("nan")
