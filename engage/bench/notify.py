"""`engage bench notify`: the notification service's delivery rate beside a bare loop, and the response time from a
student's event to the provider's acceptance, on this machine with a Kafka of the bench's own (free ports, stopped
by PID at the end) and the provider stand-ins (``engage providers serve``) as one child process for everything.

1. **Deliveries per second per notification process**, per channel (e-mail to the local SMTP stand-in, push to the
   FCM stand-in, SMS to the Twilio stand-in, in-app to the SQLite inbox): ``deliveries`` ``send`` requests with the
   students' signals and reasons are written to the interventions topic first, for students whose contact makes
   that channel their only choice; then one ``engage notify`` starts and the rate is read from the ledger's
   ``sent`` entries (count over the span of their ``at``). Beside it, in the same run and against the same
   stand-ins, a **bare loop**: the same messages composed by ``notifications.compose.Composer`` with the same links
   and templates, sent by the same channel objects (``configured_channels``) under an ``asyncio.Semaphore`` of
   ``notify_max_in_flight``, no Kafka, no ledger, no retries. The ratio is what the service's bookkeeping costs.
2. **Response time** event -> intervention request -> provider accepted, for ``send`` requests, at each offered
   rate: a worker and a notifier as child processes, a policy file written for the bench (no quiet hours, no
   send-time slots, nobody held out: every decision a ``send``), contacts for every student, simulator events
   rewritten to happen now as they are offered (students renamed per slice so new ones, whose first scores decide,
   keep arriving). Response = ledger ``sent.at`` - ``triggered_by_event_time``, split at the request's
   ``created_at``.
3. **No duplicates**: ``notifications.verify.check_sends`` over every send of the run (e-mail and push as the
   stand-ins recorded them, SMS joined through the ledger's provider ids, in-app from the ledger).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer
from rich.console import Console

from config.settings import Settings, settings_env
from deploy import server
from deploy.infra import Infra
from deploy.process import free_port, free_ports
from deploy.providers.process import Providers, standin_settings, start_providers
from engage.bench.ingest import simulated_events
from engage.bench.notify_plan import (
    Response,
    Spread,
    bench_contact,
    bench_policy,
    delivery_rate,
    due,
    fresh_students,
    live,
    responses,
)
from engage.bench.report import Figure, Report
from engage.bench.streams_io import wait_for_group
from engage.children import child, wait_for_worker, wait_http
from engage.traffic import _client_batches
from kafka_io.admin import ensure_topics
from kafka_io.client import Kafka, kafka_conf
from kafka_io.producer import EventProducer
from notifications.channels.base import recipients
from notifications.channels.configured import configured_channels
from notifications.compose import Composer
from notifications.inbox import SqliteInbox
from notifications.ledger import read_to_end
from notifications.tracking.keys import tracking_links
from notifications.verify import SendCheck, check_sends
from processors.notify.context import SAMPLE_AS_OF, SAMPLE_FACTORS, SAMPLE_STUDENTS, preview_request
from processors.notify.templates import DEFAULT_TEMPLATES_DIR, TemplateCatalog
from processors.policy import DEFAULT_POLICY_PATH, policy_from_file
from schemas.contacts import Contact
from schemas.events import Channel
from schemas.interventions import InterventionRequest, InterventionType
from schemas.topics import catalogue

# The stand-ins' own ceiling on this machine, measured by driving them alone (deploy/providers): a delivery rate
# near it says more about the stand-in than about the service.
STANDIN_CEILING = "the stand-ins alone take ~340 e-mails/s and ~480 push/s on this machine"
FINAL_STATES = {"sent", "dead_lettered", "queued", "digested", "held_out"}


@dataclass(frozen=True)
class NotifyBenchConfig:
    deliveries: int = 2_000  # send requests per channel for the delivery rate
    channels: tuple[Channel, ...] = (Channel.email, Channel.push, Channel.sms, Channel.in_app)
    rates: tuple[int, ...] = (1_000, 5_000)  # events/s offered for the response time
    seconds: float = 45.0  # of offered load per rate
    slice_seconds: float = 5.0  # students are renamed per slice of this much traffic: new ones keep arriving
    client_batch: int = 50  # events per app flush (per student)
    settle_seconds: float = 300.0  # longest wait for the worker and the notifier to finish after the offered load


@dataclass
class DeliveryRun:
    channel: Channel
    service_rate: float = float("nan")
    service_wall_rate: float = float("nan")  # from the process's start (start-up and ledger read included)
    bare_rate: float = float("nan")
    sent: int = 0
    dead: int = 0
    bare_sent: int = 0
    bare_errors: list[str] = field(default_factory=list)


@dataclass
class ResponseRun:
    rate: int
    offered: int = 0
    offered_seconds: float = float("nan")
    worker_catch_up_seconds: float = float("nan")  # after the offered load ended, until the worker folded it all
    worker_note: str = ""
    requests: int = 0
    send_requests: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)
    total: Spread = field(default_factory=lambda: Spread.of([]))
    to_decision: Spread = field(default_factory=lambda: Spread.of([]))
    to_accepted: Spread = field(default_factory=lambda: Spread.of([]))

    @property
    def achieved(self) -> float:
        return self.offered / self.offered_seconds if self.offered_seconds > 0 else float("nan")


# -- reading topics -----------------------------------------------------------------------------------------------


def read_topic(bootstrap: Kafka, topic: str) -> list[dict[str, Any]]:
    """Every message of ``topic`` (all partitions) up to its end offsets as they are now, decoded."""
    consumer = Consumer(kafka_conf(bootstrap, {"group.id": f"bench-notify-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False}))  # fmt: skip
    out: list[dict[str, Any]] = []
    try:
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            for m in read_to_end(consumer, topic, p):
                if value := m.value():
                    out.append(orjson.loads(value))
    finally:
        consumer.close()
    return out


def _ledger(s: Settings) -> list[dict[str, Any]]:
    return read_topic(s.kafka, catalogue(s.topic_prefix, s.event_partitions).notification_ledger.name)


def _final(entries: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Intervention id -> its final state (the last final entry of it in the ledger)."""
    out: dict[str, str] = {}
    for e in entries:
        if e["state"] in FINAL_STATES:
            out[e["intervention_id"]] = e["state"]
    return out


