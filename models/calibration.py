"""Isotonic calibration (pool adjacent violators): turns a model's scores into probabilities that hold up.

Fitted on held-out predictions, never on the rows the booster learned from. A score of 0.8 then means about
80% of such students dropped off. Monotone, so the ranking (ROC AUC) is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike


@dataclass(frozen=True)
class IsotonicCalibrator:
    thresholds: tuple[float, ...]  # block upper edges of the raw score, increasing
    values: tuple[float, ...]  # calibrated probability of each block, non-decreasing

    @classmethod
    def fit(cls, scores: ArrayLike, labels: ArrayLike) -> IsotonicCalibrator:
        s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=float)
        if len(s) == 0:
            raise ValueError("cannot calibrate on no predictions")
        order = np.argsort(s, kind="mergesort")
        s, y = s[order], y[order]
        # blocks: [sum of labels, count, upper score]; merge while a block's mean is above the next one's
        sums: list[float] = []
        counts: list[float] = []
        uppers: list[float] = []
        for score, label in zip(s, y, strict=True):
            if uppers and score == uppers[-1]:
                sums[-1] += label
                counts[-1] += 1
            else:
                sums.append(float(label))
                counts.append(1.0)
                uppers.append(float(score))
            while len(sums) > 1 and sums[-2] / counts[-2] >= sums[-1] / counts[-1]:
                last_sum, last_count, last_upper = sums.pop(), counts.pop(), uppers.pop()
                sums[-1] += last_sum
                counts[-1] += last_count
                uppers[-1] = last_upper
        return cls(tuple(uppers), tuple(a / b for a, b in zip(sums, counts, strict=True)))

    def predict(self, scores: ArrayLike) -> np.ndarray:
        """A step function: a score gets the value of the first block whose upper edge is at or above it."""
        s = np.asarray(scores, dtype=float)
        index = np.searchsorted(np.asarray(self.thresholds), s, side="left")
        index = np.clip(index, 0, len(self.values) - 1)
        return np.asarray(self.values)[index]

    def to_dict(self) -> dict[str, list[float]]:
        return {"thresholds": list(self.thresholds), "values": list(self.values)}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> IsotonicCalibrator:
        return cls(tuple(d["thresholds"]), tuple(d["values"]))
