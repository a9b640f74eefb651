"""In-memory stand-ins for the worker core's ports (``streams.worker.core.ports``), for benches that measure the
core alone, without Kafka or Faust (``engage bench replay-core``, ``engage bench game-core``).

They keep no changelog and acknowledge every output at once, on purpose: the benches fold hundreds of thousands
of events and measure the core's own work. The test stand-ins (``tests/unit/worker_fakes.py``) keep what a test
asserts on instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from models.base import RiskModel
from schemas.courses import CourseCalendar


class MemoryTable:
    """Records by key, as the worker's local table holds them (the changelog writes are counted, not kept)."""

    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        return self.rows.get(key)

    def put(self, key: bytes, raw: bytes, partition: int) -> None:
        self.rows[key] = raw
        self.writes += 1

    def delete(self, key: bytes, partition: int) -> None:
        self.rows.pop(key, None)
        self.writes += 1

    def keys(self) -> Iterable[bytes]:
        return iter(self.rows)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.rows.items()


@dataclass
class CountingOutputs:
    """Counts the messages and bytes the core sends per topic; everything is acknowledged at once."""

    by_topic: dict[str, int] = field(default_factory=dict)
    bytes_by_topic: dict[str, int] = field(default_factory=dict)

    def send_encoded(self, key: bytes, value: bytes | None, *, topic: str) -> None:
        self.by_topic[topic] = self.by_topic.get(topic, 0) + 1
        self.bytes_by_topic[topic] = self.bytes_by_topic.get(topic, 0) + len(value or b"")

    @property
    def in_flight(self) -> int:
        return 0

    @property
    def delivered(self) -> int:
        return 0

    def flush(self, timeout: float = 30.0) -> int:
        return 0


class AllPartitions:
    """Every partition is owned; ``commit`` stands for the worker's commit after a gather (the outboxes of the
    batches it covers are then dropped, as in the worker)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._committed: dict[int, int] = {}

    def owned(self) -> set[int]:
        return set(range(self.partitions))

    def committed(self, partition: int) -> int | None:
        return self._committed.get(partition)

    def commit(self, partition: int, next_offset: int) -> None:
        self._committed[partition] = next_offset


@dataclass
class FixedSources:
    """The same course calendars and model for the whole run (no reloads)."""

    calendars_: Mapping[str, CourseCalendar]
    model: RiskModel

    def calendars(self) -> Mapping[str, CourseCalendar]:
        return self.calendars_

    def current(self) -> RiskModel:
        return self.model