def _deliveries(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ledger's ``sent`` entries of a channel (one per provider acceptance; the request's own entry, without a
    channel, says the request as a whole is done and is not a delivery)."""
    return [e for e in entries if e["state"] == "sent" and e.get("channel")]


def _produce(s: Settings, contacts: Sequence[Contact], requests: Sequence[InterventionRequest]) -> None:
    """Contacts, then requests, keyed by user id through the repo's producer (as the worker writes them)."""
    topics = catalogue(s.topic_prefix, s.event_partitions)
    with EventProducer(s.kafka, topics, source="bench") as producer:
        for c in contacts:
            producer.send_encoded(c.user_id.encode(), c.model_dump_json().encode(), topic=topics.contacts.name)
        for r in requests:
            producer.send_encoded(r.user_id.encode(), r.model_dump_json().encode(), topic=topics.interventions.name)
        if producer.flush(120) != 0 or producer.stats.failed:
            raise RuntimeError(f"Kafka did not take every contact and request ({producer.stats.failed} failed)")


def _wait(what: str, probe: Any, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


# -- the bench ----------------------------------------------------------------------------------------------------


class Bench:
    """A Kafka of its own, the stand-ins, the bench's templates and policy; fresh topic sets per phase."""

    def __init__(self, base: Settings, console: Console, cfg: NotifyBenchConfig) -> None:
        self.console, self.cfg = console, cfg
        self.run_id = uuid.uuid4().hex[:6]
        self.work = base.run_dir / f"bench-notify-{self.run_id}"
        self.work.mkdir(parents=True, exist_ok=True)
        kafka, controller = free_ports(2)
        self.templates = _templates_with_sms(self.work / "templates")
        policy_path = self.work / "policy.json"
        policy_path.write_text(json.dumps(bench_policy(json.loads(DEFAULT_POLICY_PATH.read_text())), indent=2))
        policy_from_file(policy_path)  # a broken bench policy is refused before anything starts
        self.settings = standin_settings(
            base.model_copy(
                update={
                    "run_dir": self.work,
                    "kafka_port": kafka,
                    "kafka_controller_port": controller,
                    "topic_prefix": f"bn-{self.run_id}",
                    "policy_path": policy_path,
                    "notify_templates_dir": self.templates,
                    "notify_metrics_port": 0,
                    "sink_metrics_port": 0,
                }
            )
        )
        self.kafka = Infra.from_settings(self.settings).kafka
        self.providers: Providers | None = None
        self.phases: list[Settings] = []
        self.bare_ids: set[str] = set()

    @contextmanager
    def running(self) -> Iterator[Bench]:
        """Kafka and the stand-ins for the whole run; Kafka stopped by its PID at the end."""
        started = server.start(self.kafka)
        self.console.print(f"kafka on 127.0.0.1:{self.settings.kafka_port}, ready in {started.seconds_to_ready:.1f} s")
        try:
            # No SMS status callbacks: they go to a collector the bench does not run, and the Twilio stand-in's
            # failing callbacks (two per message) were its bottleneck (~14-22 SMS/s with them).
            with start_providers(self.settings, self.work / "providers", sms_statuses=()) as providers:
                self.providers = providers
                yield self
        finally:
            server.stop(self.kafka)

    def fresh(self, name: str, **update: Any) -> Settings:
        s = self.settings.model_copy(update={"topic_prefix": f"{self.settings.topic_prefix}-{name}",
                                             "inbox_path": self.work / f"inbox-{name}.sqlite3", **update})  # fmt: skip
        ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
        self.phases.append(s)
        return s

    @contextmanager
    def notifier(self, s: Settings, name: str) -> Iterator[Any]:
        env = settings_env(s)
        with child([sys.executable, "-m", "engage.cli", "notify", "--instance", name], self.work / f"{name}.log",
                   env) as proc:  # fmt: skip
            yield proc

    # ---- 1. deliveries per second ------------------------------------------------------------------------------
    def deliveries(self, channel: Channel) -> DeliveryRun:
        n, run = self.cfg.deliveries, DeliveryRun(channel)
        s = self.fresh(f"d-{channel.value}")
        now = datetime.now(UTC)
        users = [f"dl-{channel.value}-{i:05d}" for i in range(n)]
        contacts = [bench_contact(u, channel, index=i) for i, u in enumerate(users)]
        requests = [_request(f"svc-{self.run_id}-{channel.value}-{i}", u, channel, now) for i, u in enumerate(users)]
        _produce(s, contacts, requests)
        self.console.print(f"deliveries on {channel.value}: {n:,} requests, one `engage notify` ...")
        started = datetime.now(UTC)
        with self.notifier(s, f"d-{channel.value}") as proc:

            def finished() -> list[dict[str, Any]] | None:
                if proc.poll() is not None:
                    raise RuntimeError(f"engage notify exited with {proc.returncode}; see {self.work}")
                entries = _ledger(s)
                return entries if len(_final(entries)) >= n else None

            entries = _wait(f"{n:,} {channel.value} requests handled", finished, self.cfg.settle_seconds)
        sent = [datetime.fromisoformat(e["at"]) for e in _deliveries(entries)]
        run.sent, run.dead = len(sent), sum(1 for st in _final(entries).values() if st == "dead_lettered")
        run.service_rate = delivery_rate(sent)
        run.service_wall_rate = len(sent) / (max(sent) - started).total_seconds() if sent else float("nan")

        self.console.print(f"deliveries on {channel.value}: the bare loop ...")
        bare = [r.model_copy(update={"intervention_id": f"bare-{r.intervention_id}"}) for r in requests]
        self.bare_ids |= {r.intervention_id for r in bare}
        times, errors = self._bare(s, channel, bare, contacts)
        run.bare_sent, run.bare_errors = len(times), errors[:5]
        run.bare_rate = delivery_rate(times)
        return run

    def _bare(
        self, s: Settings, channel: Channel, requests: Sequence[InterventionRequest], contacts: Sequence[Contact]
    ) -> tuple[list[datetime], list[str]]:
        """``bare_loop`` in a fresh process of its own, like the service's (the bench's own process is not alike:
        other imports, other objects for the collector to walk)."""
        given, answer = self.work / f"bare-{channel.value}.jsonl", self.work / f"bare-{channel.value}.json"
        given.write_text("".join(orjson.dumps({"request": r.model_dump(mode="json"), "contact": c.model_dump(
            mode="json")}).decode() + "\n" for r, c in zip(requests, contacts, strict=True)))  # fmt: skip
        argv = [sys.executable, "-m", "engage.bench.notify", str(given), channel.value, str(answer)]
        with child(argv, self.work / f"bare-{channel.value}.log", settings_env(s)) as proc:
            code = proc.wait(timeout=self.cfg.settle_seconds)
        if code != 0:
            raise RuntimeError(f"the bare loop exited with {code}; see {self.work / f'bare-{channel.value}.log'}")
        result = orjson.loads(answer.read_bytes())
        return [datetime.fromisoformat(t) for t in result["times"]], list(result["errors"])

    # ---- 2. response time ----------------------------------------------------------------------------------------
    def response(self, rate: int) -> ResponseRun:
        cfg, run = self.cfg, ResponseRun(rate)
        s = self.fresh(f"rt{rate}", worker_web_port=free_port())
        topics = catalogue(s.topic_prefix, s.event_partitions)
        events = fresh_students(simulated_events(int(rate * cfg.seconds)), max(1, int(rate * cfg.slice_seconds)))
        users = sorted({e["user_id"] for e in events})
        _produce(s, [bench_contact(u, index=i) for i, u in enumerate(users)], [])
        self.console.print(f"response time at {rate:,} events/s: {len(events):,} events of {len(users):,} students ...")
        url = f"http://127.0.0.1:{s.worker_web_port}"
        with ExitStack() as stack:
            worker = stack.enter_context(child([sys.executable, "-m", "engage.cli", "worker"],
                                               self.work / f"rt{rate}-worker.log", settings_env(s)))  # fmt: skip
            wait_http(f"{url}/healthz", worker, log=self.work / f"rt{rate}-worker.log", timeout=90)
            notifier = stack.enter_context(self.notifier(s, f"rt{rate}-notify"))
            wait_for_group(s.kafka, f"{s.topic_prefix}-worker")
            wait_for_group(s.kafka, f"{s.topic_prefix}-notify")
            run.offered, run.offered_seconds = offer_live(s, topics.events.name, events, rate, cfg.seconds,
                                                          cfg.client_batch)  # fmt: skip
            ended = time.monotonic()
            try:
                wait_for_worker(url, run.offered, cfg.settle_seconds, worker)
                run.worker_catch_up_seconds = time.monotonic() - ended - 2.0  # wait_for_worker's last 2 s
            except RuntimeError as exc:
                run.worker_note = str(exc)

            def handled() -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]] | None:
                if notifier.poll() is not None:
                    raise RuntimeError(f"engage notify exited with {notifier.returncode}; see {self.work}")
                requests = {r["intervention_id"]: r for r in read_topic(s.kafka, topics.interventions.name)}
                entries = _ledger(s)
                return (requests, entries) if set(requests) <= set(_final(entries)) else None

            try:
                requests, entries = _wait("every request handled by the notifier", handled, cfg.settle_seconds)
            except RuntimeError as exc:
                run.worker_note += f"; {exc}"
                requests = {r["intervention_id"]: r for r in read_topic(s.kafka, topics.interventions.name)}
                entries = _ledger(s)
        sent_at = {e["intervention_id"]: datetime.fromisoformat(e["at"]) for e in _deliveries(entries)}
        found = responses(requests, sent_at)
        run.requests = len(requests)
        run.send_requests = sum(1 for r in requests.values() if r.get("status") == "send")
        run.outcomes = dict(Counter(_final(entries).values()))
        run.channels = dict(Counter(str(e["channel"]) for e in _deliveries(entries)))
        run.total = Spread.of([r.total for r in found])
        run.to_decision = Spread.of([r.to_decision for r in found])
        run.to_accepted = Spread.of([r.to_accepted for r in found])
        return run

    # ---- 3. duplicates -----------------------------------------------------------------------------------------
    def duplicates(self) -> SendCheck:
        """Every send of the service's runs (not the bare loop's) checked: once each, or dead-lettered."""
        expected: set[str] = set()
        dead: set[str] = set()
        digested: set[str] = set()
        accepted: list[str] = []
        sms_ids: dict[str, str] = {}
        for s in self.phases:
            entries = _ledger(s)
            requests = read_topic(s.kafka, catalogue(s.topic_prefix, s.event_partitions).interventions.name)
            expected |= {r["intervention_id"] for r in requests if _to_send(r)}
            for e in entries:
                if e["state"] == "dead_lettered":
                    dead.add(e["intervention_id"])
                elif e["state"] == "digested":
                    digested.add(e["intervention_id"])
                elif e["state"] == "sent" and e.get("channel") == "in_app":
                    accepted.append(e["intervention_id"])
                elif e["state"] == "sent" and e.get("channel") == "sms":
                    sms_ids[e["provider_message_id"]] = e["intervention_id"]
        assert self.providers is not None
        for a in self.providers.accepted():
            iid = a.intervention_id if a.provider != "twilio" else sms_ids.get(a.provider_id)
            iid = iid or f"unattributed-{a.provider}-{a.provider_id}"
            if iid not in self.bare_ids and not (a.provider == "twilio" and iid.startswith("unattributed")):
                accepted.append(iid)
        return check_sends(expected, accepted, dead, digested)


