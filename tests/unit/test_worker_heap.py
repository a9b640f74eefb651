"""The garbage collector as the worker runs it, and undone after a bench of the core inside a longer process."""

import gc

from streams.worker.core.heap import GC_YOUNG_THRESHOLD, heap_as_in_the_worker


def test_a_bench_runs_with_the_workers_collector_and_leaves_the_process_as_it_was() -> None:
    before = gc.get_threshold()
    with heap_as_in_the_worker():
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0  # what existed before the bench is out of its collections' way
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
