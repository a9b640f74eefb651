"""The desk's Kafka side: intervention requests in (queue items, offers), the outbox's outcomes out.

``RequestConsumer`` reads the interventions topic in its own group (``<prefix>-desk``) and commits offsets only
after the store write (and after any dead letter is acknowledged), so a crash re-delivers, and a re-delivered
request finds its item or offer already there and changes nothing:

- ``human_outreach`` (send or deferred) -> an open queue item, due at the request's deadline (``queued``);
- ``discount_offer`` (send or deferred) -> an offer row with the code the notification service prints, which
  it computes itself from the same secret (``processors.offers``) (``offer_issued``);
- ``held_out`` requests of either type are the control group: nobody calls, no code is minted (the
  notification service records their ``held_out`` outcome); counted, nothing stored;
- other types are not the desk's; a message that is not an ``InterventionRequest`` is dead-lettered.

``OutboxPublisher`` moves the outcomes the store wrote in the same transactions as the changes to the
intervention-outcomes topic, deleting them once Kafka acknowledged them.

The store is one SQLite file, so the desk is one process (a second one in the group would take partitions and
write a second file): run one ``engage desk serve`` per deployment.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from pydantic import ValidationError

from config.settings import Settings
from desk import metrics
from desk.store import CodeCollision, Store
from kafka_io.client import kafka_conf
from processors.offers import OfferTerms, offer_for
from processors.outreach import item_for
from schemas.interventions import InterventionRequest, InterventionType
from schemas.messages import DeadLetter
from schemas.topics import catalogue

log = logging.getLogger(__name__)

SOURCE = "desk"
DESK_TYPES = frozenset({InterventionType.human_outreach, InterventionType.discount_offer})
Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


def desk_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}-desk"


def _producer(settings: Settings, client_id: str) -> Producer:
    return Producer(
        kafka_conf(
            settings.kafka,
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "client.id": client_id,
                "partitioner": "murmur2_random",  # as every engine producer: a student's messages on one partition
            },
        )
    )


class RequestConsumer:
    """Intervention requests -> store writes, offsets committed after them."""

    def __init__(self, settings: Settings, store: Store, *, clock: Clock = _now, max_backoff: float = 10.0) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.max_backoff = max_backoff
        self.topics = catalogue(settings.topic_prefix, settings.event_partitions)
        self.terms = OfferTerms.from_settings(settings)
        self.secret = settings.offer_secret
        self.assigned = threading.Event()
        self._dead_letters = _producer(settings, "engage-desk-dead-letters")
        self._pending_dead_letters = 0
        self._consumer = Consumer(
            kafka_conf(
                settings.kafka,
                {
                    "group.id": desk_group(settings),
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": int(settings.broker_session_timeout_seconds * 1000),
                    "heartbeat.interval.ms": 1_000,
                },
            )
        )

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self.topics.interventions.name], on_assign=lambda _c, _p: self.assigned.set())
        try:
            while not stop.is_set():
                messages = self._consumer.consume(num_messages=500, timeout=0.2)
                handled = False
                for msg in messages:
                    if self._handle_with_retry(msg, stop):
                        handled = True
                    elif stop.is_set():
                        return  # not stored: leave the offsets alone, the request comes again
                if handled:
                    self._commit(stop)
        finally:
            self._dead_letters.flush(10.0)
            self._dead_letters.close()  # or it keeps reconnecting to a broker that may be gone
            self._consumer.close()

    def _handle_with_retry(self, msg: Message, stop: threading.Event) -> bool:
        """Handle one message, retrying while the store cannot be written (disk full, locked); False if stopped."""
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("desk consumer error: %s", err)
            return False
        backoff = 0.2
        while True:
            try:
                action = self.handle(msg.value() or b"", msg.partition() or 0, msg.offset() or 0)
                metrics.REQUESTS.labels(action).inc()
                return True
            except Exception as exc:  # the store: retried with the same message, never skipped
                log.error("desk: storing the request at offset %s failed (%s); retrying in %.1fs", msg.offset(), exc,
                          backoff)  # fmt: skip
                if stop.wait(backoff):
                    return False
                backoff = min(backoff * 2, self.max_backoff)

    def handle(self, value: bytes, partition: int, offset: int) -> str:
        """Store what one request means for the desk; the action taken (a ``engage_desk_requests_total`` label)."""
        try:
            request = InterventionRequest.model_validate_json(value)
        except ValidationError as exc:
            self._dead_letter(value, f"not an intervention request: {exc}", partition, offset)
            return "dead_lettered"
        if request.intervention_type not in DESK_TYPES:
            return "not_for_desk"
        if request.status == "held_out":
            return "held_out"  # the control group: nobody calls, no code (see the module's docstring)
        now = self.clock()
        if request.intervention_type == InterventionType.human_outreach:
            _, created = self.store.enqueue(item_for(request, now))
            return "queued" if created else "duplicate"
        offer = offer_for(request, self.terms, self.secret)
        try:
            _, created = self.store.issue(request.intervention_id, request.user_id, offer, now)
        except CodeCollision as exc:
            self._dead_letter(value, str(exc), partition, offset, request)
            return "dead_lettered"
        if created:
            metrics.OFFERS_ISSUED.inc()
        return "offer_issued" if created else "duplicate"

    def _dead_letter(
        self, value: bytes, reason: str, partition: int, offset: int, request: InterventionRequest | None = None
    ) -> None:
        letter = DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=self.clock(),
            source=SOURCE,
            reason=reason,
            user_id=request.user_id if request else None,
            raw=value.decode("utf-8", errors="replace"),
            original_topic=self.topics.interventions.name,
            original_partition=partition,
            original_offset=offset,
        )
        log.warning("desk: dead letter for %s[%d]@%d: %s", letter.original_topic, partition, offset, reason[:300])
        self._dead_letters.produce(self.topics.dead_letters.name, key=SOURCE, value=letter.model_dump_json())
        self._pending_dead_letters += 1

    def _commit(self, stop: threading.Event) -> None:
        """Commit what was consumed: the writes are stored; dead letters first acknowledged by Kafka."""
        if self._pending_dead_letters:
            if self._dead_letters.flush(30.0):
                raise RuntimeError("desk: dead letters not acknowledged by Kafka; not committing")
            self._pending_dead_letters = 0
        delay = 0.2
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._consumer.commit(asynchronous=False)
                return
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError._NO_OFFSET:
                    return
                if time.monotonic() > deadline or stop.is_set():
                    log.warning("desk: offsets not committed (%s); re-delivered requests change nothing", exc)
                    return
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)


class OutboxPublisher:
    """Stored outcomes -> the intervention-outcomes topic, deleted from the outbox once acknowledged."""

    def __init__(self, settings: Settings, store: Store, *, batch: int = 500) -> None:
        self.store = store
        self.batch = batch
        self.topic = catalogue(settings.topic_prefix, settings.event_partitions).intervention_outcomes.name
        self._producer = _producer(settings, "engage-desk-outcomes")
        self._wake = threading.Event()

    def nudge(self) -> None:
        """Something was written: publish now rather than at the next look."""
        self._wake.set()

    def run(self, stop: threading.Event, idle_seconds: float = 0.2) -> None:
        try:
            while not stop.is_set():
                try:
                    published = self.publish_once()
                except Exception as exc:  # Kafka away: the outbox keeps them; try again
                    log.warning("desk: publishing outcomes failed (%s); retrying", exc)
                    published = 0
                if not published:
                    self._wake.wait(idle_seconds)
                    self._wake.clear()
        finally:
            self._producer.flush(10.0)
            self._producer.close()

    def publish_once(self, timeout: float = 30.0) -> int:
        """Publish one batch from the outbox; the number acknowledged (and deleted)."""
        pending = self.store.pending_outcomes(self.batch)
        metrics.OUTBOX_PENDING.set(len(pending))
        if not pending:
            return 0
        acked: list[int] = []

        def delivered(seq: int) -> Callable[[KafkaError | None, Message], None]:
            def report(err: KafkaError | None, _msg: Message) -> None:
                if err is None:
                    acked.append(seq)
                else:
                    log.warning("desk: outcome %d not stored by Kafka: %s", seq, err)

            return report

        for seq, body in pending:
            key = str(orjson.loads(body)["user_id"]).encode()
            self._producer.produce(self.topic, key=key, value=body, on_delivery=delivered(seq))
        self._producer.flush(timeout)
        if acked:
            self.store.published(acked)
            metrics.OUTCOMES_PUBLISHED.inc(len(acked))
        return len(acked)
