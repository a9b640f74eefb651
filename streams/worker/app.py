"""The stream-processing worker's Faust shell: the app, its table, the agent, the timers and the web views,
wired around the worker core (``streams.worker.core``), which holds everything a student's record goes through.

Throughput comes from what one message carries, not from Faust settings: each Kafka message is a batch of
events of one student (``EventBatch``) or of many (``PartitionBatch``), and ``noack_take`` gathers up to
``worker_take_max`` messages, which the core folds as one gather.

Processing guarantee: at-least-once with idempotent state updates (``core.engine``: the rules). Faust's own
internals are touched in ``streams.worker.faust_internals`` only; the offset recovery Faust needs is in
``streams.worker.recovery``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterable, Iterable, Sequence
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, EventT

from access.keys import KeyRing
from config.settings import Settings
from kafka_io.producer import EventProducer
from models.base import RiskModel
from models.registry import ModelRegistry
from models.serving import ModelProvider
from processors.experiments.config import DEFAULT_EXPERIMENTS_PATH, load_experiments
from processors.gamification.rules import DEFAULT_RULES_PATH
from processors.policy import PolicyConfig, policy_from_file
from schemas.topics import catalogue
from streams.worker import faust_internals as fi
from streams.worker import metrics as m
from streams.worker.api import admission_middleware, register_views
from streams.worker.bandit_learner import BanditLearner
from streams.worker.broker_auth import faust_credentials
from streams.worker.core.backpressure import Backlog
from streams.worker.core.clock import EngineClock
from streams.worker.core.engine import WorkerCore
from streams.worker.core.gathering import GatherPolicy
from streams.worker.core.heap import settle_heap
from streams.worker.core.ports import Message
from streams.worker.core.silence import SilencePass
from streams.worker.courses import CourseDirectory
from streams.worker.game_rules import RulesProvider, experiment_rules
from streams.worker.local_state import discard_unless_stopped_cleanly, mark_stopped_cleanly
from streams.worker.recovery import OffsetRecovery
from streams.worker.state_move import TABLE, app_id

log = logging.getLogger(__name__)

ASSIGNMENT_CHECK_SECONDS = 10.0


class FaustRecordTable:
    """The core's record table over a Faust table, each write made in the events partition that owns the key."""

    def __init__(self, table: Any, topic: str) -> None:
        self.table = table
        self.topic = topic  # the source topic: Faust names the changelog partition after its partition

    def get(self, key: bytes) -> bytes | None:
        raw: bytes | None = self.table.get(key)
        return raw

    def put(self, key: bytes, raw: bytes, partition: int) -> None:
        with fi.writing_as(fi.at_partition(self.topic, partition)):
            self.table[key] = raw

    def delete(self, key: bytes, partition: int) -> None:
        with fi.writing_as(fi.at_partition(self.topic, partition)):
            del self.table[key]

    def keys(self) -> Iterable[bytes]:
        keys: Iterable[bytes] = iter(self.table)
        return keys

    def items(self) -> Iterable[tuple[bytes, bytes]]:
        return self.table.items()  # type: ignore[no-any-return]


