"""Every use of a Faust private attribute, and every patch of Faust's behaviour, in one place.

faust-streaming 0.15.3 is pinned (pyproject); each patch below says which Faust behaviour it corrects and which test
fails without it. Everything else in the worker uses Faust's public API (app, table, agent, timers, web views),
and the worker core (``streams.worker.core``) does not import Faust at all. On a Faust upgrade, this module is
the one to read again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP
from mode.utils.futures import notify

from streams.worker.core.durability import ChangelogWrites, exit_to_be_restarted
from streams.worker.core.gathering import GatherPolicy

log = logging.getLogger(__name__)

# --- reading the consumer's offsets -------------------------------------------------------------------------------


def committed_offset(app: faust.App, tp: TP) -> int | None:
    """The partition's committed offset as Faust last saw it (the next offset to read), or None."""
    offsets: Mapping[TP, int | None] = app.consumer._committed_offset  # type: ignore[attr-defined]
    return offsets.get(tp)


def read_offset(app: faust.App, tp: TP) -> int | None:
    """The last offset Faust's consumer handed to the stream (the next one to read right after a seek)."""
    offsets: Mapping[TP, int | None] = app.consumer._read_offset  # type: ignore[attr-defined]
    return offsets.get(tp)


def acknowledged_offsets(app: faust.App, tp: TP) -> list[int]:
    """Offsets acknowledged and not committed yet: Faust commits the first consecutive run of them."""
    acked: Mapping[TP, list[int]] = app.consumer._acked  # type: ignore[attr-defined]
    return list(acked.get(tp) or ())


def is_paused(app: faust.App, tp: TP) -> bool:
    return tp in app.consumer._paused_partitions  # type: ignore[attr-defined]


# --- telling the consumer what is done ----------------------------------------------------------------------------


async def mark_done(app: faust.App, tp: TP, first: int, last: int) -> None:
    """Offsets ``first..last`` are done, although Faust never saw them acknowledged (read directly, or below a
    resumed position): Faust commits only up to the first offset it has not seen acknowledged."""
    await app.consumer._add_gap(tp, first, last)  # type: ignore[attr-defined]


def mark_acknowledged(app: faust.App, tp: TP, offset: int) -> None:
    """Put ``offset`` back in Faust's acknowledged list, so that a commit has something to commit with."""
    consumer: Any = app.consumer
    consumer._acked[tp].append(offset)
    consumer._acked_index[tp].add(offset)


def request_rejoin(app: faust.App) -> None:
    """Ask the group coordinator for a new rebalance (from the consumer's own thread)."""
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    coordinator = thread._ensure_consumer()._coordinator
    thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)


# --- patches --------------------------------------------------------------------------------------------------------


