"""When a gather is complete (``streams.worker.core.gathering``): a live stream's gathers end as Faust's take ends
them; a stream that is behind gathers on while messages keep arriving, up to the most messages or the longest wait."""

from __future__ import annotations

from streams.worker.core.gathering import GatherPolicy

POLICY = GatherPolicy(max_messages=500, within_seconds=0.05, behind_seconds=1.0, longest_seconds=1.0)
NOW = 1_000_000.0
OLD = NOW - 30.0  # a backlog's message
FRESH = NOW - 0.01  # a live message


def test_a_stream_that_is_behind_gathers_on_while_messages_keep_arriving():
    assert POLICY.keep_going(1, 120, OLD, NOW, waited=0.05)
    assert POLICY.keep_going(120, 260, OLD, NOW, waited=0.1)


def test_a_live_stream_ends_its_gather_after_one_wait_as_faust_did():
    assert not POLICY.keep_going(1, 120, FRESH, NOW, waited=0.05)
    assert not POLICY.keep_going(1, 120, None, NOW, waited=0.05)  # no timestamp: treated as live


def test_behind_is_older_than_behind_seconds_not_equal():
    assert not POLICY.keep_going(1, 2, NOW - 1.0, NOW, waited=0.05)
    assert POLICY.keep_going(1, 2, NOW - 1.01, NOW, waited=0.05)


def test_a_gather_ends_when_nothing_came_in_a_wait_or_it_is_full_or_empty():
    assert not POLICY.keep_going(120, 120, OLD, NOW, waited=0.1), "caught up (or stalled): fold what is there"
    assert not POLICY.keep_going(450, 500, OLD, NOW, waited=0.1), "full"
    assert not POLICY.keep_going(0, 0, OLD, NOW, waited=0.1), "empty"


def test_a_gather_that_is_behind_ends_after_the_longest_wait_whatever_comes():
    assert POLICY.keep_going(10, 20, OLD, NOW, waited=0.99)
    assert not POLICY.keep_going(10, 20, OLD, NOW, waited=1.0)
