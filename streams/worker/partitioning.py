"""Writing the Faust table where Faust does not expect it: outside the event being processed.

Faust's table and RocksDB store take the partition of a write from "the current event" (a context variable the
stream sets while one message is processed). Our agent processes a gather of messages per user, and timers and
web views write with no message at all, so we set that context ourselves: to the message the user's batch came
from, or, with no message, to the partition Kafka's default partitioner (murmur2, which our producers also use)
gives the user's key — the partition of the events topic this worker owns for that user.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event

from streams.producer import key_partition

__all__ = ["at_partition", "key_partition", "writing_as"]


class _PartitionOnly:
    """A stand-in for a Faust event: the table and store read only ``message.partition`` and ``message.topic``."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


@contextmanager
def writing_as(event: Any) -> Iterator[None]:
    """Table writes inside this block go to ``event``'s partition (a Faust event, or ``at_partition``'s)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def at_partition(topic: str, partition: int) -> _PartitionOnly:
    """The context for writing as if processing a message of ``topic`` (the source topic) at ``partition``."""
    return _PartitionOnly(topic, partition)
