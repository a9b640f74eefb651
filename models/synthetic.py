"""A training set whose answer is known: drop-off probability a fixed function of days since the last login.

Used to check calibration (scores must match the known probabilities) and to time a trained model of a
realistic size without a warehouse.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, date, datetime, timedelta

from models.features import FEATURES, feature_vector
from models.training_data import TrainingSet
from schemas.signals import SignalSnapshot


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def synthetic_training_set(users: int = 200, days: int = 100, seed: int = 3) -> tuple[TrainingSet, list[float]]:
    """Rows for ``users`` x ``days`` and the true 7-day drop-off probability of each row."""
    rng = random.Random(seed)
    out = TrainingSet(list(FEATURES))
    truth: list[float] = []
    start = date(2026, 1, 1)
    for u in range(users):
        for d in range(days):
            silent = rng.uniform(0, 20)
            when = datetime.combine(start + timedelta(days=d), datetime.min.time(), UTC)
            snap = SignalSnapshot(
                user_id=f"u{u}",
                as_of=when,
                days_since_last_login=silent,
                logins_7d=rng.randint(0, 10),
                avg_quiz_score_pct_30d=None if rng.random() < 0.3 else rng.uniform(0, 100),
            )
            p7, p30 = _sigmoid(0.45 * (silent - 8)), _sigmoid(0.35 * (silent - 5))
            out.user_ids.append(f"u{u}")
            out.days.append(d)
            out.features.append(feature_vector(snap))
            out.rows.append({f"signals_{k}": v for k, v in snap.model_dump().items()})
            out.labels[7].append(int(rng.random() < p7))
            out.labels[30].append(int(rng.random() < p30))
            truth.append(p7)
    return out, truth
