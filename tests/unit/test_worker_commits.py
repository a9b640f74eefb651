"""Which offset Faust commits once the worker marked ranges done that were also acknowledged
(streams.worker.faust_internals.commit_past_duplicate_acknowledgements), on Faust's own ``_new_offset``: no Kafka."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from intervaltree import IntervalTree

from streams.worker.faust_internals import commit_past_duplicate_acknowledgements

TP = "events-0"


def _consumer(committed: int | None, done: tuple[int, int] | None, acked: list[int]) -> Any:
    consumer: Any = SimpleNamespace(
        _acked=defaultdict(list),
        _gap=defaultdict(IntervalTree),
        _committed_offset=defaultdict(lambda: None),
        _acked_index=defaultdict(set),
    )
    consumer._committed_offset[TP] = committed
    if done is not None:
        consumer._gap[TP].addi(done[0], done[1] + 1)
    consumer._acked[TP].extend(acked)
    consumer._acked_index[TP].update(acked)
    consumer._new_offset = lambda tp: Consumer._new_offset(consumer, tp)
    return consumer


def _patched(consumer: Any) -> Any:
    commit_past_duplicate_acknowledgements(SimpleNamespace(consumer=consumer))  # type: ignore[arg-type]
    return consumer


def test_faust_alone_crawls_one_offset_per_commit_over_a_range_both_done_and_acknowledged() -> None:
    """What a chaos run saw: resumed from its stored position 419 with 217 committed, the worker marked 218..419
    done while Faust re-delivered (and the worker acknowledged) the same messages."""
    consumer = _consumer(217, (218, 419), list(range(218, 420)))
    assert consumer._new_offset(TP) == 219  # one run, cut by the first duplicate


def test_with_the_patch_one_commit_covers_the_whole_range() -> None:
    consumer = _patched(_consumer(217, (218, 419), list(range(218, 420))))
    assert consumer._new_offset(TP) == 420


def test_acknowledgements_below_the_committed_offset_and_twice_do_not_cut_the_run() -> None:
    consumer = _patched(_consumer(300, None, [298, 299, 300, 300, 301, 302, 302, 303]))
    assert consumer._new_offset(TP) == 304


def test_a_hole_still_stops_the_commit_before_it() -> None:
    consumer = _patched(_consumer(100, (101, 110), [100, 111, 112, 114, 115]))
    assert consumer._new_offset(TP) == 113  # 113 was never folded: nothing past it is committed


def test_a_range_done_with_nothing_else_acknowledged_is_still_committed() -> None:
    consumer = _patched(_consumer(50, (51, 60), [55]))
    assert consumer._new_offset(TP) == 61
