"""The worker core: fold a gather of events messages into student records, re-score, emit, and keep what the
at-least-once rules need (outbox, positions, owed re-scores), over the interfaces in ``core.ports``.

Throughput comes from what one message carries: each student seen in a gather is loaded once, folded message by
message (each decoded message is dropped once folded), re-scored at most once, with all re-scores of the gather
done in one model call, and written back at most once per commit (``core.record_cache``). Everything a student's
record goes through is plain Python in ``processors.pipeline``.

The rules (each one a chaos-suite finding; ``tests/unit/test_worker_core.py`` holds them without Kafka):
- A message re-delivered after a crash or a rebalance is skipped whole: each record keeps the offset of the last
  message folded into it. Event ids already in the record are skipped too (client retries).
- Each partition's position (its last folded offset) is written into the table after its records, so a restore,
  a prefix of the changelog, never claims more than the records it restores.
- On the events path a record changes in the cache and its outputs stay in its outbox until the batch is
  committed; outside it (timers, API) a record is stored only once Kafka acknowledged its outputs.
- A debounced re-score is owed in the record until Kafka acknowledges its outputs; a restore sends the outbox of
  uncommitted records again and re-scores what is owed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from kafka_io.producer import key_partition
from processors.calendar import is_dormant
from processors.cohort import CourseCohorts
from processors.experiments.arms import Arms
from processors.notify.sendtime import CohortActivity
from processors.pipeline import (
    OWED_KEY,
    ScoreOutcome,
    ScoreRequest,
    UserRecord,
    ingest_and_play,
    outbox_offset,
    owe_score,
    owed_request,
    request_context,
    rescore,
)
from processors.policy import PolicyConfig
from processors.profile import ProfileCohorts
from schemas.events import EVENT_TYPES
from schemas.privacy import ErasureRequest
from schemas.topics import TopicCatalogue
from streams.worker import metrics as m
from streams.worker.core.backpressure import Backlog
from streams.worker.core.clock import ClockIndex, EngineClock
from streams.worker.core.decoding import decode_message
from streams.worker.core.outputs import Emitter
from streams.worker.core.ports import (
    Calendars,
    GameRulesSource,
    Message,
    Models,
    Outputs,
    Ownership,
    RecordTable,
)
from streams.worker.core.record_cache import RecordCache
from streams.worker.core.table_keys import is_student_key, position_key

KNOWN_EVENT_TYPES = frozenset(EVENT_TYPES)
# Records written at a time when a timer stores what it deferred (``store_acknowledged``): the backlog bound is
# checked between slices.
STORE_SLICE = 256


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record ready to be written: its bytes and what the event-clock index keeps of it."""

    key: bytes
    raw: bytes
    clock_at: float
    dormant: bool


@dataclass(slots=True)
class _Pending:
    """A student whose re-score waits for the debounce window, with what triggered it."""

    due: float
    request: ScoreRequest


@dataclass(slots=True)
class _Folded:
    """A student's part of one gather: their record, whether anything new was folded into it, and when from."""

    record: UserRecord
    partition: int  # of the message their batch came from: the partition that owns them
    folded: bool = False  # False while every message of theirs was a re-delivery
    meaningful: bool = False  # anything that calls for a re-score (processors.signals)
    newest: datetime | None = None  # newest event_time of the new events folded (ApplyResult.newest)
    received: datetime | None = None  # newest received_at
    xp_changed: bool = False  # a standing is owed (one per student and gather, after the last message)


ScoreItem = tuple[UserRecord, ScoreRequest, int | None]  # record, why, partition on the events path (else None)


def _newest(events: Sequence[dict[str, Any]], field: str) -> datetime | None:
    newest: datetime | None = None
    for e in events:
        raw = e.get(field) if isinstance(e, dict) else None
        if isinstance(raw, str):
            try:
                t = datetime.fromisoformat(raw)
            except ValueError:
                continue
            if t.tzinfo is not None and (newest is None or t > newest):
                newest = t
    return newest