async def bare_loop(
    s: Settings, channel: Channel, requests: Sequence[InterventionRequest], contacts: Sequence[Contact], inbox: Path
) -> tuple[list[datetime], list[str]]:
    """The same messages through the same channel objects, ``notify_max_in_flight`` at once, nothing else: no Kafka,
    no ledger, no retries or breaker, no fallback. (when each send was accepted, errors)."""
    store = SqliteInbox(inbox, max_items_per_user=s.inbox_max_items)
    channels = configured_channels(s, store)
    sender = channels[channel]
    policy = policy_from_file(s.policy_path) if s.policy_path else policy_from_file()
    catalog = TemplateCatalog.load(s.notify_templates_dir or DEFAULT_TEMPLATES_DIR, policy=policy)
    composer = Composer(catalog, tracking_links(s))
    gate = asyncio.Semaphore(s.notify_max_in_flight)
    times: list[datetime] = []
    errors: list[str] = []

    async def one(request: InterventionRequest, contact: Contact) -> None:
        async with gate:
            try:
                prepared = composer.prepare(request, contact)
                message = composer.message(prepared, channel, recipients(channel, contact)[0])
                await sender.send(message)
                times.append(datetime.now(UTC))
            except Exception as exc:  # counted and shown: a bare loop has no fallback
                errors.append(f"{type(exc).__name__}: {exc}")

    try:
        await asyncio.gather(*(one(r, c) for r, c in zip(requests, contacts, strict=True)))
    finally:
        for c in channels.values():
            await c.aclose()
        store.close()
    return times, errors