async def take_gathers(stream: Any, policy: GatherPolicy) -> AsyncIterator[list[Any]]:
    """Gathers of the stream's events, none acknowledged: Faust's ``Stream.noack_take(max_, within)``
    (faust-streaming 0.15.3, ``faust/streams.py``) line for line, with one change: after its wait of ``within``,
    a gather waits again while ``policy.keep_going`` says so (``streams.worker.core.gathering``: when and why).

    Corrects: Faust ends a gather ``within`` seconds after the previous one whatever the stream's lag, so a backlog
    drained in gathers of whatever Faust handed over in that window (5 to 500 messages in one drain), and the
    worker's CPU per event varied by up to 1.4x between two drains of the same backlog. Without it the gathers of
    ``engage bench gamification`` vary again (its report prints them); ``tests/integration/test_worker.py`` runs
    every worker test through this loop."""
    buffer: list[Any] = []  # Faust's events (its noack_take kept a second list of the same events)
    buffer_full = asyncio.Event()
    buffer_consumed = asyncio.Event()
    within = policy.within_seconds
    stream_enable_acks: bool = stream.enable_acks
    buffer_consuming: asyncio.Future[None] | None = None
    channel_it = aiter(stream.channel)

    async def add_to_buffer(value: Any) -> Any:
        try:
            nonlocal buffer_consuming
            if buffer_consuming is not None:  # the gather before is being folded: wait for it
                try:
                    await buffer_consuming
                finally:
                    buffer_consuming = None
            event = stream.current_event
            if event is None:
                raise RuntimeError("Take buffer found current_event is None")
            buffer.append(event)
            if len(buffer) >= policy.max_messages:
                buffer_full.set()
                buffer_consumed.clear()
                await stream.wait(buffer_consumed)  # never more than max_messages in one gather
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stream.log.exception("Error adding to take buffer: %r", exc)
            await stream.crash(exc)
        return value

    stream.enable_acks = False  # the caller acknowledges each gather once folded
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            started, before = time.monotonic(), len(buffer)
            await stream.wait_for_stopped(buffer_full, timeout=within)
            while policy.keep_going(before, len(buffer), buffer[-1].message.timestamp if buffer else None,
                                    time.time(), time.monotonic() - started):  # fmt: skip
                before = len(buffer)
                await stream.wait_for_stopped(buffer_full, timeout=within)
            if buffer:
                buffer_consuming = stream.loop.create_future()
                try:
                    yield list(buffer)
                finally:
                    buffer.clear()
                    notify(buffer_consuming)
                    buffer_full.clear()
                    buffer_consumed.set()
    finally:
        stream.enable_acks = stream_enable_acks
        stream._processors.remove(add_to_buffer)


@contextmanager
def writing_as(event: Any) -> Iterator[None]:
    """Table writes inside this block go to ``event``'s partition (a Faust event, or ``at_partition``'s).

    Corrects: Faust's table and RocksDB store take the partition of a write from "the current event" (a context
    variable the stream sets while one message is processed) and refuse a write with none. The agent folds a
    gather of messages, and timers and web views write with no message at all. Without it every record write
    outside Faust's own iteration fails: ``tests/integration/test_worker.py`` fails throughout."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class _PartitionOnly:
    """A stand-in for a Faust event: the table and store read only ``message.partition`` and ``message.topic``."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(topic=topic, partition=partition)


def at_partition(topic: str, partition: int) -> _PartitionOnly:
    """The context for writing as if processing a message of ``topic`` (the source topic) at ``partition``."""
    return _PartitionOnly(topic, partition)


def commit_only_when_acknowledged(
    app: faust.App,
    outputs_acknowledged: Callable[[], Awaitable[None]],
    write_back: Callable[[], Awaitable[None]] | None = None,
    timeout_seconds: float = 60.0,
) -> ChangelogWrites:
    """Make ``app``'s pre-commit flush first ``write_back`` (records held in memory into the table), then wait
    for every changelog write queued until then, then for ``outputs_acknowledged``.

    Corrects: Faust flushes its producer before it commits, but its buffer of changelog writes gives up waiting
    after 0.1 s without progress (Kafka slow or restarting), and a write being handed to aiokafka at that moment
    is in neither the buffer nor aiokafka's queue; a crash after such a commit lost those students' newest state.
    Under a steady stream of writes its buffer is never empty, so that flush never ends either (an OULAD replay's
    silence pass: every commit timed out after 60 s, #29). So every changelog write is tracked from the moment
    Faust queues it until Kafka acknowledges it, and the flush before a commit waits for those queued before it.
    A write Kafka never acknowledges ends the worker after ``timeout_seconds`` (``core.durability``: why exit).
    Without it: ``tests/integration/test_chaos.py::test_every_record_is_delivered_once_through_kills_and_server_
    restarts`` lost records, and ``tests/unit/test_worker_backpressure.py::test_a_commit_waits_for_the_writes_
    queued_before_it_not_for_those_queued_while_it_waits`` fails.
    """
    producer = app.producer
    writes = ChangelogWrites()
    queue = producer.send_soon

    def send_soon(fut: Any) -> None:
        writes.queued(fut)
        queue(fut)

    step = ["starting"]

    async def everything_acknowledged() -> None:
        if write_back is not None:
            step[0] = "waiting for the records lock to write records back"
            await write_back()
        queued = list(writes.unacknowledged)  # the writes queued up to now, not those queued while this waits
        step[0] = f"waiting for {len(queued)} changelog writes"
        if queued:
            await asyncio.wait(queued)
        step[0] = "waiting for the outputs"
        await outputs_acknowledged()

    async def flush() -> None:
        try:
            await asyncio.wait_for(everything_acknowledged(), timeout_seconds)
        except TimeoutError:
            exit_to_be_restarted(
                f"changelog writes or outputs not acknowledged by Kafka in {timeout_seconds:.0f} s ({step[0]})"
            )
        except Exception as exc:  # outputs refused
            exit_to_be_restarted(f"outputs not acknowledged: {exc!r}")
        if writes.failures:
            exit_to_be_restarted(f"{len(writes.failures)} changelog writes failed, the first: {writes.failures[0]!r}")

    producer.send_soon = send_soon  # type: ignore[method-assign]
    producer.flush = flush  # type: ignore[method-assign]
    return writes


