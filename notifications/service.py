"""``engage notify``: consume intervention requests and deliver them - the wiring around the pure rules.

One consumer group (``<topic_prefix>-notify``), scaled like the sinks: several processes share the partitions of
the interventions topic, and, assigned by the range strategy, the same partition numbers of ``contact_changes``.
On assignment of partition ``p`` the process reads ``p`` of the send ledger and of the contacts to their end
before it handles a request of ``p`` (``notifications.ledger``, ``notifications.contacts``), and re-arms the
requests the ledger holds as scheduled.

The loop: take a batch of requests (and contact changes) -> handle each student's in order, up to
``notify_max_in_flight`` students at once -> for each request the outcome and any dead letter, then its ledger
entries, are written and acknowledged (``Ledger.write``: the ledger last) -> commit the batch's offsets -> send
what is due (deferred requests, digests).
It also consumes the worker's celebrations (same partitions) and puts each in the student's in-app inbox once, outside
the intervention policy (``notifications.celebrations``).
What to do with a request is ``processors.notify.dispatch``; which channel, with what fallback, ``routing``; the
message, ``compose``. Nothing a request carries stops the service: a request that does not parse, an unknown
student, a template that fails, an invalid address, a provider answering garbage - each ends as a dead letter
(``dead_letters`` topic, the existing ``DeadLetter`` contract) and a ``dead_lettered`` outcome with the reason.
Only Kafka not acknowledging our writes stops it (without committing: the next owner takes over).

Metrics on ``bind_host``:``notify_metrics_port``: sends by channel and outcome, dead letters by reason class, the
response time (provider accepted - the triggering event's time, and - the decision's), the scheduled requests,
the ledger's rebuild seconds and write latency, the cap's deferrals and drops.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIServer

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka import Message as KafkaMessage
from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError

from config.settings import Settings
from kafka_io.admin import check_kafka
from kafka_io.client import kafka_conf
from kafka_io.producer import EventProducer
from notifications.celebrations import celebration_item
from notifications.channels.base import Channel, ChannelError, Delivery, Message
from notifications.channels.configured import configured_channels
from notifications.compose import Composer, LinkMaker, OfferMaker, PlainLinks
from notifications.contacts import ContactBook
from notifications.inbox import SqliteInbox
from notifications.ledger import Ledger, Out, Outbox
from notifications.resilience import Deliverer
from notifications.routing import deliver_first, plan_channels
from notifications.tracking.keys import tracking_links
from processors.experiments.config import DEFAULT_EXPERIMENTS_PATH, load_experiments
from processors.notify.dispatch import (
    Drop,
    Due,
    Record,
    Schedule,
    Scheduled,
    SendNow,
    Skip,
    cap_verdict,
    decide,
    judged_at,
    missed_deadline,
    plan_due,
)
from processors.notify.templates import DEFAULT_TEMPLATES_DIR, TemplateCatalog
from processors.offers import OfferTerms, offer_for
from processors.policy import policy_from_file
from schemas.contacts import Contact, ContactChange
from schemas.events import Channel as ChannelName
from schemas.gamification import Celebration
from schemas.interventions import InterventionOutcome, InterventionRequest, OutcomeKind
from schemas.messages import DeadLetter, kept_raw
from schemas.notifications import LedgerEntry, LedgerState, ledger_key
from schemas.topics import TopicCatalogue, catalogue

log = logging.getLogger(__name__)

HANDLED = Counter(
    "engage_notify_requests_total",
    "Requests and scheduled sends handled, by outcome (sent, dead_lettered, held_out, digested, queued, scheduled, "
    "skipped) and channel (none when nothing was sent)",
    ["channel", "outcome"],
)
DEAD_LETTERS = Counter("engage_notify_dead_letters_total", "Requests dead-lettered, by reason class", ["reason"])
RESPONSE_SECONDS = Histogram(
    "engage_notify_response_seconds",
    "Provider accepted - the triggering event's time (since=event) or the decision (since=decision), by status",
    ["since", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600),
)
SCHEDULED = Gauge("engage_notify_scheduled", "Requests waiting for their time (deferred, or held by the cap)")
CAPPED = Counter("engage_notify_capped_total", "Requests over the per-student 24 h cap, by action", ["action"])
CELEBRATED = Counter(
    "engage_notify_celebrations_total",
    "Celebrations taken from the celebrations topic, by result (added to the inbox, duplicate: already there, "
    "unsubscribed: the student turned in-app off)",
    ["result"],
)
OWNED = Gauge("engage_notify_partitions", "Partitions of the interventions topic this process owns")


def notify_group(settings: Settings) -> str:
    return f"{settings.topic_prefix}-notify"


def _now() -> datetime:
    return datetime.now(UTC)


class Fatal(RuntimeError):
    """Kafka did not acknowledge what had to be stored: stop without committing (the next owner takes over)."""


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a request came from (for its dead letter)."""

    topic: str
    partition: int
    offset: int
    raw: str


