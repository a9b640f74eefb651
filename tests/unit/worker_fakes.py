"""In-memory stand-ins for what the worker core works over (``streams.worker.core.ports``): a record table, an
output producer whose acknowledgements the test controls, and an assignment with committed offsets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from models.heuristic import HeuristicModel
from processors.policy import PolicyConfig
from schemas.courses import CourseCalendar
from schemas.topics import catalogue
from streams.worker.core.backpressure import Backlog
from streams.worker.core.clock import EngineClock
from streams.worker.core.durability import ChangelogWrites
from streams.worker.core.engine import WorkerCore

PARTITIONS = 4
TOPICS = catalogue("t", PARTITIONS)


class MemoryTable:
    """Records by key, and the (key, partition, raw or None) writes in order, as a changelog would see them."""

    def __init__(self) -> None:
        self.rows: dict[bytes, bytes] = {}
        self.changelog: list[tuple[bytes, int, bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        return self.rows.get(key)

    def put(self, key: bytes, raw: bytes, partition: int) -> None:
        self.rows[key] = raw
        self.changelog.append((key, partition, raw))

    def delete(self, key: bytes, partition: int) -> None:
        del self.rows[key]
        self.changelog.append((key, partition, None))

    def keys(self) -> Iterable[bytes]:
        return iter(self.rows)

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.rows.items()


class MemoryOutputs:
    """Sent messages by topic; ``acknowledging`` False makes ``flush`` leave them unacknowledged (Kafka away)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.acknowledging = True
        self._unacknowledged = 0
        self._delivered = 0

    def send_encoded(self, key: bytes, value: bytes, *, topic: str) -> None:
        self.sent.append((topic, key, value))
        self._unacknowledged += 1

    @property
    def in_flight(self) -> int:
        return self._unacknowledged

    @property
    def delivered(self) -> int:
        return self._delivered

    def flush(self, timeout: float = 30.0) -> int:
        if self.acknowledging:
            self._delivered += self._unacknowledged
            self._unacknowledged = 0
        return self._unacknowledged

    def on(self, topic: str) -> list[bytes]:
        return [value for t, _, value in self.sent if t == topic]


class Assignment:
    def __init__(self, owned: set[int] | None = None) -> None:
        self.partitions = set(range(PARTITIONS)) if owned is None else owned
        self.commits: dict[int, int] = {}

    def owned(self) -> set[int]:
        return set(self.partitions)

    def committed(self, partition: int) -> int | None:
        return self.commits.get(partition)


class NoCourses:
    def calendars(self) -> Mapping[str, CourseCalendar]:
        return {}


class FixedModel:
    def __init__(self) -> None:
        self.model = HeuristicModel()

    def current(self) -> Any:
        return self.model


def make_core(
    table: MemoryTable | None = None,
    outputs: MemoryOutputs | None = None,
    assignment: Assignment | None = None,
    debounce_seconds: float = 0.0,
    policy: PolicyConfig | None = None,
) -> WorkerCore:
    table, outputs, assignment = table or MemoryTable(), outputs or MemoryOutputs(), assignment or Assignment()
    backlog = Backlog(ChangelogWrites(), lambda: 0, lambda: 0, limit=1_000_000)
    return WorkerCore(
        table=table,
        outputs=outputs,
        ownership=assignment,
        topics=TOPICS,
        partitions=PARTITIONS,
        models=FixedModel(),
        policy=policy or PolicyConfig(),
        courses=NoCourses(),
        backlog=backlog,
        clock=EngineClock("wall", 30.0, assignment.owned, max_lead_seconds=300.0),
        debounce_seconds=debounce_seconds,
        record_cache_size=1_000,
    )