def commit_past_duplicate_acknowledgements(app: faust.App) -> None:
    """Make Faust's choice of the offset to commit ignore acknowledgements it holds twice or already committed.

    Corrects: Faust commits the first run of consecutive offsets in its sorted list of acknowledged ones, after
    adding the ranges marked done (``mark_done``) to that list without looking whether they are in it already.
    The worker marks ranges done that can also be acknowledged: after a restore it resumes from its stored
    position and marks everything below it done, while Faust's fetcher, which starts before the seek, re-delivers
    some of those messages (skipped as folded, and acknowledged). Each offset then sits twice in the list, every
    duplicate ends a run, and each commit moved the offset by one or two: a clean clone's chaos run saw a worker
    200 messages past its committed offset advance it 2 per commit, and never catch up in 240 s. Before Faust
    looks, offsets the done ranges will add, duplicates and offsets below the committed one are removed from the
    list, so each offset is in it once. Without it: ``tests/unit/test_worker_commits.py`` fails.
    """
    consumer: Any = app.consumer
    new_offset = consumer._new_offset

    def _new_offset(tp: Any) -> int | None:
        acked: list[int] = consumer._acked[tp]
        if acked:
            committed = consumer._committed_offset[tp]
            covered: set[int] = set()
            for interval in consumer._gap[tp].overlap(0, max(acked)):  # what Faust adds (its own query)
                covered.update(range(interval.begin, interval.end))
            kept = sorted({o for o in acked if o not in covered and (committed is None or o >= committed)})
            # Faust merges the done ranges only into a list that is not empty: then keep the last offset they
            # cover (done, and a duplicate at the end of the run ends nothing).
            acked[:] = kept or ([max(covered)] if covered else [])
        offset: int | None = new_offset(tp)
        return offset

    consumer._new_offset = _new_offset


