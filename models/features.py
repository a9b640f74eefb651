"""The model's inputs: every numeric signal of a ``SignalSnapshot``, in one fixed order.

The same function turns a live snapshot (scoring) and a stored ``user_daily_signals`` row (training) into a
feature vector, so training and serving cannot drift apart. Unknown values (``None``; ``NaN`` in ClickHouse)
stay NaN: LightGBM learns where missing values go instead of us pretending they are 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.signals import SignalSnapshot

_NOT_FEATURES = {"schema_version", "user_id", "as_of", "timezone", "first_seen", "last_event_time"}

FEATURES: tuple[str, ...] = tuple(name for name in SignalSnapshot.model_fields if name not in _NOT_FEATURES)
SIGNAL_COLUMNS: tuple[str, ...] = tuple(f"signals_{name}" for name in FEATURES)  # in user_daily_signals


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


def feature_vector(snapshot: SignalSnapshot) -> list[float]:
    return [_number(getattr(snapshot, name)) for name in FEATURES]


def feature_matrix(snapshots: Sequence[SignalSnapshot]) -> list[list[float]]:
    return [feature_vector(s) for s in snapshots]


def row_vector(row: Mapping[str, Any]) -> list[float]:
    """A stored row (``signals_*`` columns) as the same vector a live snapshot gives."""
    return [_number(row[column]) for column in SIGNAL_COLUMNS]


def snapshot_from_row(row: Mapping[str, Any]) -> SignalSnapshot:
    """Rebuild the snapshot a stored row was made from (to score it with another model, e.g. the heuristic).

    A value the row does not have, or has as NaN (unknown), is left out: the contract's default applies."""
    values: dict[str, Any] = {}
    for name in SignalSnapshot.model_fields:
        value = row.get(f"signals_{name}")
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if name in ("first_seen", "last_event_time") and getattr(value, "year", 1971) <= 1970:
            continue  # ClickHouse's zero DateTime stands for "none"
        values[name] = value
    return SignalSnapshot.model_validate(values)
