"""Helpers for the notification service's integration tests: the providers' local servers run in their own threads
(so a service in a thread or a subprocess can use them), what each received by intervention id, the service in a
thread or as ``engage notify`` in a subprocess, and Kafka readers that wait for a condition with a deadline."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from confluent_kafka import Consumer, KafkaException, TopicPartition

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.providers.fcm import FcmServer
from deploy.providers.smtp import SmtpHandler, SmtpServer
from deploy.providers.twilio import TwilioServer
from kafka_io.admin import ensure_topics
from kafka_io.client import Kafka, kafka_conf
from kafka_io.producer import EventProducer
from notifications.service import NotifyService, notify_group
from processors.notify.context import SAMPLE_AS_OF, SAMPLE_FACTORS, SAMPLE_STUDENTS, preview_request
from processors.notify.templates import DEFAULT_TEMPLATES_DIR
from schemas.contacts import Contact
from schemas.interventions import InterventionRequest, InterventionType
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end

T = TypeVar("T")


# -- providers ------------------------------------------------------------------------------------------------


class _SlowHandler(SmtpHandler):
    delay: float = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


class _SlowFcm(FcmServer):
    delay: float = 0.0

    async def _send(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super()._send(request)


class _SlowTwilio(TwilioServer):
    delay: float = 0.0

    async def _create(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super()._create(request)


class Providers:
    """SMTP (aiosmtpd's own thread), FCM and Twilio (one event loop in a thread), each answering after ``delay``."""

    def __init__(self, delay: float = 0.0) -> None:
        self.smtp = SmtpServer()
        handler = _SlowHandler()
        handler.delay = delay
        self.smtp.handler = handler
        self.smtp.controller.handler = handler
        self.fcm = _SlowFcm()
        self.twilio = _SlowTwilio()
        self.fcm.delay = self.twilio.delay = delay
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="providers", daemon=True)

    def __enter__(self) -> Providers:
        self.smtp.__enter__()
        self._thread.start()
        for server in (self.fcm, self.twilio):
            asyncio.run_coroutine_threadsafe(server.__aenter__(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        for server in (self.fcm, self.twilio):
            asyncio.run_coroutine_threadsafe(server.__aexit__(None, None, None), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self.smtp.__exit__()

    def settings(self) -> dict[str, Any]:
        return {
            "smtp_port": self.smtp.port,
            "email_from": "Engage <engage@school.example>",
            "fcm_base_url": self.fcm.base_url,
            "fcm_project_id": self.fcm.project,
            "fcm_access_token": self.fcm.access_token,
            "twilio_base_url": self.twilio.base_url,
            "twilio_account_sid": self.twilio.account_sid,
            "twilio_auth_token": self.twilio.auth_token,
            "twilio_from_number": "+15005550006",
        }

    def accepted(self, phone_to_intervention: dict[str, str] | None = None) -> list[str]:
        """Intervention ids of every message a provider accepted, repeats included (e-mail: the
        X-Engage-Intervention header; push: the data payload; SMS: the number's request, from the map given)."""
        ids = [m.parsed()["X-Engage-Intervention"] for m in list(self.smtp.received)]
        ids += [r["json"]["message"]["data"]["intervention_id"] for r in list(self.fcm.requests)]
        numbers = phone_to_intervention or {}
        ids += [
            numbers.get(str(r["form"].get("To")), f"unknown-number-{r['form'].get('To')}") for r in self.twilio.requests
        ]
        return ids


# -- settings, requests, contacts ---------------------------------------------------------------------------------


def notify_settings(base: Settings, run_dir: Path, providers: Providers, **overrides: Any) -> Settings:
    """The session's Kafka with topics of their own (a fresh prefix), the local providers, quick retries."""
    s = Settings(  # validated again (model_copy would keep a secret given as a plain string)
        **{
            **base.model_dump(),
            "topic_prefix": f"{base.topic_prefix}-{uuid.uuid4().hex[:6]}",
            "run_dir": run_dir,
            "notify_metrics_port": 0,
            "notify_retry_attempts": 2,
            "notify_retry_initial_seconds": 0.05,
            "notify_retry_jitter_seconds": 0.01,
            "notify_poll_seconds": 0.1,
            **providers.settings(),
            **overrides,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def templates_with_sms(directory: Path) -> Path:
    """The shipped templates plus an SMS template for streak warnings (the shipped set has SMS only for offers and
    outreach), so that plain send requests can go by SMS."""
    shutil.copytree(DEFAULT_TEMPLATES_DIR, directory)
    (directory / "streak_warning" / "sms.en.j2").write_text(
        "{% block body %}Keep your streak going: one short lesson today. {{ links.action }}{% endblock %}\n"
    )
    return directory


def make_request(
    iid: str,
    user: str,
    *,
    kind: InterventionType = InterventionType.streak_warning,
    now: datetime | None = None,
    **update: Any,
) -> InterventionRequest:
    now = now or datetime.now(UTC)
    snap = SAMPLE_STUDENTS["engaged"](SAMPLE_AS_OF).model_copy(update={"user_id": user, "as_of": now})
    base = preview_request(kind, snap)
    data = {
        **base.model_dump(),
        "intervention_id": iid,
        "user_id": user,
        "created_at": now,
        "triggered_by_event_time": now - timedelta(seconds=1),
        "deadline": now + timedelta(hours=4),
        "signals": snap.model_dump(),
        "factors": [f.model_dump() for f in SAMPLE_FACTORS],
        **update,
    }
    return InterventionRequest.model_validate(data)


def email_contact(user: str, **update: Any) -> Contact:
    return Contact.model_validate(
        {"user_id": user, "email": f"{user}@school.example", "email_verified": True, **update}
    )


def produce(s: Settings, *, contacts: Iterable[Contact] = (), requests: Iterable[InterventionRequest | bytes] = (),
            raw: Iterable[tuple[str, bytes, bytes]] = ()) -> None:  # fmt: skip
    """Contacts and requests keyed by user id (the repo's producer, murmur2), then anything raw (topic, key, value)."""
    topics = catalogue(s.topic_prefix, s.event_partitions)
    producer = EventProducer(s.kafka, topics, source="test")
    try:
        for c in contacts:
            producer.send_encoded(c.user_id.encode(), c.model_dump_json().encode(), topic=topics.contacts.name)
        for r in requests:
            if isinstance(r, bytes):
                producer.send_encoded(b"garbage", r, topic=topics.interventions.name)
            else:
                producer.send_encoded(r.user_id.encode(), r.model_dump_json().encode(), topic=topics.interventions.name)
        for topic, key, value in raw:
            producer.send_encoded(key, value, topic=topic)
        assert producer.flush(30) == 0 and producer.stats.failed == 0
    finally:
        producer.close()


# -- waiting ------------------------------------------------------------------------------------------------------


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0, every: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def outcomes(s: Settings) -> list[dict[str, Any]]:
    return read_to_end(s.kafka, catalogue(s.topic_prefix, s.event_partitions).intervention_outcomes.name)


def dead_letters(s: Settings) -> list[dict[str, Any]]:
    return read_to_end(s.kafka, catalogue(s.topic_prefix, s.event_partitions).dead_letters.name)


def ledger(s: Settings) -> list[dict[str, Any]]:
    return read_to_end(s.kafka, catalogue(s.topic_prefix, s.event_partitions).notification_ledger.name)


def by_intervention(rows: Iterable[dict[str, Any]], outcome: str | None = None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if outcome is None or row.get("outcome") == outcome:
            out.setdefault(row["intervention_id"], []).append(row)
    return out


def all_committed(s: Settings) -> bool:
    """Whether the notify group committed every partition of the interventions topic to its end."""
    topic = catalogue(s.topic_prefix, s.event_partitions).interventions.name
    consumer = Consumer(kafka_conf(s.kafka, {"group.id": notify_group(s)}))
    try:
        parts = [TopicPartition(topic, p) for p in range(s.event_partitions)]
        try:
            committed = consumer.committed(parts, timeout=10)
        except KafkaException:  # the group's coordinator is still loading (a new group): not yet
            return False
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            if high > 0 and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


# -- the service --------------------------------------------------------------------------------------------------


@contextmanager
def service_thread(s: Settings, **kwargs: Any) -> Iterator[NotifyService]:
    """The service in a thread of this process (its own event loop); stopped cleanly at the end."""
    service = NotifyService(s, **kwargs)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(service.run())
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=run, name="notify", daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(30)
        assert not thread.is_alive(), "the notification service did not stop"
    if errors:
        raise errors[0]


def start_subprocess(s: Settings, instance: str, log: Path) -> subprocess.Popen[bytes]:
    """``engage notify`` as its own process with these settings (ENGAGE_* variables)."""
    env = {**os.environ, **settings_env(s), "PYTHONPATH": str(PROJECT_ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "engage.cli", "notify", "--instance", instance],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def partitions_by_key(bootstrap: Kafka, topic: str) -> dict[str, int]:
    """Each message's key -> the partition it is on (every partition read to its end)."""
    consumer = Consumer(kafka_conf(bootstrap, {"group.id": f"test-keys-{uuid.uuid4().hex}"}))
    out: dict[str, int] = {}
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            deadline = time.monotonic() + 30
            offset = low
            while offset < high and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                out[(msg.key() or b"").decode()] = p
                offset = (msg.offset() or 0) + 1
    finally:
        consumer.close()
    return out
