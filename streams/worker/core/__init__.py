"""The worker's core: folding, scoring, emitting, the outbox and the positions, with no Faust in it.

It works over the small interfaces in ``ports`` (a record table, an output producer, the partitions owned and
their committed offsets), so it runs the same under the Faust shell (``streams.worker.app``) and in unit tests
over an in-memory table. Faust is the shell's business, and its internals are touched in
``streams.worker.faust_internals`` only.
"""