def _bare_main(given: Path, channel: Channel, answer: Path) -> None:
    """``python -m engage.bench.notify GIVEN CHANNEL ANSWER``: the bare loop over GIVEN's (request, contact) lines
    with the settings of the environment; the times and errors written to ANSWER."""
    from config.settings import get_settings

    lines = [orjson.loads(line) for line in given.read_bytes().splitlines() if line]
    requests = [InterventionRequest.model_validate(x["request"]) for x in lines]
    contacts = [Contact.model_validate(x["contact"]) for x in lines]
    s = get_settings()
    times, errors = asyncio.run(bare_loop(s, channel, requests, contacts, given.with_suffix(".sqlite3")))
    answer.write_bytes(orjson.dumps({"times": [t.isoformat() for t in times], "errors": errors[:20]}))


def _to_send(request: dict[str, Any]) -> bool:
    """A request the notifier must send (or dead-letter): ``send`` or ``deferred``, and not one for a human."""
    return request.get("status") in ("send", "deferred") and request["intervention_type"] != "human_outreach"


def offer_live(
    s: Settings, topic: str, events: list[dict[str, Any]], rate: int, seconds: float, batch: int
) -> tuple[int, float]:
    """Offer ``rate`` events/s for ``seconds`` as the collector writes them (``PartitionBatch`` messages), each
    flush's events rewritten to happen at the moment it is sent; (events sent, seconds it took)."""
    topics = catalogue(s.topic_prefix, s.event_partitions)
    sent, i, budget = 0, 0, min(len(events), int(rate * seconds))
    start = time.monotonic()
    with EventProducer(s.kafka, topics, source="bench", linger_ms=2) as producer:
        while sent < budget:
            target = min(budget, max(due(rate, time.monotonic() - start), sent + 1))
            chunk = live(events[i : i + target - sent], datetime.now(UTC))
            i += len(chunk)
            flush = [e for group in _client_batches(chunk, batch) for e in group]
            for partition, key, value, count in producer.encode_partition_batches(flush, s.event_partitions):
                producer.send_encoded(key, value, topic=topic, partition=partition)
                sent += count
            time.sleep(0.02)
        producer.flush(60)
    return sent, time.monotonic() - start


