"""What the model predicts: did the student drop off within the horizon after the prediction day?

Dropped off within ``h`` days of day ``d`` = the student unenrolled on a day in ``(d, d + h]``, or had no
active day in ``(d, d + h]`` (active as in the streak rules). Only days strictly after ``d`` count: the
prediction is made at the end of day ``d`` with what was known then. A label exists only once its horizon
is over (``d + h <= data_end``); younger predictions are not training rows yet.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field

HORIZONS: tuple[int, ...] = (7, 30)


@dataclass
class StudentOutcome:
    """A student's active days and unenrolment days (as day ordinals), sorted."""

    active_days: list[int] = field(default_factory=list)
    unenrol_days: list[int] = field(default_factory=list)

    def any_in(self, days: Sequence[int], first: int, last: int) -> bool:
        """Is there a day in ``[first, last]``?"""
        i = bisect_right(days, first - 1)
        return i < len(days) and days[i] <= last


def dropped_off(outcome: StudentOutcome, day: int, horizon: int) -> bool:
    if outcome.any_in(outcome.unenrol_days, day + 1, day + horizon):
        return True
    return not outcome.any_in(outcome.active_days, day + 1, day + horizon)


def label(outcome: StudentOutcome, day: int, horizon: int, data_end: int) -> int | None:
    """1 (dropped off), 0 (stayed) or None (the horizon is not over by ``data_end``)."""
    if day + horizon > data_end:
        return None
    return int(dropped_off(outcome, day, horizon))