class FaustOwnership:
    """The events partitions assigned to this worker's consumer, and their committed offsets."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    def owned(self) -> set[int]:
        try:
            assignment = self.app.consumer.assignment()
        except Exception:  # no consumer yet (start-up, web views during a rebalance)
            return set()
        return {tp.partition for tp in assignment if tp.topic == self.topic}

    def committed(self, partition: int) -> int | None:
        return fi.committed_offset(self.app, TP(self.topic, partition))


class EngagementWorker:
    """Builds the Faust app (topics, table, agent, timers, web views) around the worker core."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: RiskModel | None = None,
        policy: PolicyConfig | None = None,
    ) -> None:
        self.settings = settings
        # A fixed model (tests) or whatever the registry has promoted, reloaded on promotion.
        models = ModelProvider(
            None if model else ModelRegistry(settings.model_registry), check_seconds=settings.model_check_seconds
        )
        if model is not None:
            models.model = model
        policy = policy or (policy_from_file(settings.policy_path) if settings.policy_path else policy_from_file())
        self.topics = catalogue(settings.topic_prefix, settings.event_partitions)
        events = self.topics.events.name
        # Everything the worker emits (risk updates, interventions, milestones, dead letters) goes through one
        # confluent-kafka producer: a few µs per message against ~100 µs for Faust's ``topic.send``. Offsets are
        # committed only once its outputs are acknowledged (faust_internals.commit_only_when_acknowledged).
        self.outputs = EventProducer(settings.kafka, self.topics, source="processor")
        self.courses = CourseDirectory(settings.kafka, self.topics.courses.name, self.outputs.send_dead_letter)
        self.courses.start()
        self.bandit = self._bandit_learner(settings, policy)
        url = f"http://{settings.worker_host}:{settings.worker_web_port}"
        self.keys = KeyRing.from_settings(settings)  # the API's keys: settings + registry, re-read on change
        self.app = faust.App(
            app_id(settings.topic_prefix),
            broker=f"kafka://{settings.kafka}",
            broker_credentials=faust_credentials(settings.kafka),
            store=settings.worker_store,
            datadir=str(worker_datadir(settings)),
            web_host=settings.worker_host,
            web_port=settings.worker_web_port,
            web_bind=settings.bind_host,  # where it listens; worker_host is where it is reached (the URL)
            web_application_options={"middlewares": [admission_middleware(settings, self.keys)]},
            canonical_url=url,
            topic_partitions=settings.event_partitions,
            topic_replication_factor=settings.kafka_replication_factor,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.broker_session_timeout_seconds,
            broker_heartbeat_interval=1.0,
            broker_commit_interval=settings.worker_commit_interval_seconds,
            key_serializer="raw",
            value_serializer="raw",
            producer_max_batch_size=settings.worker_changelog_batch_bytes,
            producer_linger=settings.worker_changelog_linger_ms / 1000,
        )
        self.users = self.app.Table(
            TABLE,
            default=None,
            partitions=settings.event_partitions,
            key_type=bytes,
            value_type=bytes,
            # its changelog is replicated as the settings ask (topic_replication_factor above), and so acknowledged
            extra_topic_configs={"min.insync.replicas": str(settings.kafka_min_insync_replicas)},
        )
        fi.partition_count_unknown_is_not_a_mismatch(self.users)
        fi.assign_only_with_every_topic_known(settings.worker_assign_wait_seconds)
        ownership = FaustOwnership(self.app, events)
        self.changelog_writes = fi.commit_only_when_acknowledged(
            self.app, self._outputs_acknowledged_before_commit, write_back=self._write_back
        )
        # The events path and the timers wait here before writing more (core.backpressure: why).
        backlog = Backlog(
            self.changelog_writes,
            lambda: self.outputs.in_flight,
            lambda: self.outputs.delivered,
            settings.worker_max_unacknowledged_writes,
        )
        self.core = WorkerCore(
            table=FaustRecordTable(self.users, events),
            outputs=self.outputs,
            ownership=ownership,
            topics=self.topics,
            partitions=settings.event_partitions,
            models=models,
            policy=policy,
            courses=self.courses,
            backlog=backlog,
            clock=EngineClock(
                settings.worker_clock,
                settings.event_clock_idle_seconds,
                ownership.owned,
                max_lead_seconds=settings.collector_max_future_skew_seconds,
            ),
            debounce_seconds=settings.score_debounce_seconds,
            record_cache_size=settings.worker_record_cache_size,
            rules=RulesProvider(
                settings.gamification_rules_path or DEFAULT_RULES_PATH, settings.gamification_check_seconds
            )
            if settings.gamification
            else None,
            arms=self.bandit.arms if self.bandit is not None else None,
        )
        self.silence = SilencePass(
            self.core,
            tick_seconds=settings.silence_tick_seconds,
            rescore_after_seconds=settings.rescore_after_seconds,
            dormant_rescore_after_seconds=settings.dormant_rescore_after_seconds,
        )
        self.recovery = OffsetRecovery(
            self.app,
            self.core,
            bootstrap=settings.kafka,
            topic=events,
            group=app_id(settings.topic_prefix),
            lost_grace_seconds=settings.worker_lost_message_grace_seconds,
        )
        fi.commit_past_duplicate_acknowledgements(self.app)
        fi.fetch_within(self.app, settings.worker_fetch_max_wait_ms)
        fi.fetch_only_partitions_active_when_asked()
        fi.after_seek(self.app, self._after_seek, before=self._before_seek)
        fi.serve_only_our_views(self.app)  # no /table/ dump of every record, no /router/ or /stats/
        self.events_topic = self.app.topic(events, key_type=bytes, value_type=bytes)  # our JSON: Faust passes bytes
        self._register()

    def _bandit_learner(self, settings: Settings, policy: PolicyConfig) -> BanditLearner | None:
        """Experiments and the bandit, when on: the file is checked whole (a worker does not start on a bad one)."""
        if not settings.experiments:
            return None
        path = settings.experiments_path or DEFAULT_EXPERIMENTS_PATH
        experiments = load_experiments(path)
        learner = BanditLearner(
            settings.kafka,
            self.topics.bandit_outcomes.name,
            experiments,
            policy,
            bandit=settings.bandit,
            seed=settings.bandit_seed,
            dead_letter=self.outputs.send_dead_letter,
        )
        learner.arms.xp_rules = experiment_rules(experiments, Path(path).resolve().parent)
        learner.start()
        return learner

    # --- wiring ---------------------------------------------------------------------------------------------
    def _register(self) -> None:
        s = self.settings
        self.app.agent(self.events_topic, name="process-events")(self._process)
        self.app.timer(max(0.05, s.score_debounce_seconds / 3), name="flush-debounced")(self.core.flush_debounced)
        self.app.timer(s.silence_tick_seconds, name="rescore-silent")(self.silence.tick)
        self.app.timer(5.0, name="unstick-commits")(self.recovery.unstick_commits)
        grace = s.worker_lost_message_grace_seconds
        self.app.timer(max(0.5, grace / 3), name="read-lost-tails")(self.recovery.read_lost_tails)
        self.app.timer(ASSIGNMENT_CHECK_SECONDS, name="watch-assignment")(self.recovery.watch_assignment)
        # Scoring checks the registry too, but only when it scores: a promotion during a quiet spell would wait
        # for the next event (and the serving gauge would say the old model until then). Same for the rules file.
        check = min(s.model_check_seconds, s.gamification_check_seconds)
        self.app.timer(max(0.5, check), name="watch-model-and-rules")(self._watch_model_and_rules)
        register_views(self.app, self.core, s, self.keys, self.users.name)

    async def _watch_model_and_rules(self) -> None:
        self.core.models.current()
        if self.core.rules is not None:
            self.core.rules.current()

    def _before_seek(self) -> None:
        dropped = self.core.rebalanced()  # after a rebalance: cached records of partitions now elsewhere go
        if dropped:
            log.info("rebalance: dropped %d cached records of partitions now elsewhere", dropped)

    async def _after_seek(self) -> None:
        await self.recovery.resume_from_positions()
        restored, resent = await self.core.restore_owed()  # after the seek: the committed offsets are known
        if restored or resent:
            log.info("restored %d re-scores owed, sent %d outputs of uncommitted batches again", restored, resent)

    # --- the agent --------------------------------------------------------------------------------------------
    async def _process(self, stream: AsyncIterable[Any]) -> None:
        # Faust's take_events acknowledges a batch when its generator moves on or closes, processed or not (a
        # stop or rebalance cancelling us mid-batch). take_gathers (Faust's noack_take, gathering on while the
        # stream is behind) acknowledges nothing: each batch is acknowledged here once folded, so Faust never
        # commits an offset whose message is not in the state, and a batch a stop interrupts goes to the
        # partition's next owner whole.
        s = self.settings
        policy = GatherPolicy(s.worker_take_max, s.worker_take_within_seconds, s.worker_take_behind_seconds,
                              s.worker_take_longest_seconds)  # fmt: skip
        async for batch in fi.take_gathers(stream, policy):
            await self.handle_batch(batch)
            for event in batch:
                await stream.ack(event)  # type: ignore[attr-defined]

    async def handle_batch(self, events: Sequence[EventT[bytes]]) -> None:
        batch = [Message(e.message.partition, e.message.offset, e.message.timestamp, e.value) for e in events]
        async with self.core.lock:
            await self.core.backlog.ebb()  # holding the batch: Faust's buffers fill and its consumer stops fetching
            skipped = await self.recovery.read_skipped(batch)
            if skipped:  # folded in offset order with the batch, then marked done for Faust's commits
                batch = sorted([*skipped, *batch], key=lambda message: (message.partition, message.offset))
            started, cpu = time.perf_counter(), time.thread_time()
            self.core.fold(batch)
            m.GATHER_CPU_SECONDS.inc(time.thread_time() - cpu)
            m.GATHER_SECONDS.inc(time.perf_counter() - started)
            await self.recovery.mark_done(skipped)

    # --- commits ----------------------------------------------------------------------------------------------
    async def _write_back(self) -> None:
        """Before Faust commits: the records changed since the last commit into the table (not while a timer
        holds the records between changing them and Kafka acknowledging their outputs)."""
        async with self.core.lock:
            self.core.flush_records()

    async def _outputs_acknowledged_before_commit(self) -> None:
        """The outputs sent so far, acknowledged, with nothing new sent meanwhile: librdkafka's flush waits until
        its queue is empty, which a steady stream of outputs (a replay's silence pass) can put off without end.
        Everything that sends outputs does so holding the lock, and Kafka takes the ones queued within
        milliseconds, so the events path pauses that long once per commit."""
        async with self.core.lock:
            await self.core.outputs_acknowledged()


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Run one worker process until SIGTERM/SIGINT (Faust handles the signals and the clean shutdown)."""
    from kafka_io.admin import Replication, ensure_topics

    ensure_topics(
        settings.kafka,
        catalogue(settings.topic_prefix, settings.event_partitions).all(),
        replication=Replication(*settings.kafka_replication),
    )
    datadir = worker_datadir(settings)
    discard_unless_stopped_cleanly(datadir)  # streams.worker.local_state: why
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    worker = EngagementWorker(settings)
    settle_heap()  # the collector as the benches of the core run it too (streams.worker.core.heap)
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