class NotifyService:
    def __init__(
        self,
        settings: Settings,
        *,
        links: LinkMaker | None = None,
        offers: OfferMaker | None = None,
        channels: Mapping[ChannelName, Channel] | None = None,
        deliverer: Deliverer | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        s = self.settings = settings
        self.clock = clock
        self.replaying = settings.notify_clock == "request"
        self.fatal: Exception | None = None  # set when a rebalance callback failed: run() raises it
        self.topics: TopicCatalogue = catalogue(s.topic_prefix, s.event_partitions)
        policy = policy_from_file(s.policy_path) if s.policy_path else policy_from_file()
        catalog = TemplateCatalog.load(s.notify_templates_dir or DEFAULT_TEMPLATES_DIR, policy=policy)
        experiments = load_experiments(s.experiments_path or DEFAULT_EXPERIMENTS_PATH) if s.experiments else None
        self.composer = Composer(catalog, links or PlainLinks(s.notify_platform_url), offers, experiments)
        self.inbox: SqliteInbox | None = None
        if channels is None:
            self.inbox = SqliteInbox(s.inbox, max_items_per_user=s.inbox_max_items)
            channels = configured_channels(s, self.inbox)
        self.channels = dict(channels)
        self.deliverer = deliverer or Deliverer.from_settings(s)
        self.producer = EventProducer(s.kafka, self.topics, source="notify", linger_ms=1, report_successes=True)
        outbox = Outbox(self.producer)
        self.ledger = Ledger(s.kafka, self.topics.notification_ledger.name, outbox)
        self.contacts = ContactBook(s.kafka, self.topics.contacts.name, outbox)
        self.schedule: dict[str, tuple[int, Scheduled]] = {}
        self.stopping = threading.Event()
        conf: dict[str, object] = kafka_conf(
            s.kafka,
            {
                "group.id": notify_group(s),
                "client.id": f"engage-notify-{s.notify_instance_id or 'anon'}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # range: the same partition numbers of interventions and contact_changes go to the same member
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 1_000,
                "max.poll.interval.ms": 300_000,
            },
        )
        if s.notify_instance_id:
            conf["group.instance.id"] = s.notify_instance_id  # a restart takes its partitions back at once
        self.consumer = Consumer(conf)
        for channel in ChannelName:
            HANDLED.labels(channel.value, "sent")
        for reason in ("invalid_request", "no_contact", "undeliverable"):
            DEAD_LETTERS.labels(reason)
        for result in ("added", "duplicate", "unsubscribed"):
            CELEBRATED.labels(result)

    # ---- partitions ---------------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Load each assigned partition's ledger and contacts. Nothing may escape a librdkafka rebalance callback
        (an error raised here surfaced as a non-exception object that killed the polling thread and left the service
        hung): a partition that cannot be loaded stops the service with an error, so it is restarted."""
        try:
            self._load_assigned(partitions)
        except Exception as exc:
            log.error("loading assigned partitions failed: %s", exc)
            self.fatal = exc
            self.stopping.set()

    def _load_assigned(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.topic != self.topics.interventions.name:
                continue
            entries, seconds = self.ledger.load(tp.partition)
            contacts = self.contacts.load(tp.partition)
            for p, entry in self.ledger.scheduled(tp.partition):
                if entry.request is not None:
                    due = entry.due_at or entry.request.send_after or entry.at
                    self.schedule[entry.intervention_id] = (p, Scheduled(entry.request, due))
            log.info(
                "partition %d: ledger %d entries read in %.2f s, %d contacts, %d scheduled",
                tp.partition,
                entries,
                seconds,
                contacts,
                sum(1 for p, _ in self.schedule.values() if p == tp.partition),
            )
        OWNED.set(len(self.ledger.partitions))
        SCHEDULED.set(len(self.schedule))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if tp.topic != self.topics.interventions.name:
                continue
            self.ledger.drop(tp.partition)
            self.contacts.drop(tp.partition)
            self.schedule = {i: ps for i, ps in self.schedule.items() if ps[0] != tp.partition}
        OWNED.set(len(self.ledger.partitions))
        SCHEDULED.set(len(self.schedule))

    # ---- the loop -----------------------------------------------------------------------------------------------
    def stop(self) -> None:
        self.stopping.set()

    async def run(self) -> None:
        """Consume until ``stop()``. Each turn: a batch, its commit, then what is due."""
        self.consumer.subscribe(
            [self.topics.interventions.name, self.topics.contact_changes.name, self.topics.celebrations.name],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        try:
            while not self.stopping.is_set():
                timeout = self.settings.notify_poll_seconds
                if self.schedule:
                    first = min(s.due_at for _, s in self.schedule.values())
                    timeout = max(0.0, min(timeout, (first - self.clock()).total_seconds()))
                # In a thread, so the event loop stays free; rebalance callbacks run there while nothing else
                # of this service runs (no batch is in progress between two turns).
                messages = await asyncio.to_thread(self.consumer.consume, 500, timeout)
                if self.fatal is not None:
                    raise RuntimeError(f"the notification service cannot go on: {self.fatal}") from self.fatal
                self.contacts.drain()
                await self._handle_batch(messages)
                await self._send_due()
                await self._refused_contacts()
        finally:
            await self.close()

    async def close(self) -> None:
        try:
            self.consumer.close()
        except (KafkaException, RuntimeError) as exc:
            log.warning("closing the consumer: %s", exc)
        self.contacts.close()
        self.producer.close(10.0)
        for channel in self.channels.values():
            await channel.aclose()
        if self.inbox is not None:
            self.inbox.close()

    async def _per_student(self, jobs: Mapping[str, Sequence[Callable[[], Awaitable[None]]]]) -> None:
        """Each student's jobs in order; up to ``notify_max_in_flight`` students at once."""
        gate = asyncio.Semaphore(self.settings.notify_max_in_flight)

        async def one(user_jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
            async with gate:
                for job in user_jobs:
                    await job()

        await asyncio.gather(*(one(j) for j in jobs.values()))

    async def _handle_batch(self, messages: list[KafkaMessage]) -> None:
        if not messages:
            return
        offsets: dict[tuple[str, int], int] = {}
        jobs: dict[str, list[Callable[[], Awaitable[None]]]] = {}
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.fatal():  # e.g. fenced by a newer member with the same instance id: only a restart helps
                    raise RuntimeError(f"the notification service's consumer failed for good: {err}")
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", err)
                continue
            topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
            offsets[(topic, partition)] = offset + 1
            value = msg.value() or b""
            origin = _Origin(topic, partition, offset, kept_raw(value.decode("utf-8", "replace")))
            user, job = self._job(origin, value)
            jobs.setdefault(user, []).append(job)
        await self._per_student(jobs)
        self._commit([TopicPartition(t, p, o) for (t, p), o in offsets.items()])

    def _job(self, origin: _Origin, value: bytes) -> tuple[str, Callable[[], Awaitable[None]]]:
        """(the student it concerns, the job); an input that does not parse becomes a dead letter job."""
        try:
            if origin.topic == self.topics.contact_changes.name:
                change = ContactChange.model_validate_json(value)
                return change.user_id, lambda: self._guarded(
                    origin, change.user_id, self._contact_change(origin, change)
                )
            if origin.topic == self.topics.celebrations.name:
                party = Celebration.model_validate_json(value)
                return party.user_id, lambda: self._guarded(origin, party.user_id, self._celebrate(origin, party))
            request = InterventionRequest.model_validate_json(value)
        except ValidationError as exc:
            kind = {
                self.topics.contact_changes.name: "contact change",
                self.topics.celebrations.name: "celebration",
            }.get(origin.topic, "intervention request")
            reason = f"invalid {kind} at {origin.topic}[{origin.partition}]@{origin.offset}: {_errors(exc)}"
            return f"\0invalid-{origin.partition}-{origin.offset}", lambda: self._dead_input(origin, reason)
        return request.user_id, lambda: self._guarded(origin, request.user_id, self._request(origin, request))

    async def _guarded(self, origin: _Origin, user_id: str, work: Awaitable[None]) -> None:
        """A bug met by one input is that input's dead letter, not the end of the service (Kafka failing is)."""
        try:
            await work
        except Fatal:
            raise
        except Exception as exc:
            log.exception("handling %s[%d]@%d failed", origin.topic, origin.partition, origin.offset)
            await self._dead_input(origin, f"internal error handling it: {type(exc).__name__}: {exc}", user_id)

    def _commit(self, offsets: list[TopicPartition]) -> None:
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:  # re-delivered later: the ledger makes that harmless
            log.warning("offsets not committed (%s); they will be re-delivered and skipped", exc)

    # ---- one request --------------------------------------------------------------------------------------------
    async def _request(self, origin: _Origin, request: InterventionRequest) -> None:
        action = decide(request, self.ledger.entries(request.intervention_id))
        now = self.clock()
        if isinstance(action, Skip):
            HANDLED.labels("none", "skipped").inc()
            return
        if isinstance(action, Record):
            await self._write(
                origin.partition,
                [self._entry(request, action.state, now)],
                [self._outcome(request, action.outcome, now)],
            )
            HANDLED.labels("none", action.outcome.value).inc()
            return
        if isinstance(action, Schedule):
            await self._schedule(origin.partition, [request], action.due_at, action.reason)
            return
        assert isinstance(action, SendNow)
        await self._send(origin.partition, Due(request), origin)

    async def _schedule(
        self, partition: int, requests: Sequence[InterventionRequest], due_at: datetime, why: str
    ) -> None:
        now = self.clock()
        entries = [self._entry(r, "scheduled", now, keep=r, due_at=due_at, detail=why) for r in requests]
        await self._write(partition, entries, [])
        for r in requests:
            self.schedule[r.intervention_id] = (partition, Scheduled(r, due_at))
        SCHEDULED.set(len(self.schedule))
        HANDLED.labels("none", "scheduled").inc(len(requests))

    async def _send_due(self) -> None:
        now = self.clock()
        dues = plan_due(
            (s for _, s in self.schedule.values()), now, timedelta(seconds=self.settings.notify_digest_window_seconds)
        )
        if not dues:
            return
        jobs: dict[str, list[Callable[[], Awaitable[None]]]] = {}
        for due in dues:
            partition = self.schedule[due.carrier.intervention_id][0]
            for i in due.ids:
                self.schedule.pop(i, None)
            jobs.setdefault(due.carrier.user_id, []).append(self._due_job(partition, due))
        SCHEDULED.set(len(self.schedule))
        await self._per_student(jobs)

    def _due_job(self, partition: int, due: Due) -> Callable[[], Awaitable[None]]:
        origin = _Origin(self.topics.notification_ledger.name, partition, -1, due.carrier.model_dump_json())
        return lambda: self._guarded(origin, due.carrier.user_id, self._send(partition, due, None))

    def _now(self, due: Due) -> datetime:
        """When a send is judged (deadline, cap) and recorded: now, or in a replay its own instant (``judged_at``)."""
        return judged_at(due.carrier, due.due_at) if self.replaying else self.clock()

    async def _send(self, partition: int, due: Due, origin: _Origin | None) -> None:
        """Deliver one message (a request, or a digest's carrier with the others merged) on its first channel."""
        request, now = due.carrier, self._now(due)
        group = (request, *due.merged)
        contact = self.contacts.get(request.user_id, partition)
        if contact is None:
            await self._dead(partition, group, f"no contact for user {request.user_id}", "no_contact", origin)
            return
        if (refused := self.composer.refusal(request)) is not None:
            reason_class = "no_signals" if request.signals is None else "no_offer_issuer"
            await self._dead(partition, group, refused, reason_class, origin)
            return
        if (late := missed_deadline(request, now)) is not None:
            await self._dead(partition, group, late, "missed_deadline", origin)
            return
        verdict = cap_verdict(
            request, self.ledger.sent_at(request.user_id, now), now, self.settings.notify_max_per_student_24h
        )
        if isinstance(verdict, Schedule):
            CAPPED.labels("deferred").inc()
            await self._schedule(partition, group, verdict.due_at, verdict.reason)
            return
        if isinstance(verdict, Drop):
            CAPPED.labels("dropped").inc()
            await self._dead(partition, group, verdict.reason, "capped", origin)
            return
        try:
            prepared = self.composer.prepare(request, contact)
        except ChannelError as exc:
            await self._dead(
                partition, group, f"intervention {request.intervention_id}: {exc.reason}", "offer_failed", origin
            )
            return
        merged, alone = self._summaries(due, contact)
        plan = plan_channels(
            request.channels,
            contact,
            configured=set(self.channels),
            refusing=lambda c: self.deliverer.is_open(self.channels[c].provider),
        )

        def compose(channel: ChannelName, address: str) -> Message:
            return self.composer.message(prepared, channel, address, merged)

        final = await deliver_first(self.deliverer, self.channels, plan, contact, request.intervention_id, compose)
        if final.retired_tokens or final.unsubscribed:
            await self.contacts.update(
                request.user_id,
                partition,
                unsubscribe=final.unsubscribed,
                retire_tokens=final.retired_tokens,
                cause="delivery",
            )
        if final.delivered is None:
            digested = [r for r in due.merged if r.intervention_id not in {a.intervention_id for a in alone}]
            await self._dead(partition, (request, *digested), final.reason, "undeliverable", origin)
        else:
            await self._delivered(partition, due, final.delivered.delivery, alone)
        for other in alone:  # could not be summarised into the digest: a message of its own
            await self._send(partition, Due(other), None)

    def _summaries(self, due: Due, contact: Contact) -> tuple[list[tuple[str, str]], list[InterventionRequest]]:
        """(id, line) of each merged request for the digest, and those that cannot be (sent alone instead)."""
        merged: list[tuple[str, str]] = []
        alone: list[InterventionRequest] = []
        for other in due.merged:
            try:
                if self.composer.refusal(other) is not None:
                    raise ChannelError("cannot be composed")
                merged.append((other.intervention_id, self.composer.summary(self.composer.prepare(other, contact))))
            except ChannelError:
                alone.append(other)
        return merged, alone

    async def _delivered(
        self, partition: int, due: Due, delivery: Delivery, alone: Sequence[InterventionRequest]
    ) -> None:
        request, now = due.carrier, self._now(due)
        detail = f"{delivery.provider} {delivery.provider_id}"
        provider, provider_id = delivery.provider, delivery.provider_id
        entries = [  # the channel's entry, and the request's (replacing its scheduled entry and the request in it)
            self._entry(
                request, "sent", now, channel=delivery.channel, provider=provider, provider_message_id=provider_id
            ),
            self._entry(request, "sent", now, provider=provider, provider_message_id=provider_id, detail=detail),
        ]
        outcomes = [self._outcome(request, OutcomeKind.sent, now, delivery.channel, detail)]
        skip = {a.intervention_id for a in alone}
        for other in due.merged:
            if other.intervention_id in skip:
                continue
            why = f"digested into intervention {request.intervention_id}"
            entries.append(self._entry(other, "digested", now, detail=why))
            outcomes.append(self._outcome(other, OutcomeKind.digested, now, delivery.channel, why))
            HANDLED.labels(delivery.channel.value, "digested").inc()
        await self._write(partition, entries, outcomes)
        HANDLED.labels(delivery.channel.value, "sent").inc()
        if not self.replaying:  # a replay's requests are judged in their own time: no response time to measure
            RESPONSE_SECONDS.labels("event", request.status).observe(
                (now - request.triggered_by_event_time).total_seconds()
            )
            RESPONSE_SECONDS.labels("decision", request.status).observe((now - request.created_at).total_seconds())

    # ---- dead letters -------------------------------------------------------------------------------------------
    async def _dead(
        self,
        partition: int,
        requests: Sequence[InterventionRequest],
        reason: str,
        reason_class: str,
        origin: _Origin | None,
    ) -> None:
        """Each request: ledger ``dead_lettered``, outcome ``dead_lettered``, a dead letter with the reason."""
        now = self.clock()
        entries: list[LedgerEntry] = []
        outs: list[InterventionOutcome | Out] = []
        for r in requests:
            entries.append(self._entry(r, "dead_lettered", now, detail=reason))
            outs.append(self._outcome(r, OutcomeKind.dead_lettered, now, detail=reason))
            letter = DeadLetter(
                dead_letter_id=str(uuid.uuid4()),
                received_at=now,
                source="notify",
                reason=reason,
                user_id=r.user_id,
                event_id=r.intervention_id,
                event_type="intervention_request",
                raw=origin.raw if origin is not None and r is requests[0] else r.model_dump_json(),
                original_topic=origin.topic if origin is not None else self.topics.notification_ledger.name,
                original_partition=origin.partition if origin is not None else partition,
                original_offset=origin.offset if origin is not None and origin.offset >= 0 else None,
            )
            outs.append(self._dead_letter_out(letter))
        await self._write(partition, entries, outs)
        DEAD_LETTERS.labels(reason_class).inc(len(requests))
        HANDLED.labels("none", "dead_lettered").inc(len(requests))
        log.info("dead-lettered %s: %s", [r.intervention_id for r in requests], reason)

    async def _dead_input(self, origin: _Origin, reason: str, user_id: str | None = None) -> None:
        """An input that is not a request we can handle (does not parse, or failed inside): only a dead letter."""
        letter = DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=self.clock(),
            source="notify",
            reason=reason,
            user_id=user_id,
            raw=origin.raw,
            original_topic=origin.topic,
            original_partition=origin.partition,
            original_offset=origin.offset if origin.offset >= 0 else None,
        )
        await self._send_out([self._dead_letter_out(letter)])
        DEAD_LETTERS.labels("invalid_request" if user_id is None else "internal").inc()

    async def _refused_contacts(self) -> None:
        letters, self.contacts.refused = self.contacts.refused, []
        if letters:
            await self._send_out([self._dead_letter_out(d) for d in letters])
            DEAD_LETTERS.labels("invalid_contact").inc(len(letters))

    async def _contact_change(self, origin: _Origin, change: ContactChange) -> None:
        updated = await self.contacts.update(
            change.user_id,
            origin.partition,
            unsubscribe=change.unsubscribe,
            retire_tokens=change.retire_tokens,
            cause=change.source,
        )
        if updated is None:
            await self._dead_input(
                origin, f"no contact for user {change.user_id} (a contact change from {change.source})", change.user_id
            )

    # ---- celebrations -------------------------------------------------------------------------------------------
    async def _celebrate(self, origin: _Origin, celebration: Celebration) -> None:
        """Into the student's inbox, once (the item id is the celebration id); no policy, cap or ledger. A store
        that fails is this celebration's dead letter (``_guarded``)."""
        contact = self.contacts.get(celebration.user_id, origin.partition)
        if contact is not None and ChannelName.in_app in contact.unsubscribed:
            CELEBRATED.labels("unsubscribed").inc()
            return
        if self.inbox is None:  # channels were given (tests): celebrations still go to the settings' inbox
            self.inbox = SqliteInbox(self.settings.inbox, max_items_per_user=self.settings.inbox_max_items)
        added = await asyncio.to_thread(self.inbox.add, celebration_item(celebration, self.clock()))
        CELEBRATED.labels("added" if added else "duplicate").inc()

    # ---- writing ------------------------------------------------------------------------------------------------
    def _dead_letter_out(self, letter: DeadLetter) -> Out:
        return Out(self.topics.dead_letters.name, letter.source.encode(), letter.model_dump_json().encode())

    def _outcome(
        self,
        request: InterventionRequest,
        kind: OutcomeKind,
        at: datetime,
        channel: ChannelName | None = None,
        detail: str = "",
    ) -> InterventionOutcome:
        return InterventionOutcome(
            intervention_id=request.intervention_id,
            user_id=request.user_id,
            outcome=kind,
            at=at,
            channel=channel,
            detail=detail,
        )

    @staticmethod
    def _entry(
        request: InterventionRequest,
        state: LedgerState,
        at: datetime,
        *,
        channel: ChannelName | None = None,
        provider: str = "",
        provider_message_id: str = "",
        detail: str = "",
        keep: InterventionRequest | None = None,
        due_at: datetime | None = None,
    ) -> LedgerEntry:
        return LedgerEntry(
            ledger_key=ledger_key(request.intervention_id, channel),
            intervention_id=request.intervention_id,
            user_id=request.user_id,
            state=state,
            at=at,
            channel=channel,
            provider=provider,
            provider_message_id=provider_message_id,
            detail=detail,
            request=keep,
            due_at=due_at,
        )

    async def _write(
        self, partition: int, entries: Sequence[LedgerEntry], outcomes: Sequence[InterventionOutcome | Out]
    ) -> None:
        outs = [
            o
            if isinstance(o, Out)
            else Out(self.topics.intervention_outcomes.name, o.user_id.encode(), o.model_dump_json().encode())
            for o in outcomes
        ]
        try:
            await self.ledger.write(partition, entries, outs)
        except Exception as exc:
            raise Fatal(f"Kafka did not acknowledge the ledger of partition {partition}: {exc}") from exc

    async def _send_out(self, outs: Sequence[Out]) -> None:
        try:
            await self.ledger.outbox.send(outs)
        except Exception as exc:
            raise Fatal(f"Kafka did not acknowledge dead letters: {exc}") from exc


def _errors(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(message)'}: {e['msg']}" for e in exc.errors()[:5])


# -- running it -------------------------------------------------------------------------------------------------


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Prometheus metrics on ``bind_host``:``notify_metrics_port`` (None when 0 or the port is taken: logged)."""
    if not settings.notify_metrics_port:
        return None
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(settings.notify_metrics_port, addr=settings.bind_host)
    except OSError as exc:
        log.warning("notify metrics not served on %s:%d: %s", settings.bind_host, settings.notify_metrics_port, exc)
        return None
    return server


def run_notify(settings: Settings, *, links: LinkMaker | None = None, offers: OfferMaker | None = None) -> None:
    """Run the service until SIGTERM/SIGINT (from the main thread) - ``engage notify``. Links are tracked (opens,
    clicks, unsubscribes and SMS statuses come back through the collector) and discount offers carry the code the
    success desk will redeem, unless the caller passes others."""
    check_kafka(settings.kafka)  # wrong credentials: a clear error now, not a consumer that never gets messages
    terms = OfferTerms.from_settings(settings)
    service = NotifyService(
        settings,
        links=links or tracking_links(settings),
        offers=offers or (lambda request: offer_for(request, terms, settings.offer_secret)),
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: service.stop())
        signal.signal(signal.SIGINT, lambda *_: service.stop())
    started = time.monotonic()
    asyncio.run(service.run())
    log.info("notify stopped after %.0f s", time.monotonic() - started)
