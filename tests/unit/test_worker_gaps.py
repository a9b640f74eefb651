"""Finding the offsets a consumer skipped (streams.worker.gaps): pure logic, no Kafka."""

from __future__ import annotations

from streams.worker.gaps import StalledTails, missing_offsets


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


def test_a_handed_offset_left_unfolded_for_the_grace_period_is_read_again() -> None:
    tails = StalledTails(grace_seconds=10)
    assert tails.missing(1, last_folded=4, handed=5, now=100.0) == []  # first seen
    assert tails.missing(1, last_folded=4, handed=5, now=109.0) == []  # still within the grace
    assert tails.missing(1, last_folded=4, handed=5, now=110.0) == [5]
    assert tails.missing(1, last_folded=4, handed=5, now=111.0) == []  # asked once, then watched again


def test_progress_restarts_the_grace_period() -> None:
    tails = StalledTails(grace_seconds=10)
    tails.missing(0, last_folded=4, handed=9, now=100.0)
    assert tails.missing(0, last_folded=7, handed=9, now=108.0) == []  # folding moved on: a queue, not a loss
    assert tails.missing(0, last_folded=7, handed=9, now=117.0) == []
    assert tails.missing(0, last_folded=7, handed=9, now=118.0) == [8, 9]


def test_nothing_is_missing_when_everything_handed_is_folded() -> None:
    tails = StalledTails(grace_seconds=0)
    assert tails.missing(2, last_folded=9, handed=9, now=1.0) == []
    assert tails.missing(2, last_folded=9, handed=None, now=2.0) == []
    assert tails.missing(2, last_folded=9, handed=3, now=3.0) == []  # a seek back: re-delivery, not a loss


def test_a_long_tail_is_read_in_bounded_steps_and_partitions_are_watched_apart() -> None:
    tails = StalledTails(grace_seconds=1, max_offsets=3)
    tails.missing(0, last_folded=-1, handed=99, now=0.0)
    tails.missing(1, last_folded=5, handed=6, now=0.5)
    assert tails.missing(0, last_folded=-1, handed=99, now=1.0) == [0, 1, 2]
    assert tails.missing(1, last_folded=5, handed=6, now=1.0) == []
    tails.keep_partitions({0})
    assert tails.missing(1, last_folded=5, handed=6, now=2.0) == []  # forgotten when revoked: watched anew
