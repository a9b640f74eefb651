"""The leaderboard service: the standings topic in, ranks out (HTTP, ``leaderboards.api``), snapshots published.

Every student's newest standing is on the compacted standings topic (key: user id), so the boards are state that
can always be rebuilt: at start the consumer reads every partition from the beginning to the end offsets it finds
(bulk: scores into dicts, each board sorted once at the end), then the API answers, and the consumer keeps
applying new standings in batches of ``leaderboard_apply_batch`` under the lock readers take (a reader waits for
at most one batch). No consumer group offsets: every service process holds every board (the boards are the whole
point of the stage), and a restart reads the topic again. A tombstone (a student erased) removes the student.

A message that is not a ``Standing`` (or whose key is not its user id, which compaction relies on) is
dead-lettered and counted, never silently skipped.

Every ``leaderboard_snapshot_seconds`` the top ``leaderboard_snapshot_top`` of each current board goes to the
leaderboard-snapshots topic (``leaderboards.snapshots``).

Weekly leagues (``leaderboards.leagues``): the same consumer reads the compacted league-results topic (each
student's newest result: their tier) to its end with the standings, and follows it. After the rebuild and after
every round of standings, ``LeagueCloser`` closes the week just ended once its grace has passed, and publishes the
results (ids ``{user}:league:{week}``), retrying until Kafka acknowledges them; a week with results on the topic is
never closed again, so a restart publishes nothing - except the results a close cut short by the process dying left
unpublished (``LeagueBook.seal``). An erased student's result gets a tombstone.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import uvicorn
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from pydantic import ValidationError

from config.settings import Settings
from kafka_io.client import kafka_conf
from kafka_io.producer import EventProducer
from leaderboards import metrics
from leaderboards.boards import Boards, InvalidStanding
from leaderboards.leagues import LeagueBook
from leaderboards.snapshots import slot, snapshot_rows
from processors.gamification.leagues import LeagueRules
from schemas.gamification import LeagueResult, Standing
from schemas.messages import DeadLetter
from schemas.topics import TopicCatalogue, catalogue

log = logging.getLogger(__name__)

SOURCE = "leaderboards"
Clock = Callable[[], datetime]
LAG_EVERY_SECONDS = 2.0
LEAGUE_RETRY_SECONDS = 5.0
FREEZE_EVERY_SECONDS = 30.0


def utc_now() -> datetime:
    return datetime.now(UTC)


def league_book(settings: Settings) -> LeagueBook:
    rules = LeagueRules(settings.league_group_size, settings.league_promote, settings.league_demote)
    return LeagueBook(rules, settings.league_close_grace_seconds, bulk=True)


def _freeze_survivors() -> None:
    """Collect the young generations, then move what survived out of the collector's reach (``gc.freeze``).

    The boards are long-lived objects that form no cycles; left in the oldest generation, each full collection
    walked them all (~120 ms at 1M students, with the process stopped: readers waited). Cyclic garbage is
    collected while young, before it is frozen.
    """
    gc.collect(1)
    gc.freeze()


@dataclass
class Held:
    """The boards, and the lock the consumer (writing) and the API (reading) share."""

    boards: Boards = field(default_factory=lambda: Boards(bulk=True))
    leagues: LeagueBook = field(default_factory=lambda: league_book(Settings()))  # the runner passes its settings
    lock: threading.Lock = field(default_factory=threading.Lock)
    ready: threading.Event = field(default_factory=threading.Event)
    read_at_start: int = 0  # standings read so far during the rebuild

    def refresh_gauges(self) -> None:
        with self.lock:
            counts = self.boards.counts()
            students, courses = len(self.boards), sum(1 for s in self.boards.scopes() if s != "global")
        for (board, period), n in counts.items():
            metrics.STUDENTS.labels(board, period).set(n)
        metrics.HELD.set(students)
        metrics.COURSE_BOARDS.set(courses)
        with self.lock:
            weeks = self.leagues.open_weeks()
            players = self.leagues.players(weeks[-1]) if weeks else 0
        metrics.LEAGUE_PLAYERS.set(players)


class StandingsConsumer:
    """Reads the standings and league-results topics: to their ends first (the rebuild), then as messages come."""

    def __init__(
        self,
        settings: Settings,
        held: Held,
        producer: EventProducer,
        clock: Clock = utc_now,
        closer: LeagueCloser | None = None,
    ) -> None:
        self.settings, self.held, self.producer, self.clock = settings, held, producer, clock
        self.topics: TopicCatalogue = catalogue(settings.topic_prefix, settings.event_partitions)
        self.topic = self.topics.standings.name
        self.results_topic = self.topics.league_results.name
        self.closer = closer
        self.batch = settings.leaderboard_apply_batch
        self._consumer = Consumer(
            kafka_conf(
                settings.kafka,
                {  # the group is never joined or committed
                    "group.id": f"{settings.topic_prefix}-leaderboards-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                    "fetch.max.bytes": 16 * 1024 * 1024,
                },
            )
        )
        self._partitions: list[TopicPartition] = []
        self._last_timestamp = 0.0

    def run(self, stop: threading.Event) -> None:
        try:
            gc.disable()  # the rebuild makes millions of objects and no cycles: no collector passes over them
            try:
                self._rebuild(stop)
            finally:
                gc.enable()
            next_lag = next_freeze = 0.0
            while not stop.is_set():
                self._apply(self._consumer.consume(num_messages=self.batch * 8, timeout=0.2))
                if self.closer is not None:
                    self.closer.step()
                now = time.monotonic()
                if now >= next_lag:
                    self._measure_lag()
                    next_lag = now + LAG_EVERY_SECONDS
                if now >= next_freeze:
                    _freeze_survivors()
                    next_freeze = now + FREEZE_EVERY_SECONDS
        finally:
            self._consumer.close()

    def _rebuild(self, stop: threading.Event) -> None:
        started = time.monotonic()
        self._partitions = []
        for topic in (self.topic, self.results_topic):
            meta = self._consumer.list_topics(topic, timeout=30).topics[topic]
            if meta.error is not None:
                raise RuntimeError(f"the topic {topic} cannot be read: {meta.error}")
            self._partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(meta.partitions)]
        pending: dict[tuple[str, int], int] = {}
        for tp in self._partitions:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=30)
            if high > low:
                pending[(tp.topic, tp.partition)] = high
        self._consumer.assign(self._partitions)
        log.info(
            "leaderboards: rebuilding from %s and %s (%d messages at most)",
            self.topic,
            self.results_topic,
            sum(pending.values()),
        )
        while pending and not stop.is_set():
            messages = self._consumer.consume(num_messages=10_000, timeout=0.5)
            for msg in messages:
                err = msg.error()
                where = (msg.topic() or "", msg.partition() or 0)
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    pending.pop(where, None)  # the end as it is now, compacted gaps and all
                elif err is None and (msg.offset() or 0) + 1 >= pending.get(where, 0):
                    pending.pop(where, None)
            self.held.read_at_start += self._apply(messages)
        with self.held.lock:
            self.held.boards.seal()
            self.held.leagues.seal()
        gc.freeze()  # the boards, as built: a full collection of them would stop the process for seconds
        seconds = time.monotonic() - started
        metrics.REBUILD_SECONDS.set(seconds)
        metrics.REBUILD_STANDINGS.set(self.held.read_at_start)
        self.held.ready.set()
        metrics.READY.set(1)
        self.held.refresh_gauges()
        log.info(
            "leaderboards: %d students on the boards, %d with a league result (closed through %s) after %.1f s; "
            "serving",
            len(self.held.boards),
            len(self.held.leagues),
            self.held.leagues.closed_through,
            seconds,
        )
        if self.closer is not None:
            self.closer.step()

    def _apply(self, messages: list[Message]) -> int:
        """Decode outside the lock, apply in batches under it; the number of messages (not errors) read."""
        decoded: list[tuple[Standing | str, Message]] = []  # a standing, or the user id of a tombstone
        results: list[LeagueResult | str] = []  # league results, or the user id of a tombstone
        read = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("leaderboards: consumer error: %s", err)
                continue
            read += 1
            if msg.topic() == self.results_topic:
                result = self._decode_result(msg)
                if result is not None:
                    results.append(result)
                continue
            item = self._decode(msg)
            if item is not None:
                decoded.append((item, msg))
            stamp = msg.timestamp()[1]
            if stamp > 0:
                self._last_timestamp = stamp / 1000
        if results:
            with self.held.lock:
                for result in results:
                    if isinstance(result, str):
                        self.held.leagues.results.pop(result, None)
                    else:
                        self.held.leagues.apply_result(result)
        today = self.clock().date()
        counts = dict.fromkeys(metrics.STANDING_OUTCOMES, 0)
        late = 0
        erased: list[str] = []  # students with a league result to tombstone
        for start in range(0, len(decoded), self.batch):
            with self.held.lock:
                for item, msg in decoded[start : start + self.batch]:
                    if isinstance(item, str):
                        counts["forgotten"] += self.held.boards.forget(item)
                        if self.held.leagues.forget(item):
                            erased.append(item)
                        continue
                    try:
                        applied = self.held.boards.apply(item, today)
                    except InvalidStanding as exc:
                        self._dead_letter(msg.value() or b"", str(exc), msg, item.user_id)
                        counts["invalid"] += 1
                        continue
                    counts[applied.outcome] += 1
                    for reason, _board, _period in applied.skipped:
                        metrics.SKIPPED.labels(reason).inc()
                    if applied.outcome == "applied" and not self.held.leagues.apply_standing(item):
                        late += 1
        for outcome, n in counts.items():
            if n:
                metrics.STANDINGS.labels(outcome).inc(n)
        if late:
            metrics.LEAGUE_LATE.inc(late)
        if erased and self.closer is not None:
            self.closer.erase(erased)
        return read

    def _decode_result(self, msg: Message) -> LeagueResult | str | None:
        key = (msg.key() or b"").decode("utf-8", errors="replace")
        value = msg.value()
        if value is None:
            return key or None  # an erased student's tombstone
        try:
            result = LeagueResult.model_validate_json(value)
        except ValidationError as exc:
            self._dead_letter(value, f"not a league result: {exc}", msg, key or None)
            return None
        if key != result.user_id:
            self._dead_letter(value, f"keyed {key!r} but the league result is {result.user_id!r}'s", msg, None)
            return None
        return result

    def _decode(self, msg: Message) -> Standing | str | None:
        key = (msg.key() or b"").decode("utf-8", errors="replace")
        value = msg.value()
        if value is None:
            return key or None  # a tombstone: the student was erased
        try:
            standing = Standing.model_validate_json(value)
        except ValidationError as exc:
            self._dead_letter(value, f"not a standing: {exc}", msg, key or None)
            metrics.STANDINGS.labels("invalid").inc()
            return None
        if key != standing.user_id:
            self._dead_letter(value, f"keyed {key!r} but the standing is {standing.user_id!r}'s", msg, None)
            metrics.STANDINGS.labels("invalid").inc()
            return None
        return standing

    def _dead_letter(self, value: bytes, reason: str, msg: Message | None, user_id: str | None) -> None:
        letter = DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=self.clock(),
            source=SOURCE,
            reason=reason,
            user_id=user_id,
            raw=value.decode("utf-8", errors="replace"),
            original_topic=self.topic if msg is None else msg.topic() or self.topic,
            original_partition=None if msg is None else msg.partition(),
            original_offset=None if msg is None else msg.offset(),
        )
        log.warning("leaderboards: dead letter: %s", reason[:300])
        self.producer.send_dead_letter(letter)

    def _measure_lag(self) -> None:
        try:
            positions = self._consumer.position(self._partitions)
            lag = 0
            for tp in positions:
                # The end offsets the last fetches brought: a broker round trip each (cached=False) waits behind
                # the consumer's long-polling fetch, and cost ~0.5 s per partition of the applying thread's time.
                _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                lag += max(0, high - tp.offset) if tp.offset >= 0 else 0
        except Exception as exc:  # Kafka away for a moment: the gauges keep their last values
            log.warning("leaderboards: lag not measured (%s)", exc)
            return
        metrics.LAG.set(lag)
        metrics.LAG_SECONDS.set(max(0.0, time.time() - self._last_timestamp) if lag and self._last_timestamp else 0)
        self.held.refresh_gauges()


class LeagueCloser:
    """Closes the week just ended when it is due and publishes its results (on the consumer's thread, between rounds
    of standings, so every standing read before the close is in it). Results Kafka did not acknowledge are kept and
    sent again (the same messages) every ``LEAGUE_RETRY_SECONDS`` until it does."""

    def __init__(self, settings: Settings, held: Held, producer: EventProducer, clock: Clock = utc_now) -> None:
        self.held, self.producer, self.clock = held, producer, clock
        self.topic = catalogue(settings.topic_prefix, settings.event_partitions).league_results.name
        self.pending: list[LeagueResult | str] = []  # results, or user ids to tombstone
        self._retry_at = 0.0

    def erase(self, user_ids: list[str]) -> None:
        self.pending += user_ids

    def step(self) -> None:
        if not self.held.ready.is_set():
            return
        with self.held.lock:
            closed = self.held.leagues.close_due(self.clock())
        if closed:
            log.info("leaderboards: week %s closed: %d league results to publish", closed[0].week, len(closed))
            self.pending += closed
            self._retry_at = 0.0
        if self.pending and time.monotonic() >= self._retry_at:
            self._publish()

    def _publish(self, timeout: float = 30.0) -> None:
        failed_before = self.producer.stats.failed
        for item in self.pending:
            if isinstance(item, str):
                self.producer.send_encoded(item.encode(), None, topic=self.topic)
            else:
                self.producer.send_encoded(item.user_id.encode(), item.model_dump_json().encode(), topic=self.topic)
        if self.producer.flush(timeout) or self.producer.stats.failed > failed_before:
            metrics.LEAGUE_PUBLISH_FAILURES.inc()
            self._retry_at = time.monotonic() + LEAGUE_RETRY_SECONDS
            log.warning("leaderboards: league results not acknowledged (%s); retrying", self.producer.stats.last_error)
            return
        metrics.LEAGUE_RESULTS.inc(sum(1 for item in self.pending if not isinstance(item, str)))
        self.pending = []


class SnapshotPublisher:
    """The top of every current board to the snapshots topic, at every interval's start (and once when ready)."""

    def __init__(self, settings: Settings, held: Held, producer: EventProducer, clock: Clock = utc_now) -> None:
        self.held, self.producer, self.clock = held, producer, clock
        self.interval = settings.leaderboard_snapshot_seconds
        self.top = settings.leaderboard_snapshot_top
        self.topic = catalogue(settings.topic_prefix, settings.event_partitions).leaderboard_snapshots.name

    def run(self, stop: threading.Event) -> None:
        if self.interval <= 0:
            return
        while not self.held.ready.wait(0.5):
            if stop.is_set():
                return
        while not stop.is_set():
            try:
                self.publish(slot(self.clock(), self.interval))
            except Exception as exc:  # Kafka away: the next interval takes a new snapshot
                metrics.SNAPSHOTS.labels("failed").inc()
                log.warning("leaderboards: snapshot not published (%s)", exc)
            wait = self.interval - self.clock().timestamp() % self.interval
            stop.wait(wait)

    def publish(self, taken_at: datetime, timeout: float = 30.0) -> int:
        with self.held.lock:
            rows = snapshot_rows(self.held.boards, taken_at, self.top)
        for row in rows:
            self.producer.send_encoded(row.board.encode(), row.model_dump_json().encode(), topic=self.topic)
        if self.producer.flush(timeout) or self.producer.stats.failed:
            raise RuntimeError(f"Kafka did not acknowledge the snapshot ({self.producer.stats.last_error})")
        metrics.SNAPSHOT_ROWS.inc(len(rows))
        metrics.SNAPSHOTS.labels("ok").inc()
        return len(rows)


# --- the process ---------------------------------------------------------------------------------------------------


@dataclass
class Service:
    settings: Settings
    held: Held
    consumer: StandingsConsumer
    snapshots: SnapshotPublisher
    producer: EventProducer
    server: uvicorn.Server
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    failed: list[BaseException] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.leaderboard_port}"

    def _guard(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
        def run() -> None:
            try:
                target(self.stop)
            except BaseException as exc:
                log.exception("leaderboards: the %s thread died; stopping the process", name)
                self.failed.append(exc)
                self.server.should_exit = True

        return threading.Thread(target=run, name=f"leaderboards-{name}", daemon=True)

    def start_background(self) -> None:
        self.threads = [self._guard("consumer", self.consumer.run), self._guard("snapshots", self.snapshots.run)]
        for thread in self.threads:
            thread.start()

    def shutdown(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)
        self.producer.close(10.0)
