"""The workers' table in a new catalogue (more partitions): its changelog's name, and a record as it moves.

A record's offsets belong to the old events topic: the offset of the last message folded (re-deliveries at or
below it are skipped) and the batch each outbox output came from. In the new catalogue the events topic starts
again at offset 0, so both are cleared; the outbox is empty anyway once the old catalogue was drained (every
batch committed, so its outputs were acknowledged). The per-partition positions are not carried: the new
partitions have none yet. Everything else (signals, streaks, XP, a re-score still owed) moves as it is.
"""

from __future__ import annotations

from config.settings import Settings
from kafka_io.catalogue_move import Carried
from processors.pipeline import UserRecord
from schemas.topics import TopicSpec
from streams.worker.core.table_keys import is_student_key

TABLE = "user-state"


def app_id(prefix: str) -> str:
    """The workers' Faust app (and consumer group) of a catalogue."""
    return f"{prefix}-worker"


def changelog_topic(prefix: str) -> str:
    """Where Faust keeps the workers' table of a catalogue (``{app id}-{table}-changelog``)."""
    return f"{app_id(prefix)}-{TABLE}-changelog"


def changelog_spec(prefix: str, partitions: int, settings: Settings) -> TopicSpec:
    """The changelog as the worker's Faust creates it: compacted, one partition per events partition."""
    return TopicSpec(changelog_topic(prefix), partitions, cleanup_policy="compact", retention_ms=-1,
                     extra_config={"min.insync.replicas": str(settings.kafka_min_insync_replicas)})  # fmt: skip


def moved_record(key: bytes, value: bytes) -> bytes | None:
    """The record as the new catalogue's workers should restore it; None for a position entry (not carried)."""
    if not is_student_key(key):
        return None
    record = UserRecord.from_bytes(value)
    record.source_offset = -1
    record.outbox = []
    return record.to_bytes()


def carried_table(old_prefix: str, old_partitions: int, settings: Settings) -> Carried:
    """The workers' table of ``old_prefix`` to carry into the settings' catalogue."""
    return Carried(
        source=TopicSpec(changelog_topic(old_prefix), old_partitions, cleanup_policy="compact"),
        target=changelog_spec(settings.topic_prefix, settings.event_partitions, settings),
        newest_only=True,
        rewrite=moved_record,
    )
