"""The contract every sink follows (modelled on quix-streams' BatchingSink).

A sink only knows how to turn one Kafka message into rows and how to write a batch of rows atomically.
Everything about Kafka — batching by size and time, committing offsets only after a successful write,
pausing and retrying with backoff while the destination is down, dead-lettering undecodable messages —
lives once in ``sinks.runner.SinkRunner``.

Idempotency: a batch is written before its offsets are committed, so a crash in between re-delivers it.
Sinks therefore write to tables that collapse re-delivered rows by a natural key (ReplacingMergeTree on
the event id); readers that need exact counts before background merges use ``FINAL``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Row = Any  # whatever the sink's decode returns and its write understands


class UndecodableMessage(ValueError):
    """A message the sink cannot turn into rows; the runner sends it to the dead-letter topic with this reason."""


@dataclass
class SinkBatch:
    """Rows from one or more partitions of one topic, with the offset range each partition contributed."""

    topic: str
    rows: list[Row] = field(default_factory=list)
    first_offsets: dict[int, int] = field(default_factory=dict)
    last_offsets: dict[int, int] = field(default_factory=dict)

    def add(self, partition: int, offset: int, rows: Sequence[Row]) -> None:
        self.rows.extend(rows)
        self.first_offsets.setdefault(partition, offset)
        self.last_offsets[partition] = offset

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def empty(self) -> bool:
        return not self.last_offsets

    def range_label(self) -> str:
        """e.g. 'engage.events.v1[0:10-42,1:7-9]' — used in logs and as a deduplication token."""
        parts = ",".join(f"{p}:{self.first_offsets[p]}-{o}" for p, o in sorted(self.last_offsets.items()))
        return f"{self.topic}[{parts}]"


class BatchingSink(ABC):
    """Turns messages into rows and writes batches. Implementations hold no Kafka code."""

    #: Short name used in metrics, logs and the consumer group id.
    name: str

    @abstractmethod
    def decode(self, value: bytes, partition: int, offset: int) -> Sequence[Row]:
        """Rows for one message; raise ``UndecodableMessage`` with a clear reason for bad input."""

    @abstractmethod
    def write(self, batch: SinkBatch) -> None:
        """Write all rows or raise; called again with the same batch after a failure."""

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Prepare the destination (e.g. create tables); called once before consuming."""
