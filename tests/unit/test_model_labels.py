"""Labels: dropped off within the horizon = unenrolled in it, or no active day in it; only matured ones."""

from __future__ import annotations

import pytest

from models.labels import StudentOutcome, label


@pytest.mark.parametrize(
    ("active", "unenrol", "day", "horizon", "expected"),
    [
        ([10, 12], [], 10, 7, 0),  # active on day 12: stayed
        ([10, 18], [], 10, 7, 1),  # next active day 18 is after day 17: dropped off within 7 days
        ([10, 17], [], 10, 7, 0),  # day 17 is the last day of the horizon: stayed
        ([10], [], 10, 7, 1),  # the prediction day itself never counts
        ([10, 11, 12], [12], 10, 7, 1),  # unenrolled inside the horizon, even though active that day
        ([10, 40], [], 10, 30, 0),
        ([10, 41], [], 10, 30, 1),
        ([], [5], 10, 7, 1),  # unenrolled before the prediction: no activity after it either
    ],
)
def test_label_rules(active: list[int], unenrol: list[int], day: int, horizon: int, expected: int) -> None:
    assert label(StudentOutcome(active, unenrol), day, horizon, data_end=100) == expected


def test_no_label_before_the_horizon_is_over() -> None:
    outcome = StudentOutcome([1, 2, 3])
    assert label(outcome, 10, 7, data_end=16) is None
    assert label(outcome, 10, 7, data_end=17) == 1
