"""The provider stand-ins as a process (``engage providers serve``), as the demo and the benchmarks run them: our
real channels, built from the settings, send to it; what it accepted is read back from its record; its injected
faults are the providers' documented "not now" answers, which the channels classify as Retryable; a SIGKILL in
the middle of traffic leaves a record in which every line parses and every acknowledged message is present."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from config.settings import Settings
from deploy.providers.faults import Faults
from deploy.providers.process import Providers, standin_ports, standin_settings, start_providers
from deploy.providers.record import ACCEPTED_FILE, read_accepted, read_mail
from deploy.providers.twilio import twilio_signature
from notifications.channels.base import Channel, Delivery, Message, Retryable
from notifications.channels.configured import configured_channels
from notifications.inbox import SqliteInbox
from schemas.events import Channel as ChannelName

pytestmark = pytest.mark.local_servers

PARTS: dict[ChannelName, dict[str, str]] = {
    ChannelName.email: {"subject": "2 days to a 14-day streak", "text": "Keep going.", "html": "<p>Keep going.</p>"},
    ChannelName.push: {"title": "Your streak", "body": "2 days to go"},
    ChannelName.sms: {"body": "Engage: 2 days to your 14-day streak"},
}
TO = {ChannelName.email: "sam@example.org", ChannelName.push: "device-token-1", ChannelName.sms: "+4915112345678"}


def stand_in(tmp_path: Path) -> Settings:
    return standin_settings(Settings(run_dir=tmp_path, email_from="Engage <engage@school.example>"))


def channels_for(settings: Settings) -> dict[ChannelName, Channel]:
    return configured_channels(settings, SqliteInbox(settings.run_dir / "inbox.sqlite"))


def message(channel: ChannelName, intervention_id: str, **data: str) -> Message:
    return Message(intervention_id, "student-7", channel, TO[channel], PARTS[channel], data=data)


async def close(channels: dict[ChannelName, Channel]) -> None:
    for channel in channels.values():
        await channel.aclose()


def poll(condition: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout:.0f} s")


def test_messages_sent_through_our_channels_are_recorded_and_read_back(tmp_path: Path):
    s = stand_in(tmp_path)
    callbacks: list[tuple[str, dict[str, str], str]] = []

    async def scenario(providers: Providers) -> dict[ChannelName, Delivery]:
        async def status(request: web.Request) -> web.Response:  # our collector's place in the demo
            form = {k: str(v) for k, v in (await request.post()).items()}
            callbacks.append((str(request.url), form, request.headers.get("X-Twilio-Signature", "")))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/v1/webhooks/twilio/status/{token}", status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        callback_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/webhooks/twilio/status/opaque-token"
        channels = channels_for(s)
        try:
            deliveries = {
                ChannelName.email: await channels[ChannelName.email].send(message(ChannelName.email, "iv-mail")),
                ChannelName.push: await channels[ChannelName.push].send(message(ChannelName.push, "iv-push")),
                ChannelName.sms: await channels[ChannelName.sms].send(
                    message(ChannelName.sms, "iv-sms", status_callback=callback_url)
                ),
            }
            deadline = time.monotonic() + 20
            while len(callbacks) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return deliveries
        finally:
            await close(channels)
            await runner.cleanup()

    with start_providers(s, tmp_path / "record") as providers:
        assert (
            providers.smtp_port,
            *(int(u.rsplit(":", 1)[1]) for u in (providers.fcm_url, providers.twilio_url)),
        ) == (standin_ports(s))
        deliveries = asyncio.run(scenario(providers))
        health = providers.health()

    records = {r.provider: r for r in read_accepted(tmp_path / "record")}
    assert sorted(records) == ["fcm", "smtp", "twilio"] and health["accepted"] == {"smtp": 1, "fcm": 1, "twilio": 1}
    mail, push, sms = records["smtp"], records["fcm"], records["twilio"]

    assert (mail.to, mail.intervention_id, mail.subject) == (
        TO[ChannelName.email],
        "iv-mail",
        "2 days to a 14-day streak",
    )
    assert mail.provider_id == deliveries[ChannelName.email].provider_id  # the Message-ID our channel recorded
    eml = read_mail(tmp_path / "record", mail.id)
    assert eml["X-Engage-Intervention"] == "iv-mail" and eml.get_content_type() == "multipart/alternative"
    html = eml.get_body(("html",))
    assert html is not None and "<p>Keep going.</p>" in html.get_content()

    assert (push.to, push.intervention_id, push.subject, push.body) == (
        "device-token-1",
        "iv-push",
        "Your streak",
        "2 days to go",
    )
    assert push.provider_id == deliveries[ChannelName.push].provider_id

    assert (sms.to, sms.body, sms.intervention_id) == (TO[ChannelName.sms], PARTS[ChannelName.sms]["body"], None)
    assert sms.provider_id == deliveries[ChannelName.sms].provider_id and sms.status_callback
    for record in records.values():
        assert record.accepted_at.utcoffset() is not None

    # Twilio's status callbacks, reported by the process itself, signed with the account's token.
    assert [form["MessageStatus"] for _, form, _ in callbacks] == ["sent", "delivered"]
    for url, form, signature in callbacks:
        assert form["MessageSid"] == sms.provider_id and form["To"] == TO[ChannelName.sms]
        assert signature == twilio_signature(s.twilio_auth_token.get_secret_value(), url, form)  # type: ignore[union-attr]


def test_injected_faults_are_documented_retryable_answers_and_only_accepted_messages_are_recorded(tmp_path: Path):
    s = stand_in(tmp_path)
    per_channel = 12

    async def scenario() -> dict[ChannelName, list[Delivery | Retryable]]:
        channels = channels_for(s)
        results: dict[ChannelName, list[Delivery | Retryable]] = {c: [] for c in TO}
        try:
            for i in range(per_channel):
                for name in TO:
                    try:
                        results[name].append(await channels[name].send(message(name, f"iv-{name.value}-{i}")))
                    except Retryable as exc:  # anything else fails the test
                        results[name].append(exc)
        finally:
            await close(channels)
        return results

    faults = Faults(fail_rate=0.5, seed=7, retry_after=0.5)
    with start_providers(s, tmp_path / "record", faults=faults, sms_statuses=()) as providers:
        results = asyncio.run(scenario())
        health = providers.health()

    accepted = read_accepted(tmp_path / "record")
    for name, provider in ((ChannelName.email, "smtp"), (ChannelName.push, "fcm"), (ChannelName.sms, "twilio")):
        refused = [r for r in results[name] if isinstance(r, Retryable)]
        delivered = {r.provider_id for r in results[name] if isinstance(r, Delivery)}
        assert 0 < len(refused) < per_channel, (name, len(refused))
        assert health["injected_faults"][provider] == len(refused)
        assert {r.provider_id for r in accepted if r.provider == provider} == delivered  # no refused one recorded
        assert len([r for r in accepted if r.provider == provider]) == len(delivered)
        if name is ChannelName.email:
            assert all("451" in r.reason for r in refused)
        elif name is ChannelName.push:
            assert all(r.retry_after == 0.5 and ("429" in r.reason or "503" in r.reason) for r in refused)
        else:
            assert all(r.retry_after is None and ("20429" in r.reason or "20503" in r.reason) for r in refused)

    # The same seed refuses the same requests again.
    again = Faults(fail_rate=0.5, seed=7)
    for name, provider in ((ChannelName.email, "smtp"), (ChannelName.push, "fcm"), (ChannelName.sms, "twilio")):
        pattern = [isinstance(r, Retryable) for r in results[name]]
        assert pattern == [again.draw(provider) is not None for _ in range(per_channel)]  # type: ignore[arg-type]


def test_a_sigkill_during_traffic_leaves_every_line_whole_and_every_acknowledged_message_recorded(tmp_path: Path):
    s = stand_in(tmp_path)
    record_dir = tmp_path / "record"
    acknowledged: list[Delivery] = []

    async def traffic(stop_after: float) -> None:
        channels = channels_for(s)

        async def sender(name: ChannelName, worker: int) -> None:
            i = 0
            while True:
                i += 1
                try:
                    acknowledged.append(await channels[name].send(message(name, f"iv-{name.value}-{worker}-{i}")))
                except Retryable:
                    return  # the process is gone

        tasks = [asyncio.create_task(sender(name, w)) for name in TO for w in range(4)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), stop_after)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await close(channels)

    with start_providers(s, record_dir, sms_statuses=()) as providers:
        sending = threading.Thread(target=asyncio.run, args=(traffic(60.0),))
        sending.start()
        poll(lambda: len(read_accepted(record_dir)) >= 300, 60, "300 messages accepted")
        providers.proc.kill()
        providers.proc.wait()
        sending.join(timeout=60)
        assert not sending.is_alive()

    raw = (record_dir / ACCEPTED_FILE).read_bytes()
    assert raw.endswith(b"\n")  # no half-written line
    accepted = read_accepted(record_dir)  # every line parses, or this raises naming the line
    assert len(accepted) == raw.count(b"\n") >= 300
    assert {r.provider for r in accepted} == {"smtp", "fcm", "twilio"}
    recorded = {(r.provider, r.provider_id) for r in accepted}
    assert {(d.provider, d.provider_id) for d in acknowledged} <= recorded  # acknowledged means recorded
    for mail in (r for r in accepted if r.provider == "smtp"):
        assert read_mail(record_dir, mail.id)["X-Engage-Intervention"] == mail.intervention_id
