"""The bandit's posteriors, in every worker: a background reader of the bandit-outcomes topic.

Like the course directory (``streams.worker.courses``): not a Faust agent, because each worker needs every outcome
(the posteriors are global, the students are not). It assigns all partitions from the beginning (no group commits),
so a started worker knows everything the topic still holds: the bandit's memory is the topic's retention. It folds
into a private ``BanditState`` (``processors.experiments.arms.Learner``) and publishes a copy for decisions at most
every ``publish_seconds``: decisions never see a state the thread is changing.

An outcome the learner refuses (not the contract, or an arm the policy never offers its tier) goes to the
dead-letter topic with the reason. Every worker reads it, so its letter's id and time are the message's own
(``bandit-outcomes:<partition>:<offset>``, the Kafka timestamp): the warehouse keeps one row however many send it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from confluent_kafka import Message as KafkaMessage

from kafka_io.admin import whole_topic_reader
from kafka_io.client import Kafka
from processors.experiments.arms import Arms, Learner
from processors.experiments.bandit import BanditConfig, BanditState
from processors.experiments.config import ExperimentsConfig
from processors.policy import PolicyConfig
from schemas.messages import DeadLetter, kept_raw
from streams.worker import metrics as m

log = logging.getLogger(__name__)


class BanditLearner:
    def __init__(
        self,
        bootstrap: Kafka,
        topic: str,
        experiments: ExperimentsConfig,
        policy: PolicyConfig,
        *,
        bandit: bool = True,
        seed: int = 0,
        config: BanditConfig | None = None,
        dead_letter: Callable[[DeadLetter], None] | None = None,
        publish_seconds: float = 1.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dead_letter = dead_letter
        self.publish_seconds = publish_seconds
        config = config or BanditConfig()
        offered: dict[str, frozenset[str]] = {
            tier: frozenset(k.value for k in p.intervention_types) for tier, p in policy.tiers.items()
        }
        self.learner = Learner(BanditState(), config, offered)
        # What decisions read (``arms``): the experiments, and the last published copy of the posteriors.
        self.arms = Arms(experiments, BanditState() if bandit else None, config, seed)
        self._bandit = bandit
        self._changed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self._bandit:
            return  # nothing to learn for: experiments need no state
        self._thread = threading.Thread(target=self._run, name="bandit-learner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            consumer = whole_topic_reader(self.bootstrap, self.topic, "bandit-learner")
        except Exception:  # as below: reading is best effort, the worker goes on without it
            log.exception("bandit learner could not open %s", self.topic)
            return
        try:
            published = time.monotonic()
            while not self._stop.is_set():
                for msg in consumer.consume(num_messages=1000, timeout=0.2):
                    if msg.error() is None:
                        self.apply(msg)
                if self._changed and time.monotonic() - published >= self.publish_seconds:
                    self.publish()
                    published = time.monotonic()
        except Exception:  # the learner must never take the worker down: decisions go on with the last posteriors
            log.exception("bandit learner stopped reading %s", self.topic)
        finally:
            consumer.close()

    def apply(self, msg: KafkaMessage) -> None:
        raw = msg.value() or b""
        verdict = self.learner.fold(raw)
        m.BANDIT_OUTCOMES.labels(verdict.result).inc()
        if verdict.result == "learned":
            self._changed = True
        elif verdict.result == "refused":
            log.error(
                "bandit outcome refused (%s[%d]@%d): %s", msg.topic(), msg.partition(), msg.offset(), verdict.reason
            )
            if self.dead_letter is not None:
                _, stamp = msg.timestamp()
                self.dead_letter(
                    DeadLetter(
                        dead_letter_id=f"bandit-outcomes:{msg.partition()}:{msg.offset()}",
                        received_at=datetime.fromtimestamp(stamp / 1000, UTC) if stamp > 0 else datetime.now(UTC),
                        source="processor:bandit",
                        reason=verdict.reason,
                        raw=kept_raw(raw.decode("utf-8", errors="replace")),
                        original_topic=msg.topic(),
                        original_partition=msg.partition(),
                        original_offset=msg.offset(),
                    )
                )

    def publish(self) -> None:
        """Hand decisions a copy of the posteriors (one reference swap: a decision sees the old or the new)."""
        state = self.learner.state
        self.arms.bandit = BanditState.from_dict(state.to_dict(), self.learner.config)
        self._changed = False
        m.BANDIT_CONTEXTS.set(len(state.contexts))