def _request(iid: str, user: str, channel: Channel, now: datetime) -> InterventionRequest:
    """A ``send`` streak warning as the worker decides one: the sample engaged student's signals and the reason
    factors, created now, the triggering event a second earlier; the channel is among the request's channels."""
    snap = SAMPLE_STUDENTS["engaged"](SAMPLE_AS_OF).model_copy(update={"user_id": user, "as_of": now})
    base = preview_request(InterventionType.streak_warning, snap)
    channels = [*base.channels, *([channel] if channel not in base.channels else [])]
    return base.model_copy(
        update={
            "intervention_id": iid,
            "created_at": now,
            "triggered_by_event_time": now - timedelta(seconds=1),
            "deadline": now + timedelta(hours=4),
            "channels": channels,
            "signals": snap,
            "factors": list(SAMPLE_FACTORS),
        }
    )


def _templates_with_sms(directory: Path) -> Path:
    """The shipped templates plus an SMS template for streak warnings (the shipped set has SMS only for offers and
    outreach), so the bench's send requests can go by SMS too."""
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(DEFAULT_TEMPLATES_DIR, directory)
    (directory / "streak_warning" / "sms.en.j2").write_text(
        "{% block body %}Keep your streak going: one short lesson today. {{ links.action }}{% endblock %}\n"
    )
    return directory


