"""Finding the offsets a consumer skipped (streams.worker.gaps): pure logic, no Kafka."""

from __future__ import annotations

from streams.worker.gaps import missing_offsets


def test_a_batch_continuing_from_the_last_folded_offset_misses_nothing() -> None:
    assert missing_offsets([10, 11, 12], last_folded=9) == []


def test_a_batch_starting_past_the_next_offset_misses_the_ones_between() -> None:
    # The case seen after a SIGKILL: committed (next to read) 10, the first batch began at 11.
    assert missing_offsets([11, 12], last_folded=9) == [10]


def test_holes_inside_a_batch_are_missing_too() -> None:
    assert missing_offsets([3, 5, 8], last_folded=2) == [4, 6, 7]


def test_redelivered_offsets_are_not_gaps_and_do_not_fill_any() -> None:
    assert missing_offsets([5, 6, 7], last_folded=9) == []
    assert missing_offsets([8, 9, 12], last_folded=9) == [10, 11]


def test_an_empty_batch_misses_nothing() -> None:
    assert missing_offsets([], last_folded=4) == []
