"""PR AUC (average precision) counts tied scores as one threshold, as the standard definition does."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.metrics import pr_auc


def _by_definition(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP = sum over distinct thresholds t, highest first, of (R_t - R_previous) * P_t, with P and R counted over
    everything scored at or above t: the definition read literally, one threshold at a time."""
    positives = labels.sum()
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        taken = scores >= threshold
        hits = labels[taken].sum()
        recall = hits / positives
        total += (recall - previous_recall) * hits / taken.sum()
        previous_recall = recall
    return float(total)


def _ranked_one_by_one(scores: np.ndarray, labels: np.ndarray) -> float:
    """The old measure: the mean precision at each positive, ties in input order."""
    hits = labels[np.argsort(-scores, kind="mergesort")]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def test_two_tied_scores_measure_the_same_whichever_is_listed_first() -> None:
    """One threshold takes both: precision 1/2 at recall 1. Ranked one by one, [1, 0] gave 1.0 and [0, 1] 0.5."""
    assert pr_auc([0.5, 0.5], [1, 0]) == pr_auc([0.5, 0.5], [0, 1]) == 0.5


def test_hand_computed_with_a_run_of_ties_in_the_middle() -> None:
    # thresholds 0.9: 1 of 1 taken is positive (P 1, R 1/3); 0.7: 2 of 4 (P 1/2, R 2/3); 0.2: 3 of 5 (P 3/5, R 1)
    scores, labels = [0.9, 0.7, 0.7, 0.7, 0.2], [1, 0, 1, 0, 1]
    assert pr_auc(scores, labels) == pytest.approx((1 + 1 / 2 + 3 / 5) / 3)
    assert pr_auc([0.7, 0.9, 0.2, 0.7, 0.7], [1, 1, 1, 0, 0]) == pytest.approx(0.7)  # the same items reordered


def test_all_scores_tied_is_the_positive_rate() -> None:
    assert pr_auc([0.3, 0.3, 0.3, 0.3], [1, 0, 0, 1]) == 0.5
    assert pr_auc([0.3, 0.3, 0.3], [0, 0, 1]) == pytest.approx(1 / 3)


def test_permuting_tied_items_changes_nothing() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        scores = rng.integers(0, 5, 40) / 4  # five distinct values: long runs of ties
        labels = rng.integers(0, 2, 40)
        labels[0] = 1
        expected = _by_definition(scores, labels)
        for _ in range(5):
            shuffle = rng.permutation(40)
            assert pr_auc(scores[shuffle], labels[shuffle]) == pytest.approx(expected, abs=1e-12)


def test_with_distinct_scores_it_equals_the_mean_precision_at_each_positive() -> None:
    rng = np.random.default_rng(11)
    for _ in range(50):
        scores = rng.random(60)
        assert len(set(scores.tolist())) == 60
        labels = rng.integers(0, 2, 60)
        labels[0] = 1
        assert pr_auc(scores, labels) == pytest.approx(_ranked_one_by_one(scores, labels), abs=1e-12)
    assert pr_auc([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)


def test_no_positive_label_is_nan_and_all_positive_is_one() -> None:
    assert math.isnan(pr_auc([0.9, 0.5, 0.5], [0, 0, 0]))
    assert pr_auc([0.9, 0.5, 0.5], [1, 1, 1]) == 1.0