# -- the report -----------------------------------------------------------------------------------------------------


def run(base: Settings, console: Console, out: Path, cfg: NotifyBenchConfig | None = None) -> Report:
    cfg = cfg or NotifyBenchConfig()
    b = Bench(base, console, cfg)
    report = Report(
        "engage bench notify (the notification service)",
        context={"config": {**asdict(cfg), "channels": [c.value for c in cfg.channels]},
                 "max_in_flight": b.settings.notify_max_in_flight, "partitions": b.settings.event_partitions},
    )  # fmt: skip
    with b.running():
        deliveries = [b.deliveries(c) for c in cfg.channels]
        latency = [b.response(rate) for rate in cfg.rates]
        check = b.duplicates()
    for d in deliveries:
        errors = f"; bare-loop errors: {d.bare_errors}" if d.bare_errors else ""
        report.add(Figure(f"deliveries/s, 1 notify process, {d.channel.value}", d.service_rate, "msg/s",
                          "bare loop (same client, same concurrency)", d.bare_rate,
                          notes=f"{d.sent:,} sent, {d.dead:,} dead-lettered by the service; bare loop sent "
                                f"{d.bare_sent:,}; from the process start (start-up and ledger read included) "
                                f"{d.service_wall_rate:.1f} msg/s; in flight {b.settings.notify_max_in_flight}; "
                                f"{STANDIN_CEILING}{errors}"))  # fmt: skip
    for r in latency:
        offered = f"{r.rate:,} events/s offered"
        lag = (f"worker caught up {r.worker_catch_up_seconds:.1f} s after the load ended"
               if r.worker_note == "" else r.worker_note)  # fmt: skip
        report.add(Figure(f"response p50, {offered}", r.total.p50, "s"))
        report.add(Figure(f"response p99, {offered}", r.total.p99, "s", aim="< 5 s (seed: < 300 s)",
                          notes=f"{r.total.line()} over {r.total.n:,} sent of {r.send_requests:,} send requests "
                                f"({r.requests:,} requests; final states {r.outcomes}; channels {r.channels}); "
                                f"offered {r.offered:,} events in {r.offered_seconds:.1f} s = {r.achieved:,.0f} "
                                f"events/s achieved; {lag}; event->decision {r.to_decision.line()}; "
                                f"decision->accepted {r.to_accepted.line()}"))  # fmt: skip
    report.add(Figure("sends checked: lost + duplicated + contradictory", len(check.lost) + len(check.duplicated)
                      + len(check.sent_and_dead), "requests", aim="0", notes=check.summary()))  # fmt: skip
    report.context["responses"] = [
        {"rate": r.rate, "offered": r.offered, "achieved": r.achieved, "total": asdict(r.total),
         "to_decision": asdict(r.to_decision), "to_accepted": asdict(r.to_accepted), "outcomes": r.outcomes,
         "channels": r.channels, "worker": r.worker_note or f"caught up in {r.worker_catch_up_seconds:.1f} s"}
        for r in latency
    ]  # fmt: skip
    report.context["send_check"] = check.summary()
    report.print(console)
    verdict = "OK" if check.ok and not check.duplicated else "NOT OK"
    console.print(f"  [bold]no-duplicates check[/bold]: {check.summary()} -> {verdict}")
    if not check.ok or check.duplicated:
        report.problems.append(f"send check: {check.summary()}")
    console.print(f"saved {report.save(out)}")
    return report


__all__ = ["NotifyBenchConfig", "Response", "bare_loop", "offer_live", "run"]

if __name__ == "__main__":
    _bare_main(Path(sys.argv[1]), Channel(sys.argv[2]), Path(sys.argv[3]))
