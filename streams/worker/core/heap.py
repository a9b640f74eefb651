"""The garbage collector as a worker runs it, for the worker process and the benches that measure its core.

A collection of the youngest generation every ``GC_YOUNG_THRESHOLD`` new objects (Python's default is 700).
Decoding one record makes ~1,000 small objects that all die with the re-score; at 700, collections ran inside
every decode and promoted live records to older generations, and full collections took ~40% of a silence pass
(profiled on OULAD). Memory held is the same: nothing lives longer, it is only looked at less.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """What exists now (modules, schemas, the app; a bench's input) lives as long as the process: collect once,
    move it out of every later collection's way, and collect the young generation less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


@contextmanager
def heap_as_in_the_worker() -> Iterator[None]:
    """``settle_heap`` for a bench of the core inside a longer process (a test, a CLI): undone on the way out."""
    threshold = gc.get_threshold()
    settle_heap()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
