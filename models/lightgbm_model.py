"""The trained risk model: LightGBM boosters per horizon, isotonic-calibrated, explained per student.

Scores a micro-batch in one ``predict`` call per horizon. The top factors come from LightGBM's own feature
contributions (``pred_contrib``, TreeSHAP): the features that pushed this student's 7-day risk up the most,
said in words with their value, and their share of the points above the model's baseline risk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from models.calibration import IsotonicCalibrator
from models.features import FEATURES, feature_matrix
from models.heuristic import confidence
from models.registry import ModelEntry
from schemas.signals import RiskAssessment, RiskFactor, SignalSnapshot, tier_for

GROUP_OF = {
    "login": ("logins", "login"),
    "session": ("session", "minutes"),
    "progress": ("lesson",),
    "completion": ("course", "courses"),
    "streak": ("streak", "active_days", "consistency"),
    "quiz": ("quiz",),
}


def _group(feature: str) -> str:
    for group, stems in GROUP_OF.items():
        if any(stem in feature for stem in stems):
            return group
    return "context"


# A standing in the course (``processors.cohort``: a percentile rank, 0..1) is said as a place in the course, which
# a success team reads at a glance, instead of a fraction.
COURSE_RANKS = {
    "course_activity_rank_7d": "time on the platform in the last 7 days",
    "course_activity_rank_30d": "time on the platform in the last 30 days",
    "course_submitted_rank": "share of due work submitted",
    "course_score_rank": "assessment scores",
}


def course_place(rank: float) -> str:
    """Where a percentile rank (0 = least, 1 = most) puts a student in their course, in words."""
    if rank < 0.10:
        return "in the bottom 10 % of their course"
    if rank < 0.25:
        return "in the bottom quarter of their course"
    if rank < 0.50:
        return "below their course's median"
    if rank >= 0.90:
        return "in the top 10 % of their course"
    if rank >= 0.75:
        return "in the top quarter of their course"
    return "at or above their course's median"


def describe(feature: str, value: float) -> str:
    """'days since last login: 9' — the feature in words with the student's value; a standing in the course as
    'time on the platform in the last 7 days: in the bottom 10 % of their course (percentile 6)'."""
    words = feature.replace("_", " ").replace(" 7d", " (7 days)").replace(" 30d", " (30 days)")
    if math.isnan(value):
        return f"{COURSE_RANKS.get(feature, words)}: unknown"
    if feature in COURSE_RANKS:
        return f"{COURSE_RANKS[feature]}: {course_place(value)} (percentile {round(value * 100):.0f})"
    shown = f"{value:.0f}" if float(value).is_integer() or abs(value) >= 10 else f"{value:.2f}"
    return f"{words}: {shown}"


class LightGBMRiskModel:
    name = "lightgbm"

    def __init__(self, entry: ModelEntry) -> None:
        meta = entry.metadata
        if list(meta["features"]) != list(FEATURES):
            missing = sorted(set(meta["features"]) ^ set(FEATURES))
            raise ValueError(f"model {entry.version} was trained on other features than this engine has: {missing}")
        self.version = f"lightgbm-{entry.version}"
        self.entry = entry
        self.boosters = {h: lgb.Booster(model_file=str(entry.path / f"model-{h}d.txt")) for h in (7, 30)}
        self.calibrators = {h: IsotonicCalibrator.from_dict(meta["calibration"][str(h)]) for h in (7, 30)}
        self.base_risk = {h: float(meta.get("base_risk", {}).get(str(h), 0.0)) for h in (7, 30)}

    def probabilities(self, matrix: np.ndarray, horizon: int) -> np.ndarray:
        # One thread: the scorer is one event loop, and threads cost more than they save on micro-batches.
        return self.calibrators[horizon].predict(self.boosters[horizon].predict(matrix, num_threads=1))

    def score(self, snapshot: SignalSnapshot) -> RiskAssessment:
        return self.score_many([snapshot])[0]

    def score_many(self, snapshots: Sequence[SignalSnapshot]) -> list[RiskAssessment]:
        if not snapshots:
            return []
        matrix = np.asarray(feature_matrix(snapshots), dtype=float)
        p7 = self.probabilities(matrix, 7) * 100
        p30 = np.maximum(self.probabilities(matrix, 30) * 100, p7)
        contributions = self.boosters[7].predict(matrix, pred_contrib=True, num_threads=1)
        out = []
        for i, snapshot in enumerate(snapshots):
            risk7, risk30 = float(p7[i]), float(p30[i])
            out.append(
                RiskAssessment(
                    risk_7d=round(risk7, 2),
                    risk_30d=round(risk30, 2),
                    tier=tier_for(risk7),
                    confidence=confidence(snapshot),
                    factors=self._factors(matrix[i], contributions[i], risk7),
                    model_version=self.version,
                )
            )
        return out

    def _factors(self, row: np.ndarray, contrib: Any, risk: float, top: int = 3) -> list[RiskFactor]:
        per_feature = np.asarray(contrib[:-1], dtype=float)  # the last entry is the baseline (expected value)
        up = [(float(c), k) for k, c in enumerate(per_feature) if c > 0]
        up.sort(reverse=True)
        total = sum(c for c, _ in up) or 1.0
        above_base = max(risk - self.base_risk[7], 0.0)
        return [
            RiskFactor(
                signal=FEATURES[k],
                group=_group(FEATURES[k]),
                description=describe(FEATURES[k], float(row[k])),
                contribution=round(above_base * c / total, 2),
            )
            for c, k in up[:top]
        ]
