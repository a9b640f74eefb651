"""Labels: dropped off within the horizon = unenrolled in it, or no active day after the prediction in all the
data there is; only matured ones."""

from __future__ import annotations

import pytest

from models.labels import StudentOutcome, label


@pytest.mark.parametrize(
    ("active", "unenrol", "day", "horizon", "expected"),
    [
        ([10, 12], [], 10, 7, 0),  # active on day 12: stayed
        ([10, 17], [], 10, 7, 0),  # day 17 is the last day of the horizon: stayed
        ([10, 18], [], 10, 7, 0),  # silent through the horizon but back on day 18: a pause, not a drop-out
        ([10, 95], [], 10, 30, 0),  # back much later, still within the data: not a drop-out
        ([10], [], 10, 7, 1),  # the prediction day itself never counts: nothing after it
        ([3, 10], [], 20, 7, 1),  # silent from before the prediction to the end of the data
        ([10, 11, 12], [12], 10, 7, 1),  # unenrolled inside the horizon, even though active that day
        ([10, 11, 30], [30], 10, 7, 0),  # unenrolled after the horizon, active inside it: stayed for now
        ([], [5], 10, 7, 1),  # unenrolled before the prediction: no activity after it either
        ([10, 101], [], 10, 30, 1),  # activity after data_end is not known yet when labelling
    ],
)
def test_label_rules(active: list[int], unenrol: list[int], day: int, horizon: int, expected: int) -> None:
    assert label(StudentOutcome(active, unenrol), day, horizon, data_end=100) == expected


def test_no_label_before_the_horizon_is_over() -> None:
    outcome = StudentOutcome([1, 2, 3])
    assert label(outcome, 10, 7, data_end=16) is None
    assert label(outcome, 10, 7, data_end=17) == 1


def test_a_label_follows_the_data_a_student_who_returns_stops_counting_as_dropped_off() -> None:
    """Lasting silence is judged on all the data there is: the same row is relabelled when the student returns."""
    outcome = StudentOutcome([10, 60])
    assert label(outcome, 10, 30, data_end=50) == 1
    assert label(outcome, 10, 30, data_end=60) == 0
