"""In-memory stand-ins for the worker core's ports (``streams.worker.core.ports``), for benches that measure the
core alone, without Kafka or Faust (``engage bench replay-core``, ``engage bench game-core``).

They keep no changelog and acknowledge every output at once, on purpose: the benches fold hundreds of thousands
of events and measure the core's own work. The test stand-ins (``tests/unit/worker_fakes.py``) keep what a test
asserts on instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from config.settings import Settings
from models.base import RiskModel
from models.heuristic import HeuristicModel
from processors.gamification.rules import GameRules
from processors.policy import PolicyConfig
from schemas.courses import CourseCalendar
from schemas.topics import catalogue
from streams.worker.core.backpressure import Backlog
from streams.worker.core.clock import EngineClock
from streams.worker.core.durability import ChangelogWrites
from streams.worker.core.engine import WorkerCore


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


@dataclass(frozen=True)
class FixedRules:
    """One gamification rules version for the whole run (no reloads)."""

    rules: GameRules

    def current(self) -> GameRules:
        return self.rules


@dataclass(frozen=True)
class StandInCore:
    """The worker core over the in-memory stand-ins, and the stand-ins a bench reads its figures from."""

    core: WorkerCore
    table: MemoryTable
    outputs: CountingOutputs
    ownership: AllPartitions


def stand_in_core(
    settings: Settings,
    partitions: int,
    *,
    clock: Literal["event", "wall"],
    calendars: Mapping[str, CourseCalendar] | None = None,
    debounce_seconds: float = 0.0,
    rules: GameRules | None = None,
) -> StandInCore:
    """A worker core as the worker builds it, with the heuristic model, the default policy, ``rules`` (None:
    gamification off), a backlog that never holds the core back, and these stand-ins for Kafka and the table."""
    table, outputs, ownership = MemoryTable(), CountingOutputs(), AllPartitions(partitions)
    fixed = FixedSources(calendars or {}, HeuristicModel())
    core = WorkerCore(
        table=table, outputs=outputs, ownership=ownership, topics=catalogue("bench", partitions),
        partitions=partitions, models=fixed, policy=PolicyConfig(), courses=fixed,
        backlog=Backlog(ChangelogWrites(), lambda: 0, lambda: 0, limit=10**9),
        clock=EngineClock(
            clock,
            settings.event_clock_idle_seconds,
            ownership.owned,
            max_lead_seconds=settings.collector_max_future_skew_seconds,
        ),
        debounce_seconds=debounce_seconds, record_cache_size=settings.worker_record_cache_size,
        rules=FixedRules(rules) if rules is not None else None,
    )  # fmt: skip
    return StandInCore(core, table, outputs, ownership)
