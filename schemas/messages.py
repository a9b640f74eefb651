"""What one Kafka message carries on the events and dead-letter topics.

Design choice (see README, "What one Kafka message carries"): a message on the events topic carries whole
batches of events, never one event. Faust pays ~150-250 µs of framework time per message whatever it does:

- ``EventBatch``: *one user's* events, keyed by that user id (the collector: one per student per request).
- ``PartitionBatch``: the ``EventBatch`` of every student of one ``send`` who hashes to the same partition,
  written to that partition (the producer library). One message then carries hundreds of students, and the
  framework's cost per message is paid per partition per flush instead of per student.

Either way a student's events all land in the partition Kafka's default partitioner (murmur2 of the user id)
gives them, in order: the processors keep a student's state on the worker that owns that partition.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from schemas.events import SCHEMA_VERSION, BehaviorEvent, Identifier


class EventBatch(BaseModel):
    """One user's events, in the order the client sent them (at least one, at most a collector batch)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    user_id: Identifier
    source: Annotated[str, Field(max_length=64)] = ""
    events: Annotated[list[BehaviorEvent], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_user(self) -> EventBatch:
        others = {e.user_id for e in self.events} - {self.user_id}
        if others:
            raise ValueError(f"an EventBatch carries one user's events; found also {sorted(others)[:3]}")
        return self


class PartitionBatch(BaseModel):
    """Several students' batches in one message, on the partition each of their user ids hashes to (a batch
    found on another partition is refused to the dead-letter topic: its state lives elsewhere)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    source: Annotated[str, Field(max_length=64)] = ""
    partition: Annotated[int, Field(ge=0)]
    batches: Annotated[list[EventBatch], Field(min_length=1)]


class FieldError(BaseModel):
    """One problem with one field, phrased for a client developer."""

    field: str
    message: str


# A dead letter must fit in one Kafka message (4 MiB): JSON writes a control character in 6 bytes.
MAX_RAW_CHARS = 512 * 1024


def kept_raw(text: str) -> str:
    """What a dead letter keeps of a refused input: all of it, unless it could not fit in one Kafka message
    (then the start, and where the whole input is: a message's topic, partition and offset)."""
    if len(text) <= MAX_RAW_CHARS:
        return text
    return f"{text[:MAX_RAW_CHARS]}...[{len(text) - MAX_RAW_CHARS} more characters not kept]"


class DeadLetter(BaseModel):
    """An input the engine refused, kept with the reason and the raw bytes so nothing is silently lost."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    dead_letter_id: str
    received_at: AwareDatetime
    source: Annotated[str, Field(max_length=64)]  # collector, producer, processor:<name>, sink:<name>
    app_id: str = ""
    reason: str
    errors: list[FieldError] = Field(default_factory=list)
    event_id: str | None = None
    user_id: str | None = None
    event_type: str | None = None
    raw: str = Field(description="The refused input as received (UTF-8, invalid bytes replaced)")
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None


EVENT_BATCH_ADAPTER: TypeAdapter[EventBatch] = TypeAdapter(EventBatch)


def received_now() -> datetime:
    from datetime import UTC

    return datetime.now(UTC)
