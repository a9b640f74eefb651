"""The stream-processing worker: a Faust app with one table of student records and the agents around it.

Throughput comes from what one message carries, not from Faust settings: each Kafka message is a batch of
events of one student (``EventBatch``) or of many (``PartitionBatch``), ``noack_take`` gathers up to
``worker_take_max`` messages, and each student seen in that gather is loaded once, folded message by message
(each decoded message is dropped once folded), re-scored at most once, with all re-scores of the gather done in
one model call, and written back at most once per commit (``streams.worker.record_cache``). Everything a
student's record goes through is plain Python in ``processors.pipeline``; this module only moves bytes between
Kafka, the table and those functions.

Processing guarantee: at-least-once with idempotent state updates. A message re-delivered after a crash or a
rebalance is skipped whole: each record keeps the offset of the last message folded into it (a student's
messages all sit in one partition, in order). Event ids already in the record are skipped too
(``processors.state``), which catches client retries: the same event sent again in another message.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.types import TP, EventT
from pydantic import ValidationError

from access.keys import KeyRing
from config.settings import Settings
from models.base import RiskModel
from models.registry import ModelRegistry
from models.serving import ModelProvider
from processors.calendar import is_dormant
from processors.cohort import CourseCohorts
from processors.pipeline import (
    OWED_KEY,
    ScoreOutcome,
    ScoreRequest,
    UserRecord,
    ingest,
    owe_score,
    owed_request,
    rescore,
)
from processors.policy import PolicyConfig, policy_from_file
from schemas.events import EVENT_TYPES
from schemas.privacy import ErasureDone, ErasureRequest
from schemas.topics import catalogue
from streams.admin import group_assigned_partitions
from streams.producer import EventProducer
from streams.worker import metrics as m
from streams.worker.api import admission_middleware, register_views
from streams.worker.backpressure import Backlog
from streams.worker.commits import (
    commit_only_when_acknowledged,
    commit_past_duplicate_acknowledgements,
    exit_to_be_restarted,
)
from streams.worker.courses import CourseDirectory
from streams.worker.fetching import fetch_within
from streams.worker.gaps import Refetched, StalledTails, missing_offsets, read_offsets
from streams.worker.local_state import discard_unless_stopped_cleanly, mark_stopped_cleanly
from streams.worker.partitioning import at_partition, key_partition, writing_as
from streams.worker.record_cache import RecordCache

log = logging.getLogger(__name__)

# Table keys of the per-partition positions (``_store_positions``); no student id can start with it
# (schemas.events.Identifier starts with a letter or digit) and the worker refuses one that does.
POSITION_KEY_PREFIX = "#position:"
POSITION_KEY_PREFIX_BYTES = POSITION_KEY_PREFIX.encode()


def position_key(partition: int) -> bytes:
    return f"{POSITION_KEY_PREFIX}{partition}".encode()


KNOWN_EVENT_TYPES = frozenset(EVENT_TYPES)
SILENCE_CHUNK = 256  # records decoded, scored (one model call) and stored at a time in an event-clock silence pass
# The garbage collector: a collection of the youngest generation every this many new objects (Python's default
# is 700). Decoding one record makes ~1,000 small objects that all die with the re-score; at 700, collections
# ran inside every decode and promoted live records to older generations, and full collections took ~40% of
# a silence pass (profiled on OULAD). Memory held is the same: nothing lives longer, it is only looked at less.
GC_YOUNG_THRESHOLD = 10_000
ASSIGNMENT_CHECK_SECONDS = 10.0
# A PartitionBatch with more refused batches than this is refused whole, in one dead letter (not one per item).
MAX_LETTERS_PER_MESSAGE = 10


@dataclass(frozen=True, slots=True)
class _Encoded:
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


def _highwater(consumer: Any, tp: TP) -> int | None:
    """The partition's end offset from the consumer's last fetch, or None (not fetched yet, or not assigned)."""
    try:
        end = consumer.highwater(tp)
    except Exception:  # assignment changing under us
        return None
    return int(end) if end is not None else None


def _span(offsets: list[int]) -> str:
    """A list of offsets for a log line: short lists whole, long ones as first..last (count)."""
    return str(offsets) if len(offsets) <= 10 else f"[{offsets[0]}..{offsets[-1]}] ({len(offsets)})"


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


class EngagementWorker:
    """Builds the Faust app (topics, table, agents, timers, web views) from the settings."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: RiskModel | None = None,
        policy: PolicyConfig | None = None,
    ) -> None:
        self.settings = settings
        # A fixed model (tests) or whatever the registry has promoted, reloaded on promotion.
        self.models = ModelProvider(
            None if model else ModelRegistry(settings.model_registry), check_seconds=settings.model_check_seconds
        )
        if model is not None:
            self.models.model = model
        self.policy = policy or (policy_from_file(settings.policy_path) if settings.policy_path else policy_from_file())
        self.topics = catalogue(settings.topic_prefix, settings.event_partitions)
        # Everything the worker emits (risk updates, interventions, milestones, dead letters) goes through one
        # confluent-kafka producer: a few µs per message against ~100 µs for Faust's ``topic.send``. Before Faust
        # commits offsets it flushes its own producer; that flush also waits for ours (below), so no offset is
        # committed before the outputs of its events are durable (at-least-once), without waiting for Kafka
        # after every batch. Timer passes (silence re-scores) still wait for their own outputs.
        self.outputs = EventProducer(settings.kafka_bootstrap, self.topics, source="processor")
        self.courses = CourseDirectory(
            settings.kafka_bootstrap, self.topics.courses.name, self.outputs.send_dead_letter
        )
        self.courses.start()
        url = f"http://{settings.worker_host}:{settings.worker_web_port}"
        self.keys = KeyRing.from_settings(settings)  # the API's keys: settings + registry, re-read on change
        self.app = faust.App(
            f"{settings.topic_prefix}-worker",
            broker=f"kafka://{settings.kafka_bootstrap}",
            store=settings.worker_store,
            datadir=str(worker_datadir(settings)),
            web_host=settings.worker_host,
            web_port=settings.worker_web_port,
            web_bind=settings.worker_host,
            web_application_options={"middlewares": [admission_middleware(settings, self.keys)]},
            canonical_url=url,
            topic_partitions=settings.event_partitions,
            topic_replication_factor=1,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.broker_session_timeout_seconds,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=settings.worker_commit_interval_seconds,
            key_serializer="raw",
            value_serializer="raw",
            producer_max_batch_size=settings.worker_changelog_batch_bytes,
            producer_linger=settings.worker_changelog_linger_ms / 1000,
        )
        # Records the events path changed reach the table once per commit (streams.worker.record_cache).
        self.records = RecordCache(settings.worker_record_cache_size)
        self.changelog_writes = commit_only_when_acknowledged(  # streams.worker.commits
            self.app, self._outputs_acknowledged_before_commit, write_back=self._write_back
        )
        # The events path and the timers wait here before writing more (streams.worker.backpressure: why).
        self.backlog = Backlog(
            self.changelog_writes,
            lambda: self.outputs.in_flight,
            lambda: self.outputs.delivered,
            settings.worker_max_unacknowledged_writes,
        )
        commit_past_duplicate_acknowledgements(self.app)  # streams.worker.commits: why
        fetch_within(self.app, settings.worker_fetch_max_wait_ms)  # streams.worker.fetching: why
        seek_to_committed = self.app.consumer.perform_seek

        async def _perform_seek() -> None:
            dropped = self.records.keep_partitions(self._owned_partitions())  # after a rebalance: see there
            if dropped:
                log.info("rebalance: dropped %d cached records of partitions now elsewhere", dropped)
            await seek_to_committed()
            await self._resume_from_positions()
            await self._restore_owed()  # after the seek: the committed offsets are known

        self.app.consumer.perform_seek = _perform_seek  # type: ignore[method-assign]
        self.events_topic = self._raw_topic(self.topics.events.name)
        self.users = self.app.Table(
            "user-state", default=None, partitions=settings.event_partitions, key_type=bytes, value_type=bytes
        )
        self._pending: dict[str, _Pending] = {}
        # Students a debounce tick re-scored whose outputs Kafka has not acknowledged yet (``_flush``).
        self._unconfirmed: set[str] = set()
        self._last_scored: dict[str, float] = {}
        self._watermark: datetime | None = None
        # Event clock: the newest event time per partition of the events topic. 'Now' is the lowest of them
        # (every partition has got that far), so a replay's partitions running at different speeds never
        # make a student's snapshot claim a day whose events were not processed yet.
        # A partition idle for a while (nothing new arrives) stops holding the clock back.
        self._partition_clock: dict[int, datetime] = {}
        self._partition_seen: dict[int, float] = {}  # wall time of each partition's last event batch
        self._tier_counts: dict[str, int] = {}
        self.cohorts = CourseCohorts()  # the local students' standing in their courses (processors.cohort)
        self._silence_keys: list[bytes] = []
        self._idle_uncommitted: dict[int, tuple[int, int]] = {}  # partition -> (committed, position), see unstick
        self._stalled = StalledTails(settings.worker_lost_message_grace_seconds)  # see _read_lost_tails
        self._unassigned_checks = 0  # consecutive assignment checks that found no partition here
        # Event clock only: each local student's clock_at, so a replay's silence pass (every tick, over all
        # students) finds who is due without reading every record. Built from the table on first use.
        self._clock_index: dict[bytes, tuple[float, bool]] | None = None  # key -> (clock_at, dormant)
        self.records_lock = asyncio.Lock()
        self._register()

    # --- wiring ---------------------------------------------------------------------------------------------
    def _raw_topic(self, name: str) -> faust.TopicT:
        """Values are our own JSON bytes (pydantic/orjson): Faust neither encodes nor decodes them."""
        return self.app.topic(name, key_type=bytes, value_type=bytes)

    def _register(self) -> None:
        self.app.agent(self.events_topic, name="process-events")(self._process)
        self.app.timer(max(0.05, self.settings.score_debounce_seconds / 3), name="flush-debounced")(self._flush)
        self.app.timer(self.settings.silence_tick_seconds, name="rescore-silent")(self._rescore_silent)
        self.app.timer(5.0, name="unstick-commits")(self._unstick_commits)
        grace = self.settings.worker_lost_message_grace_seconds
        self.app.timer(max(0.5, grace / 3), name="read-lost-tails")(self._read_lost_tails)
        self.app.timer(ASSIGNMENT_CHECK_SECONDS, name="watch-assignment")(self._watch_assignment)
        register_views(self)

    def now(self) -> datetime:
        """'Now' for signal windows: the wall clock, or in event-clock mode the low watermark of the partitions."""
        wall = datetime.now(UTC)
        if self.settings.worker_clock == "event":
            return self._low_watermark() or wall
        return max(wall, self._watermark) if self._watermark else wall

    def _low_watermark(self) -> datetime | None:
        clocks = self._partition_clock
        assigned = self._owned_partitions()
        if assigned:
            clocks = {p: t for p, t in clocks.items() if p in assigned}
        if not clocks:
            return None
        recent = time.time() - self.settings.event_clock_idle_seconds
        busy = [t for p, t in clocks.items() if self._partition_seen.get(p, 0.0) >= recent]
        return min(busy) if busy else max(clocks.values())  # all idle: everything sent has been processed

    # --- the agent --------------------------------------------------------------------------------------------
    async def _process(self, stream: AsyncIterable[Any]) -> None:
        # Faust's take_events acknowledges a batch when its generator moves on or closes, processed or not (a
        # stop or rebalance cancelling us mid-batch). noack_take acknowledges nothing: each batch is acknowledged
        # here once folded, so Faust never commits an offset whose message is not in the state, and a batch a
        # stop interrupts goes to the partition's next owner whole.
        async for batch in stream.noack_take(  # type: ignore[attr-defined]
            self.settings.worker_take_max, within=self.settings.worker_take_within_seconds
        ):
            await self.handle_batch(batch)
            for event in batch:
                await stream.ack(event)  # type: ignore[attr-defined]

    async def handle_batch(self, batch: Sequence[EventT[bytes]]) -> None:
        # Records are read, changed and written back around awaits (sends): without one lock a timer or a web
        # view could interleave and one of the two writes would lose the other's update (e.g. an intervention
        # recorded in the history, so caps and cooldowns would not see it).
        async with self.records_lock:
            await self.backlog.ebb()  # holding the batch: Faust's buffers fill and its consumer stops fetching
            skipped = await self._read_skipped(batch)
            if skipped:  # folded in offset order with the batch, then marked done for Faust's commits
                together: list[Any] = [*skipped, *batch]
                batch = sorted(together, key=lambda e: (e.message.partition, e.message.offset))
            self._handle_batch(batch)
            await self._mark_done(skipped)

    async def _read_skipped(self, batch: Sequence[EventT[bytes]]) -> list[Refetched]:
        """The messages the consumer skipped before this batch (``streams.worker.gaps``), read directly."""
        offsets: dict[int, list[int]] = {}
        for event in batch:
            offsets.setdefault(event.message.partition, []).append(event.message.offset)
        found: list[Refetched] = []
        for partition, seen in offsets.items():
            last = await self._folded_up_to(partition)
            missing = missing_offsets(seen, last)
            if missing:
                log.warning("partition %d: the consumer skipped offsets %s (last folded %d); reading them directly",
                            partition, missing, last)  # fmt: skip
                found.extend(await self._read_directly(partition, missing))
        return found

    async def _read_lost_tails(self) -> None:
        """Timer: messages the consumer handed to the stream that never reached a batch, with nothing after them
        in their partition to reveal the hole (``gaps.StalledTails``), read directly and folded."""
        consumer: Any = self.app.consumer
        owned = self._owned_partitions()
        self._stalled.keep_partitions(owned)
        async with self.records_lock:
            for partition in sorted(owned):
                tp = TP(self.topics.events.name, partition)
                # Faust's read offset is the last offset handed to the stream, except right after a seek, where
                # it is the next one to read: never past the end of the partition (the high watermark, minus 1).
                read, end = consumer._read_offset.get(tp), _highwater(consumer, tp)
                if read is None or end is None:
                    continue
                handed = min(read, end - 1)
                last = await self._folded_up_to(partition)
                missing = self._stalled.missing(partition, last, handed, time.monotonic())
                if not missing:
                    continue
                log.warning("partition %d: offsets %s were handed to the stream %.0f s ago and never folded; "
                            "reading them directly", partition, _span(missing),
                            self._stalled.grace_seconds)  # fmt: skip
                read = await self._read_directly(partition, missing)
                if read:
                    self._handle_batch(read)  # type: ignore[arg-type]  # shaped like Faust events (gaps.Refetched)
                    await self._mark_done(read)

    async def _read_directly(self, partition: int, missing: list[int]) -> list[Refetched]:
        """Read ``missing`` offsets of an events partition with a plain consumer (off the event loop); exit to be
        restarted if Kafka does not give them: folding on past them would lose them."""
        try:
            read, gone = await asyncio.get_running_loop().run_in_executor(
                None, read_offsets, self.settings.kafka_bootstrap, self.topics.events.name, partition, missing
            )
        except Exception as exc:  # Kafka unreachable: folding on past them would lose them
            exit_to_be_restarted(f"messages the consumer skipped could not be read: {exc!r}")
        if gone:
            log.warning("partition %d: offsets %s are no longer on the topic (retention)", partition, _span(gone))
        m.MESSAGES_REFETCHED.inc(len(read))
        return read

    async def _mark_done(self, refetched: Sequence[Refetched]) -> None:
        """Tell Faust the messages read directly are done: it commits only up to the first offset it has not
        seen acknowledged, and it never saw these."""
        for event in refetched:
            tp = TP(self.topics.events.name, event.message.partition)
            await self.app.consumer._add_gap(tp, event.message.offset, event.message.offset)  # type: ignore[attr-defined]

    async def _folded_up_to(self, partition: int) -> int:
        """The last offset of ``partition`` folded into the table: its stored position, else the one before the
        committed offset, else (nothing folded or committed yet) the one before its earliest offset on the topic,
        where the consumer starts (``auto_offset_reset=earliest``): a first batch that does not begin there means
        the consumer skipped the partition's first messages."""
        position = self._position(partition)
        if position is not None:
            return position
        committed = self._committed(partition)
        if committed is not None:
            return committed - 1
        return await self._earliest_offset(partition) - 1

    async def _earliest_offset(self, partition: int) -> int:
        tp = TP(self.topics.events.name, partition)
        try:
            earliest = await self.app.consumer.earliest_offsets(tp)
        except Exception as exc:  # Kafka unreachable: without it a skipped first message would go unseen
            exit_to_be_restarted(f"the earliest offset of partition {partition} could not be read: {exc!r}")
        return int(earliest.get(tp) or 0)

    def _position(self, partition: int) -> int | None:
        """The last offset of ``partition`` processed (``_store_positions``), or None."""
        cached = self.records.position(partition)
        if cached is not None:
            return cached
        raw = self.users.get(position_key(partition))
        return int(raw) if raw is not None else None

    async def outputs_acknowledged(self, timeout: float = 60.0) -> None:
        """Wait until Kafka has acknowledged everything emitted so far; raise if it has not, so the offsets of
        the events behind those outputs are not committed (they are re-delivered and re-processed instead)."""
        if not self.outputs.in_flight:
            return
        left = await asyncio.get_running_loop().run_in_executor(None, self.outputs.flush, timeout)
        if left:
            raise RuntimeError(f"{left} outputs not acknowledged by Kafka within {timeout:.0f} s")

    async def _outputs_acknowledged_before_commit(self) -> None:
        """The outputs sent so far, acknowledged, with nothing new sent meanwhile: librdkafka's flush waits until
        its queue is empty, which a steady stream of outputs (a replay's silence pass) can put off without end.
        Everything that sends outputs does so holding the records lock, and Kafka takes the ones queued within
        milliseconds, so the events path pauses that long once per commit."""
        async with self.records_lock:
            await self.outputs_acknowledged()

    def _handle_batch(self, batch: Sequence[EventT[bytes]]) -> None:
        """Fold the gather message by message, then re-score each student it touched once (one model call).

        A decoded message dies once its students are folded: holding a whole gather's decoded JSON at once (up
        to 500 messages of 1,000 events) made decoding cost twice as much, in fresh memory and in collections
        that walked it (measured: 1.4 against 3-5 µs per event)."""
        students: dict[str, _Folded] = {}
        counts: dict[str, int] = {}
        newest_message = 0.0
        for event in batch:
            newest_message = max(newest_message, event.message.timestamp or 0.0)
            for user_id, one in self._accepted(event):
                if "erase" in one:  # schemas.privacy: what was folded of the student goes with them
                    students.pop(user_id, None)
                    self.erase(user_id, one["erase"], event)
                else:
                    self._fold(students, counts, user_id, one["events"], event.message.partition, event.message.offset)
        m.MESSAGES_PROCESSED.inc(len(batch))
        if newest_message:
            m.LAG_SECONDS.set(max(0.0, time.time() - newest_message))  # Faust gives message timestamps in seconds
        for label, n in counts.items():
            m.EVENTS_PROCESSED.labels(label).inc(n)

        wall = time.time()
        to_score: list[tuple[UserRecord, ScoreRequest, int | None]] = []
        untouched: list[tuple[str, _Folded]] = []
        for user_id, f in students.items():
            if not f.folded:
                continue  # every message of theirs was folded before (re-delivered): the record is as it should be
            newest = f.newest
            if newest is not None:
                if self._watermark is None or newest > self._watermark:
                    self._watermark = newest
                known = self._partition_clock.get(f.partition)
                if known is None or newest > known:
                    self._partition_clock[f.partition] = newest
                self._partition_seen[f.partition] = wall
            if not f.meaningful:
                untouched.append((user_id, f))
                continue
            # Event clock: the student's own newest event is their 'now' (their partition has got that far).
            as_of = newest if self.settings.worker_clock == "event" and newest is not None else self.now()
            request = ScoreRequest(user_id, as_of, "events", newest, f.received)
            last = self._last_scored.get(user_id, 0.0)
            if wall - last >= self.settings.score_debounce_seconds:
                to_score.append((f.record, request, f.partition))
            else:
                self._pending[user_id] = _Pending(last + self.settings.score_debounce_seconds, request)
                owe_score(f.record, request)  # stored with the record: a crash before the re-score cannot lose it
                untouched.append((user_id, f))
        today = self.now().date() if untouched else None
        for user_id, f in untouched:
            self.store(user_id, f.record, f.partition, today)
        self._score_and_store(to_score)
        self._store_positions(batch)

    def _accepted(self, event: EventT[bytes]) -> list[tuple[str, dict[str, Any]]]:
        """The students' batches of one message (user id, batch), checked; what is refused is dead-lettered."""
        try:
            message = orjson.loads(event.value)
            packed = isinstance(message, dict) and "batches" in message  # a PartitionBatch (schemas.messages)
            batches = message["batches"] if packed else [message]
            if not isinstance(batches, list):
                raise TypeError(f"batches must be a list, not {type(batches).__name__}")
        except (orjson.JSONDecodeError, TypeError) as exc:
            self._dead_letter(event.value, f"not an EventBatch or PartitionBatch: {exc!r}", source=event)
            return []
        accepted, refused = [], []
        for one in batches:
            try:
                accepted.append((self._batch_user(one, packed, event.message.partition), one))
            except (KeyError, TypeError, ValueError) as exc:
                refused.append((one, exc))
        if refused and (not packed or len(refused) > MAX_LETTERS_PER_MESSAGE):
            # Not an event batch at all (or not one in many): one letter for the whole message, nothing of it
            # folded, rather than a letter per item of a message that is garbage throughout.
            what = f"{len(refused)} of {len(batches)} batches refused, the first: " if packed else ""
            reason = f"not an EventBatch or PartitionBatch: {what}{refused[0][1]!r}"
            self._dead_letter(event.value, reason, source=event)
            return []
        for one, problem in refused:  # a few bad students in a good message: a letter each, the rest folded
            self._dead_letter(orjson.dumps(one), f"not an EventBatch of a PartitionBatch: {problem!r}", source=event)
        return accepted

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
            record = self._load(user_id.encode()) or UserRecord.load(None, user_id)
            self._settle_outbox(user_id, record, partition)
            f = students[user_id] = _Folded(record, partition)
        record = f.record
        if offset <= record.source_offset:
            m.REDELIVERED_MESSAGES.inc()
            return
        record.source_offset = offset
        result = ingest(record, user_id, events)
        f.folded = True
        f.meaningful = f.meaningful or result.meaningful
        for e in events:
            t = e.get("event_type") if isinstance(e, dict) else None
            label = t if t in KNOWN_EVENT_TYPES else "other"  # bounded label set whatever is on the topic
            counts[label] = counts.get(label, 0) + 1
        if result.duplicates:
            m.DUPLICATE_EVENTS.inc(result.duplicates)
        for milestone in result.milestones:
            m.STREAK_MILESTONES.labels(str(milestone.milestone_days)).inc()
            self._send_kept(record, self.topics.streak_milestones.name, user_id, milestone.model_dump_json())
        for event_id, reason in result.rejected:
            m.REJECTED_EVENTS.inc()
            self._dead_letter(orjson.dumps({"user_id": user_id, "event_id": event_id}), reason, record)
        newest, received = result.newest, _newest(events, "received_at")
        if newest is not None and (f.newest is None or newest > f.newest):
            f.newest = newest
        if received is not None and (f.received is None or received > f.received):
            f.received = received

    def _batch_user(self, one: Any, packed: bool, partition: int) -> str:
        """The user id of one student's batch (an ``EventBatch``, or an erasure request), checked; raises
        KeyError, TypeError or ValueError naming the problem. In a ``PartitionBatch`` the student must belong
        in the message's partition: their state lives with its owner."""
        user_id = one["user_id"]
        if not isinstance(user_id, str) or not user_id:
            raise TypeError(f"user_id must be a non-empty string, not {type(user_id).__name__}")
        if user_id.startswith(POSITION_KEY_PREFIX):
            raise TypeError(f"user_id must not start with {POSITION_KEY_PREFIX!r} (reserved)")
        if packed and (home := key_partition(user_id.encode(), self.settings.event_partitions)) != partition:
            raise ValueError(f"user {user_id!r} belongs in partition {home} (by key), not {partition}")
        if "erase" not in one and not isinstance(one["events"], list):
            raise TypeError(f"events must be a list, not {type(one['events']).__name__}")
        return user_id

    def _store_positions(self, batch: Sequence[EventT[bytes]]) -> None:
        """Note each partition's last processed offset; ``_flush_records`` writes it into the same changelog
        partition after the records. A restore is a prefix of that changelog, so the position it restores never
        claims more than the records it restores: the worker resumes from there (``_resume_from_positions``)."""
        for event in batch:
            self.records.advance(event.message.partition, event.message.offset)

    async def _write_back(self) -> None:
        """Before Faust commits: the records changed since the last commit into the table (not while a timer
        holds the records between changing them and Kafka acknowledging their outputs)."""
        async with self.records_lock:
            self._flush_records()

    def _flush_records(self) -> None:
        """Write the changed records, then each partition's position; records of partitions this worker no
        longer owns are dropped instead (their new owner is re-delivered the messages behind them)."""
        pending = self.records.take_pending()
        if pending.records or pending.positions:
            owned = self._owned_partitions()
            topic = self.topics.events.name
            for key, record, partition in pending.records:
                if partition in owned:
                    with writing_as(at_partition(topic, partition)):
                        self.users[key] = record.to_bytes()
                else:
                    self.records.forget(key)
            for partition, offset in pending.positions.items():
                if partition in owned:
                    with writing_as(at_partition(topic, partition)):
                        self.users[position_key(partition)] = str(offset).encode()
        self.records.trim()
        m.CACHED_RECORDS.set(len(self.records))

    # --- scoring ------------------------------------------------------------------------------------------------
    def _score_and_store(
        self,
        items: Sequence[tuple[UserRecord, ScoreRequest, int | None]],
        clock: datetime | None = None,
        deferred: list[_Encoded] | None = None,
    ) -> list[ScoreOutcome]:
        """Score in one model call, send the updates and interventions, store each record.

        Each item's third element is the partition of the message the user's batch came from on the events path
        (and for a debounce tick, which re-scores as the events path does), or None outside the stream.
        ``clock``: the engine's 'now' for the policy, when the caller has it (else read here).
        ``deferred``: timers and the API pass a list; records go there instead of the table, to be stored once
        Kafka acknowledged the outputs (``_store_acknowledged``). A record stored before its outputs were
        acknowledged would, after a crash, say they were sent. The events path stores at once and keeps the
        outputs in the record's outbox until the batch is committed.
        """
        if not items:
            return []
        now = datetime.now(UTC)
        clock = clock or self.now()
        records, requests = [r for r, _, _ in items], [q for _, q, _ in items]
        outcomes = rescore(
            records,
            requests,
            self.models.current(),
            self.policy,
            now,
            clock,
            self.courses.calendars(),
            self.cohorts,
        )
        sent_at = time.time()
        today = clock.date()
        for (record, request, partition), outcome in zip(items, outcomes, strict=True):
            self._emit(outcome, request.user_id, sent_at, record if partition is not None else None)
            if deferred is None:
                self.store(request.user_id, record, partition, today)
            else:
                deferred.append(self._encoded(request.user_id, record, today))  # bytes: records die young
            self._last_scored[request.user_id] = sent_at
            self._pending.pop(request.user_id, None)
        return outcomes

    async def _store_acknowledged(self, deferred: list[_Encoded]) -> None:
        """Store what ``_score_and_store`` deferred once Kafka has acknowledged its outputs; not the records of
        partitions that moved to another worker meanwhile (their new owner has its own state to write).

        With nothing deferred there is nothing to wait for: the events path's outputs are waited for where
        offsets are committed, and waiting here, under the records lock, would stall the events path."""
        if not deferred:
            return
        await self.outputs_acknowledged()
        for start in range(0, len(deferred), SILENCE_CHUNK):
            await self.backlog.ebb()
            owned = self._owned_partitions()  # after each wait: a rebalance may have run meanwhile
            for encoded in deferred[start : start + SILENCE_CHUNK]:
                if key_partition(encoded.key, self.settings.event_partitions) in owned:
                    self._write(encoded)

    def _send_kept(self, record: UserRecord | None, topic: str, key: str, value: str) -> None:
        """Send an output; on the events path (``record`` given) also keep it in the record's outbox."""
        self.outputs.send_encoded(key.encode(), value.encode(), topic=topic)
        if record is not None:
            record.outbox.append([topic, key, value])

    def _settle_outbox(self, user_id: str, record: UserRecord, partition: int) -> None:
        """Empty the outbox once the batch it belongs to is committed (its outputs were acknowledged first), and
        no debounce tick's outputs in it are still waiting for Kafka."""
        if record.outbox and user_id not in self._unconfirmed:
            committed = self._committed(partition)
            if committed is not None and record.source_offset < committed:
                record.outbox = []

    def _emit(self, outcome: ScoreOutcome, user_id: str, sent_at: float, keep: UserRecord | None = None) -> None:
        key = user_id.encode()
        update = outcome.update
        self.outputs.send_encoded(key, update.model_dump_json().encode(), topic=self.topics.risk_updates.name)
        m.RISK_UPDATES.labels(update.trigger, update.tier).inc()
        m.RISK_SCORES.labels("7d").observe(update.risk_7d)
        m.RISK_SCORES.labels("30d").observe(update.risk_30d)
        if update.received_at is not None and update.trigger == "events":
            m.EVENT_TO_RISK_SECONDS.observe(max(0.0, sent_at - update.received_at.timestamp()))
        if update.previous_tier != update.tier:
            if update.previous_tier is not None:
                self._tier_counts[update.previous_tier] = self._tier_counts.get(update.previous_tier, 1) - 1
                m.USERS_BY_TIER.labels(update.previous_tier).set(self._tier_counts[update.previous_tier])
            self._tier_counts[update.tier] = self._tier_counts.get(update.tier, 0) + 1
            m.USERS_BY_TIER.labels(update.tier).set(self._tier_counts[update.tier])
        decision = outcome.decision
        kind = decision.request.intervention_type.value if decision.request is not None else "none"
        m.INTERVENTIONS.labels(kind, decision.outcome).inc()
        if decision.request is not None:
            self._send_kept(keep, self.topics.interventions.name, user_id, decision.request.model_dump_json())

    async def score_now(self, user_id: str, trigger: str = "manual") -> ScoreOutcome | None:
        """Re-score one student immediately (the API's 'recalculate'); None if the student is unknown."""
        async with self.records_lock:
            record = self.record(user_id)
            if record is None:
                return None
            request = ScoreRequest(user_id, self.now(), trigger)  # type: ignore[arg-type]
            deferred: list[_Encoded] = []
            outcomes = self._score_and_store([(record, request, None)], deferred=deferred)
            await self._store_acknowledged(deferred)
        return outcomes[0]

    def record(self, user_id: str) -> UserRecord | None:
        """The student's record from the local table; None if no event of theirs was seen here."""
        if user_id.startswith(POSITION_KEY_PREFIX):
            return None
        return self._load(user_id.encode())

    def _load(self, key: bytes) -> UserRecord | None:
        """The record from the cache, else from the table (then cached if its partition is this worker's: a
        standby copy of another worker's partition must not outlive a rebalance in the cache)."""
        record = self.records.get(key)
        if record is not None:
            return record
        raw = self.users.get(key)
        if raw is None:
            return None
        record = UserRecord.from_bytes(raw)
        partition = key_partition(key, self.settings.event_partitions)
        if partition in self._owned_partitions():
            self.records.keep(key, record, partition)
        return record

    def store(self, user_id: str, record: UserRecord, partition: int | None = None, today: date | None = None) -> None:
        """On the events path (``partition``: that of the message the user's batch came from) the record is changed
        in the cache and reaches the table at the next commit; outside the stream (timers, web views) it is written at
        once, in the partition that owns the user's key (``streams.worker.partitioning``).
        ``today``: the engine's date, when the caller has it (else read from the clock)."""
        if partition is None:
            self._write(self._encoded(user_id, record, today))
            return
        key = user_id.encode()
        self.records.change(key, record, partition)
        if self._clock_index is not None:
            self._clock_index[key] = (record.clock_at, self._dormant(record, today))

    def _encoded(self, user_id: str, record: UserRecord, today: date | None) -> _Encoded:
        dormant = self._dormant(record, today) if self._clock_index is not None else False
        return _Encoded(user_id.encode(), record.to_bytes(), record.clock_at, dormant)

    def _write(self, encoded: _Encoded) -> None:
        """Write through: the table has the record now (a cached copy of it is no longer pending)."""
        key = encoded.key
        with writing_as(self._key_context(key)):
            self.users[key] = encoded.raw
        self.records.written(key)
        if self._clock_index is not None:
            self._clock_index[key] = (encoded.clock_at, encoded.dormant)

    def erase(self, user_id: str, request: Any, event: Any | None = None) -> None:
        """Remove the student from this worker: the record (a tombstone in the changelog), and what memory holds
        of them (pending re-scores, course cohorts, the clock index, tier counts); confirm on the erasures topic."""
        try:
            erasure = ErasureRequest.model_validate(request)
        except ValidationError as exc:
            self._dead_letter(orjson.dumps({"erase": request}), f"not an ErasureRequest: {exc.errors()[:3]}")
            return
        key = user_id.encode()
        cached = self.records.get(key)
        self.records.forget(key)  # a record never written to the table yet exists only there
        raw = self.users.get(key)
        record = cached or (UserRecord.from_bytes(raw) if raw is not None else None)
        if record is not None and record.tier is not None and self._tier_counts.get(record.tier, 0) > 0:
            self._tier_counts[record.tier] -= 1
            m.USERS_BY_TIER.labels(record.tier).set(self._tier_counts[record.tier])
        if raw is not None:
            with writing_as(event if event is not None else self._key_context(key)):
                del self.users[key]
        self._pending.pop(user_id, None)
        self._last_scored.pop(user_id, None)
        self.cohorts.forget(user_id)
        if self._clock_index is not None:
            self._clock_index.pop(key, None)
        done = ErasureDone(erasure_id=erasure.erasure_id, erased_at=datetime.now(UTC), found=record is not None)
        self.outputs.send_encoded(erasure.erasure_id.encode(), done.model_dump_json().encode(),
                                  topic=self.topics.erasures.name)  # fmt: skip
        m.ERASURES.labels("found" if record is not None else "unknown").inc()

    def _dormant(self, record: UserRecord, today: date | None = None) -> bool:
        return is_dormant(record.state.courses, self.courses.calendars(), today or self.now().date())

    def _silence_cutoff(self, now: datetime, dormant: bool) -> float:
        """Last score older than this (engine clock, epoch seconds): due for a silence re-score."""
        wait = self.settings.dormant_rescore_after_seconds if dormant else self.settings.rescore_after_seconds
        return now.timestamp() - wait

    def _key_context(self, key: bytes) -> Any:
        return at_partition(self.topics.events.name, key_partition(key, self.settings.event_partitions))

    # --- timers ---------------------------------------------------------------------------------------------------
    async def _flush(self) -> None:
        """Re-score students whose debounce window has passed, and wait for Kafka to acknowledge their updates
        without holding the records lock.

        A tick runs ten times a second, and under load almost every student is waiting for one: holding the lock
        through Kafka's acknowledgement (20-100 ms) stalled the events path for up to a third of the time
        (measured at 20,000 events/s). So each re-scored record is changed in the cache as on the events path,
        its outputs kept in its outbox, and it still says the re-score is owed until Kafka has acknowledged
        them. A commit that writes it meanwhile writes it owed; after a crash the new owner sends the outbox
        again and re-scores (``_restore_owed``), so no update or intervention is lost, at worst repeated under
        the same id.
        """
        async with self.records_lock:
            scored = self._flush_due()
        if not scored:
            return
        try:
            await self.outputs_acknowledged()
        except Exception:
            self._unconfirmed.difference_update(user_id for user_id, _, _ in scored)
            raise  # still owed: re-scored after the restart (commits.py: why a stuck write ends the worker)
        async with self.records_lock:
            self._confirm(scored)

    def _confirm(self, scored: list[tuple[str, UserRecord, Any]]) -> None:
        """Kafka acknowledged a tick's outputs: what the records owed is paid (unless they changed meanwhile)."""
        owned = self._owned_partitions()
        for user_id, record, owed in scored:
            self._unconfirmed.discard(user_id)
            key = user_id.encode()
            partition = key_partition(key, self.settings.event_partitions)
            if record.owed == owed and partition in owned and self.records.get(key) is record:
                record.owed = None
                self.records.change(key, record, partition)

    def _flush_due(self) -> list[tuple[str, UserRecord, Any]]:
        """Re-score the students whose window has passed, as on the events path (cache, outbox), leaving each
        record owed; the students, records and what they owe, for ``_confirm``."""
        wall = time.time()
        due = [p for p in self._pending.values() if p.due <= wall]
        owned = self._owned_partitions() if due else set()
        items = []
        for p in due:
            user_id = p.request.user_id
            self._pending.pop(user_id, None)
            partition = key_partition(user_id.encode(), self.settings.event_partitions)
            if partition not in owned:
                continue  # the partition moved away: its new owner finds the re-score owed in the record
            record = self.record(user_id)
            if record is not None:
                items.append((record, p.request, partition))
        owed = [record.owed for record, _, _ in items]
        self._score_and_store(items)
        scored = []
        for (record, request, _), was_owed in zip(items, owed, strict=True):
            record.owed = was_owed  # until Kafka acknowledges the outputs: see _flush
            self._unconfirmed.add(request.user_id)
            scored.append((request.user_id, record, was_owed))
        return scored

    def _student_keys(self) -> list[bytes]:
        """The local table's keys that are students (not the per-partition position entries)."""
        self._flush_records()  # students seen since the last commit are in the table too
        return [k for k in list(self.users) if not k.startswith(POSITION_KEY_PREFIX_BYTES)]

    def _owned_partitions(self) -> set[int]:
        """Partitions of the events topic this worker processes now (its users' records are its to write)."""
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # no consumer yet (start-up, web views during a rebalance)
            return set()
        return {tp.partition for tp in assignment if tp.topic == self.topics.events.name}

    def _committed(self, partition: int) -> int | None:
        """The events partition's committed offset as Faust last saw it (the next offset to read), or None."""
        offsets: Mapping[TP, int | None] = self.app.consumer._committed_offset  # type: ignore[attr-defined]
        return offsets.get(TP(self.topics.events.name, partition))

    async def _resume_from_positions(self) -> None:
        """After a restore, resume each owned partition where the restored state says it got to, instead of at
        the committed offset: if a commit ever got ahead of the state (a changelog write lost in a crash while
        Kafka was restarting), the events in between are folded again rather than lost; events the records
        already hold are skipped by their ``source_offset`` and event ids, so nothing counts twice."""
        moved = 0
        for partition in sorted(self._owned_partitions()):
            position = self._position(partition)
            if position is None:
                continue  # nothing processed in this partition yet: Faust's committed offset (or earliest) it is
            tp = TP(self.topics.events.name, partition)
            committed = self._committed(partition)
            if committed is not None and position + 1 < committed:
                # Should not happen (offsets are acknowledged once folded and committed once durable); if it
                # does, the messages in between are folded again rather than lost. Said loudly: seeking back
                # while Faust's fetcher already runs is what the chaos suite saw go wrong.
                log.warning("partition %d: the restored state ends at offset %d, the committed offset is %d; "
                            "folding the messages in between again", partition, position, committed)  # fmt: skip
            await self.app.consumer.seek(tp, position + 1)
            # Moving past the committed offset: tell Faust the offsets in between are done, or it never commits
            # this partition again (it commits only up to the first offset it has not seen acknowledged).
            await self.app.consumer._add_gap(tp, 0, position)  # type: ignore[attr-defined]
            moved += 1
        if moved:
            log.info("resumed %d partitions from the positions in the restored state", moved)

    async def _unstick_commits(self) -> None:
        """Let Faust commit again when the head of its acknowledged offsets lost touch with the committed one.

        Faust removes the offsets it is about to commit from its list before the commit succeeds; when the commit
        then fails (Kafka restarting, a rebalance) the list starts above the committed offset and Faust never
        commits that partition again (chaos runs: all events stored, consumer lag stuck). The offsets in
        between were processed (the partition's stored position is at or past them), so they are marked done.
        When no new message came after the failed commit the list is empty and Faust has nothing to commit
        with: if that lasts a whole tick, the stored position is put back in the list (the last chaos case).
        The commit itself still goes through the flush that waits for every changelog write and output.
        """
        consumer: Any = self.app.consumer
        idle = self._idle_uncommitted
        self._idle_uncommitted = {}
        for partition in self._owned_partitions():
            tp = TP(self.topics.events.name, partition)
            acked, committed = consumer._acked.get(tp), self._committed(partition)
            position = self._position(partition)  # the last offset processed
            if committed is None or position is None:
                continue
            log.info("partition %d: committed %s, processed to %d, acked %s..%s (%d), read to %s, paused %s",
                     partition, committed, position, min(acked) if acked else "-", max(acked) if acked else "-",
                     len(acked or ()), consumer._read_offset.get(tp), tp in consumer._paused_partitions)  # fmt: skip
            if acked:
                if min(acked) - committed > 1 and position >= min(acked) - 1:
                    await consumer._add_gap(tp, committed, min(acked) - 1)
                    m.COMMITS_UNSTUCK.inc()
            elif position >= committed:  # processed, not committed, and nothing left in Faust's list to do it
                if idle.get(partition) == (committed, position):
                    await consumer._add_gap(tp, committed, position - 1)
                    consumer._acked[tp].append(position)
                    consumer._acked_index[tp].add(position)
                    m.COMMITS_UNSTUCK.inc()
                else:
                    self._idle_uncommitted[partition] = (committed, position)  # one tick's grace: a commit running

    async def _watch_assignment(self) -> None:
        """Make sure the group did not settle on assigning nothing to anyone.

        Faust's assignor skips topics its cluster metadata does not show: a worker elected group leader just
        after Kafka restarted assigned no partition to any member, and the group stayed like that (a chaos
        run in the test suite). When this worker has held nothing for a while and the group holds nothing of
        the events topic either, it asks for a new rebalance; if that does not help, it exits to be restarted.
        """
        if self._owned_partitions():
            self._unassigned_checks = 0
            return
        self._unassigned_checks += 1
        if self._unassigned_checks < 3:
            return
        group, topic = f"{self.settings.topic_prefix}-worker", self.topics.events.name
        try:
            held = await asyncio.get_running_loop().run_in_executor(
                None, group_assigned_partitions, self.settings.kafka_bootstrap, group, topic
            )
        except Exception:  # Kafka unreachable or the group rebalancing: nothing to conclude yet
            return
        if held:
            self._unassigned_checks = 0  # more workers than partitions: this one waits, as it should
            return
        if self._unassigned_checks >= 6:
            exit_to_be_restarted("the consumer group holds no partition of the events topic after a rebalance")
        log.warning("the consumer group holds no partition of %s: asking for a new rebalance", topic)
        m.REBALANCES_REQUESTED.inc()
        thread: Any = self.app.consumer._thread  # type: ignore[attr-defined]
        coordinator = thread._ensure_consumer()._coordinator
        thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)

    async def _restore_owed(self) -> None:
        """After the table is restored (start-up, rebalance): what records say is still owed.

        - Re-scores waiting for their debounce window when the partition's previous owner stopped or crashed;
          without this the students' newest events would wait for the silence pass (a day) to show in their risk.
        - For records whose batch is not committed yet (at or past the committed offset), the outputs in their
          outbox are sent again and the student is re-scored: the previous owner may have crashed after Kafka
          acknowledged the record but before it acknowledged the outputs sent beside it, and the re-delivered
          message will be skipped as folded. Outputs carry their ids, so a second copy replaces the first.
        """
        owned = self._owned_partitions()
        committed = {p: self._committed(p) for p in owned}
        owed_mark = f'"{OWED_KEY}":'.encode()
        restored = resent = 0
        async with self.records_lock:
            self._flush_records()
            for key, raw in list(self.users.items()):
                partition = key_partition(key, self.settings.event_partitions)
                if partition not in owned or key.startswith(POSITION_KEY_PREFIX_BYTES):
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
                    for topic, out_key, value in record.outbox:
                        self.outputs.send_encoded(out_key.encode(), value.encode(), topic=topic)
                        resent += 1
                    if request is None:  # replays: as of the record's own clock, not the wall clock
                        event_clock = self.settings.worker_clock == "event" and record.clock_at
                        as_of = datetime.fromtimestamp(record.clock_at, UTC) if event_clock else self.now()
                        request = ScoreRequest(user_id, as_of, "events")
                if request is None or user_id in self._pending:
                    continue
                if self.settings.worker_clock == "wall":
                    request = replace(request, as_of=self.now())
                self._pending[user_id] = _Pending(0.0, request)
                restored += 1
        if restored or resent:
            m.OWED_RESTORED.inc(restored)
            m.OUTPUTS_RESENT.inc(resent)
            log.info("restored %d re-scores owed, sent %d outputs of uncommitted batches again", restored, resent)

    async def _rescore_silent(self) -> None:
        """Silence is a signal: re-score students whose last score is ``rescore_after_seconds`` old.

        Live (wall clock), one pass over the local keys is spread over the whole period, a slice per tick
        (slice = keys x tick / period), so no tick scans or scores everything at once and a student silent for
        a day is re-scored within about a day. Replaying history on the event clock, a day may pass in a
        second, so each tick checks every local key (``_rescore_due_now``).
        """
        if self.settings.worker_clock == "event":
            await self._rescore_due_now()
            return
        async with self.records_lock:
            deferred: list[_Encoded] = []
            self._rescore_slice(deferred)
            await self._store_acknowledged(deferred)

    def _rescore_slice(self, deferred: list[_Encoded]) -> None:
        if not self._silence_keys:
            self._silence_keys = self._student_keys()
            m.TABLE_USERS.set(len(self._silence_keys))
        share = self.settings.silence_tick_seconds / self.settings.rescore_after_seconds
        per_tick = max(1, int(len(self._silence_keys) * share) + 1)
        chunk, self._silence_keys = self._silence_keys[:per_tick], self._silence_keys[per_tick:]
        now = self.now()
        items = []
        for key in chunk:
            record = self.record(key.decode())
            if record is not None and record.clock_at <= self._silence_cutoff(now, self._dormant(record, now.date())):
                items.append((record, ScoreRequest(key.decode(), now, "silence"), None))
        self._score_and_store(items, deferred=deferred)

    async def _rescore_due_now(self, max_per_tick: int = 5_000) -> None:
        """Event clock: re-score every local student whose last score is a day (of event time) old, found in
        the in-memory clock index instead of by reading each record.

        In slices of ``SILENCE_CHUNK`` students: a pass decodes thousands of records, and holding them all at once
        would let them age into the garbage collector's oldest generation, whose full collections then cost as
        much as the scoring. Each slice is stored once Kafka acknowledged its outputs and the backlog is under its
        bound (``streams.worker.backpressure``), and the records lock is let go between slices, so the events
        path and the commits take turns with a pass instead of waiting for all of it."""
        async with self.records_lock:
            now = self.now()
            if self._clock_index is None:
                self._clock_index = {}
                for key in self._student_keys():
                    record = self._load(key)
                    if record is not None:
                        self._clock_index[key] = (record.clock_at, self._dormant(record, now.date()))
                m.TABLE_USERS.set(len(self._clock_index))
            active_cutoff, dormant_cutoff = self._silence_cutoff(now, False), self._silence_cutoff(now, True)
            due = [
                k
                for k, (at, dormant) in self._clock_index.items()
                if at <= (dormant_cutoff if dormant else active_cutoff)
            ][:max_per_tick]
        for start in range(0, len(due), SILENCE_CHUNK):
            async with self.records_lock:
                items = []
                for key in due[start : start + SILENCE_CHUNK]:
                    record = self._load(key)
                    if record is None:  # the partition moved to another worker
                        if self._clock_index is not None:
                            self._clock_index.pop(key, None)
                        continue
                    if record.clock_at > self._silence_cutoff(now, self._dormant(record, now.date())):
                        continue  # re-scored on events between two slices
                    items.append((record, ScoreRequest(key.decode(), now, "silence"), None))
                deferred: list[_Encoded] = []
                self._score_and_store(items, now, deferred)
                await self._store_acknowledged(deferred)

    def _dead_letter(
        self, raw: bytes, reason: str, keep: UserRecord | None = None, source: EventT[bytes] | None = None
    ) -> None:
        """Refused input to the dead-letter topic, with where it came from (``source``: the events message). A
        large input keeps only its start: a letter bigger than Kafka takes would fail to send, and the worker
        would stop on the same message after every restart; the whole message stays on its topic."""
        from schemas.messages import DeadLetter, kept_raw

        letter = DeadLetter(
            dead_letter_id=f"processor:{time.time_ns()}",
            received_at=datetime.now(UTC),
            source="processor:signals",
            reason=reason,
            raw=kept_raw(raw.decode("utf-8", errors="replace")),
            original_topic=self.topics.events.name if source is not None else None,
            original_partition=source.message.partition if source is not None else None,
            original_offset=source.message.offset if source is not None else None,
        )
        if source is not None:  # a message or a student's batch in it, not one event (those: REJECTED_EVENTS)
            m.REFUSED_BATCHES.inc()
        self._send_kept(keep, self.topics.dead_letters.name, letter.source, letter.model_dump_json())


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run one worker process until SIGTERM/SIGINT (Faust handles the signals and the clean shutdown)."""
    from streams.admin import ensure_topics

    ensure_topics(settings.kafka_bootstrap, catalogue(settings.topic_prefix, settings.event_partitions).all())
    datadir = worker_datadir(settings)
    discard_unless_stopped_cleanly(datadir)  # streams.worker.local_state: why
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    worker = EngagementWorker(settings)
    # What exists now (modules, schemas, the app) lives as long as the process: out of every collection's way.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    runner = faust.Worker(worker.app, loglevel=loglevel, quiet=True)
    # Faust's terminal spinner sets the root logger to DEBUG so that every record spins it: every debug() call
    # in aiokafka and Faust then builds a LogRecord, ~10% of the worker's CPU (profiled). No spinner, no cost.
    runner.spinner = None
    try:
        runner.execute_from_commandline()
    finally:
        if worker.changelog_writes.all_acknowledged:
            mark_stopped_cleanly(datadir)


def worker_datadir(settings: Settings) -> Path:
    """Where a worker keeps its table files: one directory per worker (its web port names it)."""
    return settings.run_dir / f"worker-{settings.worker_web_port}"
