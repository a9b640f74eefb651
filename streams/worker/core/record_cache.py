"""Decoded student records between commits: a write-back cache in front of the Faust table.

Without it every message costs its student two RocksDB reads (Faust's ``get`` checks ``in`` first), a JSON
decode, an encode, a RocksDB write and a changelog message, whatever else it does: that was ~30 % of the
worker's time draining a topic (profiled). With it the events path reads and changes the decoded record in
memory, and a changed record reaches the table (RocksDB and its changelog) once per commit, however many
messages changed it meanwhile: Kafka Streams' record cache, and what Quix Streams' state transactions do.

Why nothing is lost: the worker commits an events offset only after writing the records changed up to it (the
write-back runs first in the commit path: ``faust_internals.commit_only_when_acknowledged``) and each
partition's position after its records. A crash loses what the cache held and Kafka re-delivers exactly the
messages behind it. Timers and web views do not write here: they write through, once Kafka has acknowledged
their outputs (``core.engine``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.pipeline import UserRecord


@dataclass
class Pending:
    """What the next flush writes: changed records (key -> record, partition) and each partition's position
    (the last events offset folded), to be written after that partition's records."""

    records: list[tuple[bytes, UserRecord, int]] = field(default_factory=list)
    positions: dict[int, int] = field(default_factory=dict)


class RecordCache:
    """Up to ``max_records`` decoded records by table key, and which of them changed since the last flush."""

    def __init__(self, max_records: int) -> None:
        self.max_records = max_records
        self._records: dict[bytes, tuple[UserRecord, int]] = {}  # key -> (record, partition), oldest first
        self._changed: set[bytes] = set()
        self._positions: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._records)

    @property
    def changed(self) -> int:
        return len(self._changed)

    def get(self, key: bytes) -> UserRecord | None:
        entry = self._records.get(key)
        return entry[0] if entry is not None else None

    def keep(self, key: bytes, record: UserRecord, partition: int) -> None:
        """A record as the table holds it (just read, or just written through)."""
        self._records[key] = (record, partition)
        self._changed.discard(key)

    def written(self, key: bytes) -> None:
        """The cached record was written to the table by someone else (written through): nothing pending."""
        self._changed.discard(key)

    def change(self, key: bytes, record: UserRecord, partition: int) -> None:
        """A record the events path changed: the table gets it at the next flush."""
        self._records[key] = (record, partition)
        self._changed.add(key)

    def advance(self, partition: int, offset: int) -> None:
        """Events up to ``offset`` of ``partition`` are folded into the records here."""
        if offset > self._positions.get(partition, -1):
            self._positions[partition] = offset

    def position(self, partition: int) -> int | None:
        """The partition's last folded offset not written to the table yet, or None."""
        return self._positions.get(partition)

    def take_pending(self) -> Pending:
        """What changed since the last flush (now considered written) and the positions reached."""
        pending = Pending([(k, *self._records[k]) for k in self._changed], self._positions)
        self._changed, self._positions = set(), {}
        return pending

    def forget(self, key: bytes) -> None:
        self._records.pop(key, None)
        self._changed.discard(key)

    def keep_partitions(self, owned: set[int]) -> int:
        """Drop every entry (changed or not) and position of partitions not in ``owned``; how many records went.

        After a rebalance another worker may have changed those students: what this one held is stale, and what
        it changed without committing is re-delivered to the partition's owner."""
        gone = [k for k, (_, p) in self._records.items() if p not in owned]
        for key in gone:
            self.forget(key)
        self._positions = {p: o for p, o in self._positions.items() if p in owned}
        return len(gone)

    def trim(self) -> None:
        """Drop the oldest unchanged records beyond ``max_records`` (the table still has them)."""
        excess = len(self._records) - self.max_records
        if excess <= 0:
            return
        for key in [k for k in self._records if k not in self._changed][:excess]:
            del self._records[key]
