"""The whole slice over real local servers: retries honouring a provider's Retry-After, a dead token retired and the
next channel used, a provider's breaker opening so that later messages go elsewhere without asking it."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import Settings
from deploy.providers.fcm import FcmServer, fcm_error
from deploy.providers.http import Answer
from deploy.providers.smtp import SmtpServer
from notifications.channels.base import Message
from notifications.channels.configured import configured_channels
from notifications.inbox import SqliteInbox
from notifications.resilience import Deliverer
from notifications.routing import FinalOutcome, deliver_first, plan_channels
from schemas.contacts import Contact, PushToken
from schemas.events import Channel as ChannelName

pytestmark = pytest.mark.local_servers

NOW = datetime.now(UTC)
PARTS = {
    ChannelName.email: {"subject": "Keep going", "text": "One lesson today.", "html": "<p>One lesson today.</p>"},
    ChannelName.push: {"title": "Keep going", "body": "One lesson today."},
    ChannelName.in_app: {"title": "Keep going", "body": "One lesson today."},
}


def settings(tmp_path: Any, smtp: SmtpServer, fcm: FcmServer, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "run_dir": tmp_path,
        "smtp_port": smtp.port,
        "email_from": "Engage <engage@school.example>",
        "fcm_base_url": fcm.base_url,
        "fcm_project_id": fcm.project,
        "fcm_access_token": fcm.access_token,
        "notify_retry_attempts": 3,
        "notify_retry_initial_seconds": 0.05,
        "notify_retry_jitter_seconds": 0.01,
        **overrides,
    }
    return Settings(**fields)


def contact(*tokens: str) -> Contact:
    return Contact(
        user_id="student-1",
        email="s1@example.org",
        email_verified=True,
        push_tokens=[
            PushToken(token=t, platform="android", registered_at=NOW - timedelta(days=i)) for i, t in enumerate(tokens)
        ],
    )


async def send(
    s: Settings, deliverer: Deliverer, who: Contact, intervention_id: str, tiers: list[ChannelName]
) -> FinalOutcome:
    channels = configured_channels(s, SqliteInbox(s.inbox))
    try:
        plan = plan_channels(
            tiers, who, configured=set(channels), refusing=lambda c: deliverer.is_open(channels[c].provider)
        )

        def compose(channel: ChannelName, address: str) -> Message:
            return Message(intervention_id, who.user_id, channel, address, PARTS[channel])

        return await deliver_first(deliverer, channels, plan, who, intervention_id, compose)
    finally:
        for channel in channels.values():
            await channel.aclose()


def test_a_retry_after_is_waited_for_and_the_send_then_succeeds(tmp_path):
    with SmtpServer() as smtp:

        async def scenario() -> tuple[FinalOutcome, float, int]:
            async with FcmServer() as fcm:
                fcm.answers["phone"] = [
                    Answer(503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "overloaded"), {"Retry-After": "1"}),
                    Answer(200, {"name": "projects/engage-test/messages/0:42"}),
                ]
                s = settings(tmp_path, smtp, fcm)
                started = time.monotonic()
                final = await send(s, Deliverer.from_settings(s), contact("phone"), "iv-1", [ChannelName.push])
                return final, time.monotonic() - started, len(fcm.requests)

        final, took, requests = asyncio.run(scenario())
    assert final.delivered is not None and final.delivered.attempts == 2
    assert final.delivered.delivery.provider_id == "projects/engage-test/messages/0:42"
    assert requests == 2 and 1.0 <= took < 5.0  # waited the second FCM asked for, not the 0.05 s backoff


def test_a_dead_token_is_retired_the_next_device_is_dead_too_and_email_takes_it(tmp_path):
    with SmtpServer() as smtp:

        async def scenario() -> FinalOutcome:
            async with FcmServer() as fcm:
                gone = Answer(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."))
                fcm.answers["phone"] = [gone]
                fcm.answers["tablet"] = [gone]
                s = settings(tmp_path, smtp, fcm)
                tiers = [ChannelName.push, ChannelName.email, ChannelName.in_app]
                return await send(s, Deliverer.from_settings(s), contact("phone", "tablet"), "iv-2", tiers)

        final = asyncio.run(scenario())
    assert final.retired_tokens == ("phone", "tablet")
    assert final.delivered is not None and final.delivered.channel is ChannelName.email
    (mail,) = smtp.received
    assert mail.rcpt_tos == ["s1@example.org"] and mail.parsed()["Subject"] == "Keep going"


def test_an_open_breaker_sends_later_messages_elsewhere_without_asking_the_provider(tmp_path):
    with SmtpServer() as smtp:

        async def scenario() -> tuple[list[FinalOutcome], int]:
            async with FcmServer() as fcm:
                fcm.answers["phone"] = [Answer(500, fcm_error(500, "INTERNAL", "INTERNAL", "internal error"))]
                s = settings(tmp_path, smtp, fcm, notify_retry_attempts=1, notify_breaker_failures=2)
                deliverer = Deliverer.from_settings(s)
                tiers = [ChannelName.push, ChannelName.in_app]
                finals = [await send(s, deliverer, contact("phone"), f"iv-{n}", tiers) for n in range(4)]
                return finals, len(fcm.requests)

        finals, fcm_requests = asyncio.run(scenario())
    assert fcm_requests == 2  # the breaker opened after two failures: the next two never asked FCM
    assert all(f.delivered is not None and f.delivered.channel is ChannelName.in_app for f in finals)
    assert [f.failures[0].kind for f in finals[:2]] == ["retries_exhausted"] * 2
    assert [f.skipped for f in finals[2:]] == [((ChannelName.push, "its provider's circuit breaker is open"),)] * 2
    inbox = SqliteInbox(tmp_path / "inbox.sqlite3")
    assert sorted(i.item_id for i in inbox.items("student-1")) == ["iv-0", "iv-1", "iv-2", "iv-3"]