def fetch_within(app: faust.App, max_wait_ms: int) -> None:
    """Make the worker consumer that ``app`` creates (at start, and again after it restarts) let the broker hold
    a fetch request at most ``max_wait_ms``.

    Corrects: Faust's aiokafka driver creates the consumer with ``fetch_max_wait_ms=1500`` and no setting for
    it. aiokafka keeps one fetch request in flight per broker, and the broker held those 0.5-1 s although events
    arrived several times a second: at 5,000 events/s messages waited 1.1-1.3 s before the worker saw them and
    event-to-risk p50 was 1.3 s; with 100 ms, 0.12 s and 0.24 s. Without it:
    ``tests/unit/test_worker_fetching.py::test_the_consumer_faust_creates_waits_at_most_the_setting`` fails.
    """
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]
    create = thread._create_worker_consumer

    def create_worker_consumer(transport: Any) -> Any:
        consumer = create(transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read when the consumer starts and creates its fetcher
        return consumer

    thread._create_worker_consumer = create_worker_consumer


def fetch_only_partitions_active_when_asked() -> None:
    """Make each of Faust's fetches hand over records of the partitions that were active when it was asked, and
    none when no partition was.

    Corrects: Faust's aiokafka driver passes its live set of active partitions to aiokafka's
    ``Fetcher.fetched_records`` in the consumer's own thread, while the event loop pauses and resumes partitions
    in that very set. aiokafka reads an empty set as "every partition", and it moves a partition's position past
    the records it drains. At the end of a table recovery Faust pauses the changelog partitions before it resumes
    the events partitions: a fetch waking up in between got the set empty, drained the events aiokafka had
    prefetched, and Faust, finding their partitions not active, dropped them. With a committed offset the seek
    that follows brings them back; without one (a new consumer group whose changelog already holds state: a
    catalogue move) nothing ever did, and the worker folded none of them (a clean clone's
    ``tests/integration/test_catalogue_move.py``: the new catalogue's worker never committed, its state restored
    and its events untouched). A snapshot of the set, taken when the fetch starts, and no fetch for an empty one.
    Patched on Faust's ``AIOKafkaConsumerThread``; idempotent. Without it:
    ``tests/unit/test_worker_fetching.py::test_a_fetch_asked_with_no_active_partition_drains_nothing`` fails.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original: Any = AIOKafkaConsumerThread._fetch_records
    if getattr(original, "snapshots_partitions", False):
        return

    async def _fetch_records(
        self: Any, consumer: Any, active_partitions: Any, timeout: float | None = None, max_records: int | None = None
    ) -> Any:
        if active_partitions is not None:  # None: a client-only app, which fetches every partition
            active_partitions = frozenset(active_partitions)
            if not active_partitions:
                return {}
        return await original(self, consumer, active_partitions, timeout=timeout, max_records=max_records)

    _fetch_records.snapshots_partitions = True  # type: ignore[attr-defined]
    _fetch_records.__wrapped__ = original  # type: ignore[attr-defined]
    AIOKafkaConsumerThread._fetch_records = _fetch_records  # type: ignore[method-assign]


def after_seek(app: faust.App, then: Callable[[], Awaitable[None]], before: Callable[[], None]) -> None:
    """Run ``before`` ahead of, and ``then`` after, the seek to the committed offsets that follows every
    assignment (start-up and each rebalance), once the table is restored.

    Corrects: Faust offers no hook between "the table is restored and the offsets are known" and "the stream
    starts": the worker needs one to resume from the positions in the restored state and to send again what the
    restored records still owe (``streams.worker.recovery``). Without it:
    ``tests/integration/test_worker.py::test_outputs_of_an_uncommitted_batch_are_sent_again_when_its_record_is_
    restored`` fails (nothing is sent again), and the chaos test loses records.
    """
    seek_to_committed = app.consumer.perform_seek

    async def perform_seek() -> None:
        before()
        await seek_to_committed()
        await then()

    app.consumer.perform_seek = perform_seek  # type: ignore[method-assign]


# --- the web server -------------------------------------------------------------------------------------------------


def serve_only_our_views(app: faust.App) -> None:
    """Make ``app``'s web server serve only the pages the app itself registers (``app.page``), none of Faust's.

    Corrects: Faust mounts its own views beside ours: ``/table/{name}/`` and ``/table/{name}/{key}/`` (every
    student's record: personal data, to anyone who can reach the port), ``/router/...`` (every worker's URL),
    and ``/`` (a status page, or with ``debug`` the sensor statistics, ``/assignment/`` and ``/graph/``).
    Faust 0.15 has a setting per view (``web_tables_enabled``...) but none for the page at ``/``, and its
    environment variables (``APP_WEB_TABLES_ENABLED``) override the settings an app passes, so a stray variable
    would serve the tables again. Emptying Faust's list of built-in views before the server mounts them closes
    them all. The engagement API forwards a request itself and asks Faust's router object, not its ``/router``
    views, which worker owns a student. Without it: ``tests/unit/test_worker_web_views.py`` and
    ``tests/integration/test_worker_routes.py`` fail (Faust answers ``/table/user-state/``).
    """
    blueprints: Any = app.web.blueprints
    if blueprints.applied:
        raise RuntimeError("Faust's web views are mounted already: close them before the web server starts")
    blueprints._enabled.clear()


# --- the changelog's partition count while a broker is lost ---------------------------------------------------------


def partition_count_unknown_is_not_a_mismatch(table: Any) -> None:
    """Faust checks once per source topic, at the table's first changelog write, that the changelog has as many
    partitions as the source (``Table._verify_source_topic_partitions``), from the consumer's metadata snapshot.

    Corrects: aiokafka counts a topic absent from a metadata answer as 0 partitions, and an answer taken while a
    broker is being lost can leave the changelog out. A worker whose first write came then raised
    ``PartitionsMismatch`` (4 against 0) and exited (``tests/integration/test_kafka_cluster.py``, a broker
    SIGKILLed under CPU load). No topic has 0 partitions: that count means "not known yet", so the check is left
    for the next write instead of failing; a real mismatch still fails."""
    original: Callable[[str], None] = table._verify_source_topic_partitions

    def verify(source_topic: str) -> None:
        consumer = table.app.consumer  # exists only once the app runs: looked up at each check
        if 0 in (consumer.topic_partitions(source_topic), consumer.topic_partitions(table.changelog_topic_name)):
            return
        original(source_topic)

    table._verify_source_topic_partitions = verify


# --- the group's assignment while a new topic is still unknown to a broker -------------------------------------------


async def perform_assignment_knowing_every_topic(
    coordinator: Any, perform: Callable[[], Awaitable[Any]], wait_seconds: float, retry_seconds: float = 0.2
) -> Any:
    """Run the leader's assignment (``perform``) again, after a metadata refresh, while a topic of the group is
    absent from ``coordinator``'s cluster metadata; exit to be restarted if it still is after ``wait_seconds``."""
    deadline = time.monotonic() + wait_seconds
    while True:
        assignments = await perform()
        cluster = coordinator._cluster
        unknown = sorted(t for t in coordinator._group_subscription if not cluster.partitions_for_topic(t))
        if not unknown:
            return assignments
        if time.monotonic() >= deadline:
            exit_to_be_restarted(
                f"the group's topics {unknown} are still missing from this worker's Kafka metadata after "
                f"{wait_seconds:.0f} s; assigning without them would start their partitions from empty state"
            )
        log.warning("the group's topics %s are missing from this consumer's Kafka metadata (a broker that has not "
                    "learnt of them yet answered); asking again before assigning", unknown)  # fmt: skip
        await coordinator._client.force_metadata_update()
        await asyncio.sleep(retry_seconds)


def assign_only_with_every_topic_known(wait_seconds: float) -> None:
    """Make the group leader assign partitions only once every topic the group subscribes to is in its metadata.

    Corrects: aiokafka counts a topic absent from a metadata answer as 0 partitions, and Faust's assignor then
    skips it ("Ignoring missing topic") and refreshes nothing for minutes. With several brokers, the changelog
    topic a worker has just created can be absent from the answer of a broker that has not learnt of it yet;
    every assignment of that group then gave no worker a changelog partition, so a worker taking over events
    partitions did not restore their state from the changelog, and students lost the events folded elsewhere
    (``tests/integration/test_chaos.py``, the cluster run: it lost events in CI and in 1 of 3 runs here).
    Patched on aiokafka's ``GroupCoordinator`` (the worker's only aiokafka consumer is Faust's); idempotent.
    Without it: ``tests/unit/test_faust_assignment_topics.py`` fails."""
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    original: Any = GroupCoordinator._perform_assignment
    if getattr(original, "knows_every_topic", False):
        return

    async def _perform_assignment(self: Any, response: Any) -> Any:
        return await perform_assignment_knowing_every_topic(self, lambda: original(self, response), wait_seconds)

    _perform_assignment.knows_every_topic = True  # type: ignore[attr-defined]
    GroupCoordinator._perform_assignment = _perform_assignment