class WorkerCore:
    """One worker's students: their records, re-scores and outputs. Callers hold ``lock`` around every method
    that reads or changes records (the events path, timers and web views interleave at awaits)."""

    def __init__(
        self,
        *,
        table: RecordTable,
        outputs: Outputs,
        ownership: Ownership,
        topics: TopicCatalogue,
        partitions: int,
        models: Models,
        policy: PolicyConfig,
        courses: Calendars,
        backlog: Backlog,
        clock: EngineClock,
        debounce_seconds: float,
        record_cache_size: int,
        rules: GameRulesSource | None = None,
        arms: Arms | None = None,
    ) -> None:
        self.table = table
        self.outputs = outputs
        self.ownership = ownership
        self.topics = topics
        self.partitions = partitions
        self.models = models
        self.policy = policy
        self.courses = courses
        self.backlog = backlog
        self.clock = clock
        self.debounce_seconds = debounce_seconds
        self.rules = rules  # the gamification rules in force (None: gamification off)
        self.arms = arms  # experiments and the bandit's posteriors (None: the policy alone chooses the type)
        self.emit = Emitter(outputs, topics)
        # Records the events path changed reach the table once per commit (core.record_cache).
        self.records = RecordCache(record_cache_size)
        self.cohorts = CourseCohorts()  # the local students' standing in their courses (processors.cohort)
        # The courses' activity by local weekday x hour: the send-time fallback for students with few observations
        # (processors.notify.sendtime; in memory, refilled by live events after a restart).
        self.activity = CohortActivity(policy.send_time)
        # The courses' mean profile values: the priors the students' daily profiles are smoothed toward
        # (processors.profile; in memory, refilled as students are profiled after a restart).
        self.profiles = ProfileCohorts()
        self.clock_index = ClockIndex()
        self._pending: dict[str, _Pending] = {}
        # Students a debounce tick re-scored whose outputs Kafka has not acknowledged yet (``flush_debounced``).
        self._unconfirmed: set[str] = set()
        self._last_scored: dict[str, float] = {}
        # Records are read, changed and written back around awaits (sends): without one lock a timer or a web view
        # could interleave and one of the two writes would lose the other's update (e.g. an intervention recorded
        # in the history, so caps and cooldowns would not see it).
        self.lock = asyncio.Lock()

    def now(self) -> datetime:
        return self.clock.now()

    def owned(self) -> set[int]:
        return self.ownership.owned()

    # --- the events path ------------------------------------------------------------------------------------------
    def fold(self, batch: Sequence[Message]) -> None:
        """Fold the gather message by message, then re-score each student it touched once (one model call).

        A decoded message dies once its students are folded: holding a whole gather's decoded JSON at once (up
        to 500 messages of 1,000 events) made decoding cost twice as much, in fresh memory and in collections
        that walked it (measured: 1.4 against 3-5 µs per event)."""
        students: dict[str, _Folded] = {}
        counts: dict[str, int] = {}
        newest_message = 0.0
        for message in batch:
            newest_message = max(newest_message, message.timestamp or 0.0)
            decoded = decode_message(message.value, message.partition, self.partitions)
            for raw, reason in decoded.refused:
                self.emit.dead_letter(raw, reason, source=message)
            for user_id, one in decoded.accepted:
                if "erase" in one:  # schemas.privacy: what was folded of the student goes with them
                    students.pop(user_id, None)
                    self.erase(user_id, one["erase"], message.partition)
                else:
                    self._fold(students, counts, user_id, one["events"], message.partition, message.offset)
        m.MESSAGES_PROCESSED.inc(len(batch))
        m.GATHER_MESSAGES.observe(len(batch))
        if newest_message:
            m.LAG_SECONDS.set(max(0.0, time.time() - newest_message))
        for label, n in counts.items():
            m.EVENTS_PROCESSED.labels(label).inc(n)

        wall = time.time()
        to_score: list[ScoreItem] = []
        untouched: list[tuple[str, _Folded]] = []
        for user_id, f in students.items():
            if not f.folded:
                continue  # every message of theirs was folded before (re-delivered): the record is as it should be
            if f.xp_changed:
                self.emit.standing(f.record, user_id)
            newest = f.newest
            if newest is not None:
                self.clock.advance(f.partition, newest, wall)
            if not f.meaningful:
                untouched.append((user_id, f))
                continue
            # Event clock: the student's own newest event is their 'now' (their partition has got that far).
            as_of = newest if self.clock.on_events and newest is not None else self.now()
            request = ScoreRequest(user_id, as_of, "events", newest, f.received)
            last = self._last_scored.get(user_id, 0.0)
            if wall - last >= self.debounce_seconds:
                to_score.append((f.record, request, f.partition))
            else:
                self._pending[user_id] = _Pending(last + self.debounce_seconds, request)
                owe_score(f.record, request)  # stored with the record: a crash before the re-score cannot lose it
                untouched.append((user_id, f))
        today = self.now().date() if untouched else None
        for user_id, f in untouched:
            self.store(user_id, f.record, f.partition, today)
        self.score_and_store(to_score)
        for message in batch:  # written after the records at the next commit (``flush_records``)
            self.records.advance(message.partition, message.offset)

    def _fold(
        self,
        students: dict[str, _Folded],
        counts: dict[str, int],
        user_id: str,
        events: list[dict[str, Any]],
        partition: int,
        offset: int,
    ) -> None:
        """Fold one message's batch of a student into their record, unless the message was folded before."""
        f = students.get(user_id)
        if f is None:
            record = self.load(user_id.encode()) or UserRecord.load(None, user_id)
            self._settle_outbox(user_id, record, partition)
            f = students[user_id] = _Folded(record, partition)
        record = f.record
        if offset <= record.source_offset:
            m.REDELIVERED_MESSAGES.inc()
            return
        record.source_offset = offset
        # Events later than their arrival plus the skew the collector accepts are refused (from writers without its
        # checks); without a received_at, the arrival is now.
        received = _newest(events, "received_at")
        not_after = (
            received.timestamp() if received is not None else time.time()
        ) + self.clock.max_lead.total_seconds()
        result, game = ingest_and_play(
            record, user_id, events, self.activity, self.rules.current() if self.rules is not None else None,
            self.arms, not_after,
        )  # fmt: skip
        if game is not None:
            self.emit.game(record, game)
            f.xp_changed = f.xp_changed or game.standing_row is not None
        f.folded = True
        f.meaningful = f.meaningful or result.meaningful
        for e in events:
            t = e.get("event_type") if isinstance(e, dict) else None
            label = t if t in KNOWN_EVENT_TYPES else "other"  # bounded label set whatever is on the topic
            counts[label] = counts.get(label, 0) + 1
        if result.duplicates:
            m.DUPLICATE_EVENTS.inc(result.duplicates)
        for milestone in result.milestones:
            self.emit.milestone(record, user_id, milestone)
        if result.rejected:
            self._refuse_events(record, user_id, events, result.rejected, (partition, offset))
        newest = result.newest
        if newest is not None and (f.newest is None or newest > f.newest):
            f.newest = newest
        if received is not None and (f.received is None or received > f.received):
            f.received = received

    def _refuse_events(
        self,
        record: UserRecord,
        user_id: str,
        events: list[dict[str, Any]],
        rejected: list[tuple[str | None, str]],
        event_in: tuple[int, int],
    ) -> None:
        """A dead letter per event the fold refused: the event as it came (only its ids when it has no id or cannot
        be encoded again) and the message holding it, so nothing refused is lost."""
        by_id = {e.get("event_id"): e for e in events if isinstance(e, dict)}
        for event_id, reason in rejected:
            m.REJECTED_EVENTS.inc()
            event = by_id.get(event_id) if event_id is not None else None
            try:
                raw = orjson.dumps(event if event is not None else {"user_id": user_id, "event_id": event_id})
            except TypeError:  # e.g. an integer beyond 64 bits from a lenient decoder
                raw = orjson.dumps({"user_id": user_id, "event_id": event_id})
            self.emit.dead_letter(raw, reason, record, event_in=event_in)

    def _settle_outbox(self, user_id: str, record: UserRecord, partition: int) -> None:
        """Drop from the outbox the outputs of batches already committed (their outputs were acknowledged before
        the commit), unless a debounce tick's outputs in it may still be waiting for Kafka.

        Output by output (each carries the offset of the batch it came from), not all at once: a student whose
        messages come faster than the commits always has a newest batch not committed yet, and an outbox emptied
        only when the whole of it was committed grew with every batch (a replay at 0.1 s a day: 631 outputs,
        1 MB, until Kafka refused to take the record and the worker exited, again after each restart)."""
        if record.outbox and user_id not in self._unconfirmed:
            committed = self.ownership.committed(partition)
            if committed is not None:
                record.outbox = [o for o in record.outbox if outbox_offset(o, record) >= committed]

    # --- positions and write-back --------------------------------------------------------------------------------
    def position(self, partition: int) -> int | None:
        """The last offset of ``partition`` folded (cached, else as stored in the table), or None."""
        cached = self.records.position(partition)
        if cached is not None:
            return cached
        raw = self.table.get(position_key(partition))
        return int(raw) if raw is not None else None

    def flush_records(self) -> None:
        """Write the changed records, then each partition's position; records of partitions this worker no
        longer owns are dropped instead (their new owner is re-delivered the messages behind them)."""
        pending = self.records.take_pending()
        if pending.records or pending.positions:
            owned = self.owned()
            for key, record, partition in pending.records:
                if partition in owned:
                    self.table.put(key, record.to_bytes(), partition)
                else:
                    self.records.forget(key)
            for partition, offset in pending.positions.items():
                if partition in owned:
                    self.table.put(position_key(partition), str(offset).encode(), partition)
        self.records.trim()
        m.CACHED_RECORDS.set(len(self.records))

    def rebalanced(self) -> int:
        """Before the seek that follows an assignment: cached records of partitions now elsewhere go (how many)."""
        return self.records.keep_partitions(self.owned())

    def student_keys(self) -> list[bytes]:
        """The local table's students (not the position entries), including those seen since the last commit."""
        self.flush_records()
        return [k for k in list(self.table.keys()) if is_student_key(k)]

    # --- records --------------------------------------------------------------------------------------------------
    def record(self, user_id: str) -> UserRecord | None:
        """The student's record from the local table; None if no event of theirs was seen here."""
        if not is_student_key(user_id.encode()):
            return None
        return self.load(user_id.encode())

    def load(self, key: bytes) -> UserRecord | None:
        """The record from the cache, else from the table (then cached if its partition is this worker's: a
        standby copy of another worker's partition must not outlive a rebalance in the cache)."""
        record = self.records.get(key)
        if record is not None:
            return record
        raw = self.table.get(key)
        if raw is None:
            return None
        record = UserRecord.from_bytes(raw)
        partition = key_partition(key, self.partitions)
        if partition in self.owned():
            self.records.keep(key, record, partition)
        return record

    def store(self, user_id: str, record: UserRecord, partition: int | None = None, today: date | None = None) -> None:
        """On the events path (``partition``: that of the message the user's batch came from) the record is changed
        in the cache and reaches the table at the next commit; outside the stream (timers, web views) it is written
        at once, in the partition that owns the user's key. ``today``: the engine's date, when the caller has it."""
        if partition is None:
            self.write(self.encoded(user_id, record, today))
            return
        key = user_id.encode()
        self.records.change(key, record, partition)
        if self.clock_index.built:
            self.clock_index.note(key, record.clock_at, self.dormant(record, today))

    def encoded(self, user_id: str, record: UserRecord, today: date | None) -> Encoded:
        dormant = self.dormant(record, today) if self.clock_index.built else False
        return Encoded(user_id.encode(), record.to_bytes(), record.clock_at, dormant)

    def write(self, encoded: Encoded) -> None:
        """Write through: the table has the record now (a cached copy of it is no longer pending)."""
        key = encoded.key
        self.table.put(key, encoded.raw, key_partition(key, self.partitions))
        self.records.written(key)
        self.clock_index.note(key, encoded.clock_at, encoded.dormant)

    def dormant(self, record: UserRecord, today: date | None = None) -> bool:
        return is_dormant(record.state.courses, self.courses.calendars(), today or self.now().date())

    def erase(self, user_id: str, request: Any, partition: int | None = None) -> None:
        """Remove the student from this worker: the record (a tombstone in the changelog), and what memory holds
        of them (pending re-scores, course cohorts, the clock index, tier counts); confirm on the erasures topic.
        ``partition``: of the message that carried the request, when there was one (else the key's)."""
        try:
            erasure = ErasureRequest.model_validate(request)
        except ValidationError as exc:
            self.emit.dead_letter(orjson.dumps({"erase": request}), f"not an ErasureRequest: {exc.errors()[:3]}")
            return
        key = user_id.encode()
        cached = self.records.get(key)
        self.records.forget(key)  # a record never written to the table yet exists only there
        raw = self.table.get(key)
        record = cached or (UserRecord.from_bytes(raw) if raw is not None else None)
        if record is not None:
            self.emit.forget_tier(record.tier)
            if record.game.seq:
                self.emit.forget_standing(user_id)
        if raw is not None:
            self.table.delete(key, partition if partition is not None else key_partition(key, self.partitions))
        self._pending.pop(user_id, None)
        self._last_scored.pop(user_id, None)
        self.cohorts.forget(user_id)
        self.clock_index.drop(key)
        self.emit.erased(erasure.erasure_id, found=record is not None)

    # --- scoring --------------------------------------------------------------------------------------------------
    def score_and_store(
        self, items: Sequence[ScoreItem], clock: datetime | None = None, deferred: list[Encoded] | None = None
    ) -> list[ScoreOutcome]:
        """Score in one model call, send the updates and interventions, store each record.

        Each item's third element is the partition of the message the user's batch came from on the events path
        (and for a debounce tick, which re-scores as the events path does), or None outside the stream.
        ``clock``: the engine's 'now' for the policy, when the caller has it (else read here).
        ``deferred``: timers and the API pass a list; records go there instead of the table, to be stored once
        Kafka acknowledged the outputs (``store_acknowledged``). A record stored before its outputs were
        acknowledged would, after a crash, say they were sent. The events path stores at once and keeps the
        outputs in the record's outbox until the batch is committed.
        """
        if not items:
            return []
        now = datetime.now(UTC)
        clock = clock or self.now()
        records, requests = [r for r, _, _ in items], [q for _, q, _ in items]
        outcomes = rescore(
            records, requests, self.models.current(), self.policy, now, clock, self.courses.calendars(), self.cohorts,
            self.activity, self.profiles, self.arms,
        )  # fmt: skip
        sent_at = time.time()
        today = clock.date()
        for (record, request, partition), outcome in zip(items, outcomes, strict=True):
            self.emit.risk(outcome, request.user_id, sent_at, record if partition is not None else None)
            if deferred is None:
                self.store(request.user_id, record, partition, today)
            else:
                deferred.append(self.encoded(request.user_id, record, today))  # bytes: records die young
            self._last_scored[request.user_id] = sent_at
            self._pending.pop(request.user_id, None)
        return outcomes

    async def outputs_acknowledged(self, timeout: float = 60.0) -> None:
        """Wait until Kafka has acknowledged everything emitted so far; raise if it has not, so the offsets of
        the events behind those outputs are not committed (they are re-delivered and re-processed instead)."""
        if not self.outputs.in_flight:
            return
        left = await asyncio.get_running_loop().run_in_executor(None, self.outputs.flush, timeout)
        if left:
            raise RuntimeError(f"{left} outputs not acknowledged by Kafka within {timeout:.0f} s")

    async def store_acknowledged(self, deferred: list[Encoded]) -> None:
        """Store what ``score_and_store`` deferred once Kafka has acknowledged its outputs; not the records of
        partitions that moved to another worker meanwhile (their new owner has its own state to write).

        With nothing deferred there is nothing to wait for: the events path's outputs are waited for where
        offsets are committed, and waiting here, under the lock, would stall the events path."""
        if not deferred:
            return
        await self.outputs_acknowledged()
        for start in range(0, len(deferred), STORE_SLICE):
            await self.backlog.ebb()
            owned = self.owned()  # after each wait: a rebalance may have run meanwhile
            for encoded in deferred[start : start + STORE_SLICE]:
                if key_partition(encoded.key, self.partitions) in owned:
                    self.write(encoded)

    def request_context(self, record: UserRecord, now: datetime) -> dict[str, Any]:
        """The signals, factors, zone and locale a request made outside the policy carries (the API's trigger)."""
        return request_context(record, now, self.courses.calendars())

    async def score_now(self, user_id: str, trigger: str = "manual") -> ScoreOutcome | None:
        """Re-score one student immediately (the API's 'recalculate'); None if the student is unknown."""
        async with self.lock:
            record = self.record(user_id)
            if record is None:
                return None
            request = ScoreRequest(user_id, self.now(), trigger)  # type: ignore[arg-type]
            deferred: list[Encoded] = []
            outcomes = self.score_and_store([(record, request, None)], deferred=deferred)
            await self.store_acknowledged(deferred)
        return outcomes[0]

    # --- debounced re-scores --------------------------------------------------------------------------------------
    async def flush_debounced(self) -> None:
        """Re-score students whose debounce window has passed, and wait for Kafka to acknowledge their updates
        without holding the lock.

        A tick runs ten times a second, and under load almost every student is waiting for one: holding the lock
        through Kafka's acknowledgement (20-100 ms) stalled the events path for up to a third of the time
        (measured at 20,000 events/s). So each re-scored record is changed in the cache as on the events path,
        its outputs kept in its outbox, and it still says the re-score is owed until Kafka has acknowledged
        them. A commit that writes it meanwhile writes it owed; after a crash the new owner sends the outbox
        again and re-scores (``restore_owed``), so no update or intervention is lost, at worst repeated under
        the same id.
        """
        async with self.lock:
            scored = self._score_due()
        if not scored:
            return
        try:
            await self.outputs_acknowledged()
        except Exception:
            self._unconfirmed.difference_update(user_id for user_id, _, _ in scored)
            raise  # still owed: re-scored after the restart (faust_internals: why a stuck write ends the worker)
        async with self.lock:
            self._confirm(scored)

    def _score_due(self) -> list[tuple[str, UserRecord, Any]]:
        """Re-score the students whose window has passed, as on the events path (cache, outbox), leaving each
        record owed; the students, records and what they owe, for ``_confirm``."""
        wall = time.time()
        due = [p for p in self._pending.values() if p.due <= wall]
        owned = self.owned() if due else set()
        items: list[ScoreItem] = []
        for p in due:
            user_id = p.request.user_id
            self._pending.pop(user_id, None)
            partition = key_partition(user_id.encode(), self.partitions)
            if partition not in owned:
                continue  # the partition moved away: its new owner finds the re-score owed in the record
            record = self.record(user_id)
            if record is not None:
                items.append((record, p.request, partition))
        owed = [record.owed for record, _, _ in items]
        self.score_and_store(items)
        scored = []
        for (record, request, _), was_owed in zip(items, owed, strict=True):
            record.owed = was_owed  # until Kafka acknowledges the outputs: see flush_debounced
            self._unconfirmed.add(request.user_id)
            scored.append((request.user_id, record, was_owed))
        return scored

    def _confirm(self, scored: list[tuple[str, UserRecord, Any]]) -> None:
        """Kafka acknowledged a tick's outputs: what the records owed is paid (unless they changed meanwhile)."""
        owned = self.owned()
        for user_id, record, owed in scored:
            self._unconfirmed.discard(user_id)
            key = user_id.encode()
            partition = key_partition(key, self.partitions)
            if record.owed == owed and partition in owned and self.records.get(key) is record:
                record.owed = None
                self.records.change(key, record, partition)

    # --- after a restore ------------------------------------------------------------------------------------------
    async def restore_owed(self) -> tuple[int, int]:
        """After the table is restored (start-up, rebalance): what records say is still owed; (re-scores
        restored, outputs sent again).

        - Re-scores waiting for their debounce window when the partition's previous owner stopped or crashed;
          without this the students' newest events would wait for the silence pass (a day) to show in their risk.
        - For records whose batch is not committed yet (at or past the committed offset), the outputs in their
          outbox are sent again and the student is re-scored: the previous owner may have crashed after Kafka
          acknowledged the record but before it acknowledged the outputs sent beside it, and the re-delivered
          message will be skipped as folded. Outputs carry their ids, so a second copy replaces the first.
        """
        owned = self.owned()
        committed = {p: self.ownership.committed(p) for p in owned}
        owed_mark = f'"{OWED_KEY}":'.encode()
        restored = resent = 0
        async with self.lock:
            self.flush_records()
            for key, raw in list(self.table.items()):
                partition = key_partition(key, self.partitions)
                if partition not in owned or not is_student_key(key):
                    continue
                # Cheap pre-filters on the bytes (the mark cannot occur inside an encoded string: quotes there
                # are escaped), so that only the records concerned are decoded.
                start = committed.get(partition)
                uncommitted = start is None or UserRecord.offset_in(raw) >= start
                if not uncommitted and owed_mark not in raw:
                    continue
                user_id = key.decode()
                record = UserRecord.from_bytes(raw)
                request = owed_request(record, user_id)
                if uncommitted or request is not None:  # owed: a debounce tick's outputs may be unacknowledged
                    for topic, out_key, value, *_ in record.outbox:
                        self.outputs.send_encoded(out_key.encode(), value.encode(), topic=topic)
                        resent += 1
                    if request is None:  # replays: as of the record's own clock, not the wall clock
                        event_clock = self.clock.on_events and record.clock_at
                        as_of = datetime.fromtimestamp(record.clock_at, UTC) if event_clock else self.now()
                        request = ScoreRequest(user_id, as_of, "events")
                if request is None or user_id in self._pending:
                    continue
                if not self.clock.on_events:
                    request = replace(request, as_of=self.now())
                self._pending[user_id] = _Pending(0.0, request)
                restored += 1
        if restored or resent:
            m.OWED_RESTORED.inc(restored)
            m.OUTPUTS_RESENT.inc(resent)
        return restored, resent
