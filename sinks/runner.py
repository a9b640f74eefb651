"""Runs any ``BatchingSink`` against its topic: the Kafka half of the sink contract, written once.

- Batches by size (``sink_batch_rows``) and time (``sink_batch_seconds``): ClickHouse likes large, rare inserts.
- Commits offsets only after ``write`` succeeded, synchronously, for exactly the partitions in the batch.
- When ``write`` fails (ClickHouse down), pauses consumption, retries the same batch with capped exponential
  backoff, and resumes by itself once it succeeds: nothing is lost. Memory stays bounded: one batch being
  gathered (at most ``batch_rows`` plus one message's rows), one in flight, and librdkafka's prefetch queue
  (``queued.max.messages.kbytes``).
- Messages the sink cannot decode go to the dead-letter topic with the reason, then count as handled.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from kafka_io.client import Kafka, kafka_conf
from kafka_io.producer import EventProducer
from schemas.messages import DeadLetter
from sinks.base import BatchingSink, SinkBatch, UndecodableMessage

log = logging.getLogger(__name__)

ROWS_WRITTEN = Counter("engage_sink_rows_written_total", "Rows written by a sink", ["sink"])
WRITE_FAILURES = Counter("engage_sink_write_failures_total", "Failed sink writes (retried)", ["sink"])
DEAD_LETTERED = Counter("engage_sink_dead_letters_total", "Messages a sink could not decode", ["sink"])
WRITE_SECONDS = Histogram("engage_sink_write_seconds", "Duration of one sink write", ["sink"])
BUFFERED_ROWS = Gauge("engage_sink_inflight_rows", "Rows in a sink's write in flight", ["sink"])


def sink_group(sink_name: str) -> str:
    """The consumer group a sink commits its offsets in (what ``sinks.positions.sink_lag`` reads back)."""
    return f"engage-sink-{sink_name}"


@dataclass
class RunnerStats:
    messages: int = 0
    rows_written: int = 0
    writes: int = 0
    write_failures: int = 0
    dead_letters: int = 0
    max_buffered_rows: int = 0


class SinkRunner:
    def __init__(
        self,
        sink: BatchingSink,
        *,
        bootstrap: Kafka,
        topic: str,
        dead_letters: EventProducer | None,
        group_id: str | None = None,
        batch_rows: int = 50_000,
        batch_seconds: float = 1.0,
        max_backoff_seconds: float = 10.0,
        consumer_config: dict[str, object] | None = None,
    ) -> None:
        self.sink = sink
        self.topic = topic
        self.dead_letters = dead_letters
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.stats = RunnerStats()
        for counter in (ROWS_WRITTEN, WRITE_FAILURES, DEAD_LETTERED):
            counter.labels(sink.name)  # exported at 0 from the start: rate() and the alert rules see the series
        self._stop = threading.Event()
        self._assigned = threading.Event()
        conf: dict[str, object] = kafka_conf(
            bootstrap,
            {
                "group.id": group_id or sink_group(sink.name),
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
                "max.poll.interval.ms": 300_000,
                "fetch.max.bytes": 52_428_800,
                "queued.max.messages.kbytes": 131_072,
            },
        )
        conf.update(consumer_config or {})
        self._consumer = Consumer(conf)
        self._batch = SinkBatch(topic)
        self._batch_started = 0.0
        self._batch_dead_letters = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{sink.name}-writer")
        self._inflight: tuple[SinkBatch, Future[None]] | None = None

    def stop(self) -> None:
        self._stop.set()

    # --- the loop ---------------------------------------------------------------------------------------
    def run(self, *, idle_exit_seconds: float | None = None) -> RunnerStats:
        """Consume until ``stop()``; with ``idle_exit_seconds``, also return after that long with no messages."""
        self._setup_with_retry()
        # Batches hold hundreds of thousands of short-lived dicts; default GC thresholds would rescan them
        # many times per batch (measured: ~3x slower decoding). Nothing here builds reference cycles.
        gc.freeze()
        gc.set_threshold(100_000, 50, 1_000)
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        last_message = time.monotonic()
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=2_000, timeout=0.1)
                for msg in messages:
                    self._handle(msg)
                    if len(self._batch) >= self.batch_rows:
                        self._flush()  # mid-poll too: a batch never grows past batch_rows + one message
                if messages or not self._assigned.is_set():
                    last_message = time.monotonic()  # idle time counts from the first assignment on
                if self._inflight is not None and self._inflight[1].done():
                    self._finish_inflight()  # commit as soon as the write is stored, not at the next flush
                if self._due():
                    self._flush()
                if idle_exit_seconds is not None and time.monotonic() - last_message > idle_exit_seconds:
                    break
            self._flush()
            self._finish_inflight()
        finally:
            self._writer.shutdown(wait=True)
            self._consumer.close()
        return self.stats

    def _setup_with_retry(self) -> None:
        """The destination may be down when the sink starts: wait for it instead of crashing."""
        backoff = 0.2
        while not self._stop.is_set():
            try:
                self.sink.setup()
                return
            except Exception as exc:
                log.warning("%s setup failed (%s); retrying in %.1fs", self.sink.name, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff_seconds)

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error on %s: %s", self.topic, err)
            return
        self.stats.messages += 1
        partition, offset, value = msg.partition() or 0, msg.offset() or 0, msg.value() or b""
        try:
            rows = self.sink.decode(value, partition, offset)
        except UndecodableMessage as exc:
            self._dead_letter(value, str(exc), partition, offset)
            rows = []
        if self._batch.empty:
            self._batch_started = time.monotonic()
        self._batch.add(partition, offset, rows)
        self.stats.max_buffered_rows = max(self.stats.max_buffered_rows, len(self._batch))

    def _due(self) -> bool:
        if self._batch.empty:
            return False
        return len(self._batch) >= self.batch_rows or time.monotonic() - self._batch_started >= self.batch_seconds

    def _flush(self) -> None:
        """Hand the current batch to the writer thread, after the previous one is stored and committed.

        One write is in flight while the next batch is decoded: ClickHouse works on one core while Python
        decodes on the other. Memory stays bounded by two batches.
        """
        self._finish_inflight()
        batch = self._batch
        if batch.empty:
            return
        self._batch = SinkBatch(self.topic)
        BUFFERED_ROWS.labels(self.sink.name).set(len(batch))
        self._inflight = (batch, self._writer.submit(self._write, batch))

    def _write(self, batch: SinkBatch) -> None:
        with WRITE_SECONDS.labels(self.sink.name).time():
            if batch.rows:
                self.sink.write(batch)

    def _finish_inflight(self) -> None:
        """Wait for the in-flight write; while it fails, pause and retry with backoff; then commit its offsets."""
        if self._inflight is None:
            return
        batch, future = self._inflight
        self._inflight = None
        error = future.exception()
        backoff = 0.2
        paused = False
        while error is not None:
            self.stats.write_failures += 1
            WRITE_FAILURES.labels(self.sink.name).inc()
            log.warning(
                "%s write of %s failed (%s); retrying in %.1fs",
                self.sink.name,
                batch.range_label(),
                error,
                backoff,
            )
            if not paused:
                self._consumer.pause(self._consumer.assignment())
                paused = True
            if self._stop.wait(backoff):
                return  # shutting down: offsets stay uncommitted, the batch is re-delivered later
            backoff = min(backoff * 2, self.max_backoff_seconds)
            # Keep group membership alive while paused (no messages are returned for paused partitions).
            self._consumer.consume(num_messages=1, timeout=0)
            try:
                self._write(batch)
                error = None
            except Exception as exc:
                error = exc
        if self._batch_dead_letters and self.dead_letters is not None:
            # A refused message counts as handled only once its dead letter is safely in Kafka.
            if self.dead_letters.flush(30.0):
                raise RuntimeError(f"{self.sink.name}: dead letters not acknowledged; not committing")
            self._batch_dead_letters = 0
        self._commit([TopicPartition(self.topic, p, o + 1) for p, o in batch.last_offsets.items()])
        self.stats.rows_written += len(batch)
        self.stats.writes += 1
        ROWS_WRITTEN.labels(self.sink.name).inc(len(batch))
        if paused:
            self._consumer.resume(self._consumer.assignment())

    def _commit(self, offsets: list[TopicPartition], give_up_seconds: float = 30.0) -> None:
        """Commit after a stored batch, retrying while the group coordinator is away (Kafka restarting).

        Giving up loses nothing: the rows are stored, and the offsets are either covered by a later commit or
        re-delivered after a restart into tables that collapse duplicates. (A commit error used to end the
        sink's thread while its process lived on: the chaos suite caught an events table no longer filled.)"""
        deadline = time.monotonic() + give_up_seconds
        delay = 0.2
        while True:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=False)
                return
            except KafkaException as exc:
                if time.monotonic() > deadline or self._stop.is_set():
                    log.warning("%s: offsets not committed (%s); they will be re-delivered", self.sink.name, exc)
                    return
                log.warning("%s: commit failed (%s); retrying in %.1fs", self.sink.name, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff_seconds)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.set()

    def wait_assigned(self, timeout: float) -> bool:
        return self._assigned.wait(timeout)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Hand over cleanly: store what we hold for the partitions we are losing before they move.
        try:
            self._flush()
            self._finish_inflight()
        except Exception as exc:  # the new owner re-reads the uncommitted range; tables collapse duplicates
            log.warning("%s could not flush on revoke: %s", self.sink.name, exc)
            self._batch = SinkBatch(self.topic)

    def _dead_letter(self, value: bytes, reason: str, partition: int, offset: int) -> None:
        self.stats.dead_letters += 1
        self._batch_dead_letters += 1
        DEAD_LETTERED.labels(self.sink.name).inc()
        if self.dead_letters is None:
            log.error(
                "undecodable message at %s[%d]@%d and no dead-letter producer: %s",
                self.topic,
                partition,
                offset,
                reason,
            )
            return
        self.dead_letters.send_dead_letter(
            DeadLetter(
                dead_letter_id=str(uuid.uuid4()),
                received_at=datetime.now(UTC),
                source=f"sink:{self.sink.name}",
                reason=reason,
                raw=value.decode("utf-8", errors="replace"),
                original_topic=self.topic,
                original_partition=partition,
                original_offset=offset,
            )
        )
