"""What the worker core needs from the outside, as small interfaces: the shell gives it Faust's table and
consumer and the confluent-kafka producer; unit tests give it in-memory ones (``tests/unit/worker_fakes.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from models.base import RiskModel
from processors.gamification.rules import GameRules
from schemas.courses import CourseCalendar


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the events topic, as the core folds it: where it sits and its bytes."""

    partition: int
    offset: int
    timestamp: float | None  # seconds since the epoch (Kafka's timestamp), when known
    value: bytes


class RecordTable(Protocol):
    """The students' records (and per-partition positions) by key, each written into the changelog partition
    that ``partition`` names: the events partition that owns the key."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, raw: bytes, partition: int) -> None: ...

    def delete(self, key: bytes, partition: int) -> None: ...

    def keys(self) -> Iterable[bytes]: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


class Outputs(Protocol):
    """Where risk updates, interventions, milestones, erasure confirmations and dead letters go."""

    def send_encoded(self, key: bytes, value: bytes | None, *, topic: str) -> None: ...  # None: a tombstone

    @property
    def in_flight(self) -> int: ...

    @property
    def delivered(self) -> int: ...

    def flush(self, timeout: float = 30.0) -> int: ...


class Ownership(Protocol):
    """Which events partitions this worker processes now, and how far each is committed."""

    def owned(self) -> set[int]: ...

    def committed(self, partition: int) -> int | None:
        """The next offset to read, as last committed; None if nothing is committed (or not known yet)."""
        ...


class Calendars(Protocol):
    def calendars(self) -> Mapping[str, CourseCalendar]: ...


class GameRulesSource(Protocol):
    """The gamification rules in force now (``processors.gamification.provider.RulesProvider`` reloads them)."""

    def current(self) -> GameRules: ...


class Models(Protocol):
    """The risk model in force now (``models.serving.ModelProvider`` reloads it on promotion)."""

    def current(self) -> RiskModel: ...
