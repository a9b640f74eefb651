"""The OULAD benchmark's bookkeeping: merging replays by day, who is registered at a cut-off, snapshot lookup."""

from __future__ import annotations

from datetime import date

from engage.bench.oulad import _as_of, _finite, _merged, _registered_at
from engage.oulad.dataset import Enrolment


def test_replays_merge_day_by_day() -> None:
    a = iter([(date(2013, 1, 1), [{"e": 1}]), (date(2013, 1, 3), [{"e": 3}])])
    b = iter([(date(2013, 1, 1), [{"e": 2}]), (date(2013, 1, 2), [{"e": 4}])])
    assert list(_merged(a, b)) == [
        (date(2013, 1, 1), [{"e": 1}, {"e": 2}]),
        (date(2013, 1, 2), [{"e": 4}]),
        (date(2013, 1, 3), [{"e": 3}]),
    ]


def test_registered_at_a_cutoff() -> None:
    assert _registered_at(Enrolment("P", 1, registered_day=-10), 14)
    assert not _registered_at(Enrolment("P", 1, registered_day=20), 14)  # not yet
    assert not _registered_at(Enrolment("P", 1, registered_day=-10, unregistered_day=14), 14)  # gone that day
    assert _registered_at(Enrolment("P", 1, registered_day=-10, unregistered_day=15), 14)
    assert not _registered_at(Enrolment("P", 1), 14)  # never registered


def test_snapshot_of_the_day_else_the_week_before() -> None:
    rows = {("u", date(2013, 1, 5)): {"x": 5}, ("u", date(2013, 1, 9)): {"x": 9}}
    assert _as_of(rows, "u", date(2013, 1, 9)) == {"x": 9}
    assert _as_of(rows, "u", date(2013, 1, 8)) == {"x": 5}
    assert _as_of(rows, "u", date(2013, 1, 20)) is None  # nothing in the 7 days before


def test_nan_becomes_null() -> None:
    assert _finite({"a": [float("nan"), 1.0]}) == {"a": [None, 1.0]}
