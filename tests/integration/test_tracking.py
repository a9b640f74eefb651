"""Tracking back through the real collector (uvicorn) and a real worker on real Kafka: opens, clicks, unsubscribes,
Twilio status callbacks (from the local Twilio server, signed as Twilio signs), contacts, and the in-app inbox;
outcomes on to ClickHouse through the existing sink."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from deploy.providers.twilio import TwilioServer
from kafka_io.client import kafka_conf
from kafka_io.producer import key_partition
from notifications.channels.base import Message
from notifications.channels.sms import TwilioSmsChannel
from notifications.inbox import InboxItem, SqliteInbox
from notifications.tracking.keys import tracking_links
from notifications.tracking.links import TrackingLinks
from schemas.events import Channel
from schemas.interventions import InterventionRequest, InterventionType
from schemas.topics import TopicCatalogue, catalogue
from sinks.clickhouse.client import connect
from sinks.service import run_sinks
from tests.integration.helpers import running_collector
from tests.integration.workers import SERVER_KEY, WorkerProcess

pytestmark = pytest.mark.integration

TWILIO_TOKEN = "twilio-secret"
WRITE_KEY = {"Authorization": "Bearer wk_demo_web"}


@pytest.fixture(scope="module")
def tracked(infra: Infra, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    run = tmp_path_factory.mktemp("tracking-run")
    return settings.model_copy(
        update={
            "topic_prefix": f"trk-{uuid.uuid4().hex[:8]}",
            "run_dir": run,
            "collector_port": free_port(),
            "tracking_secret": SecretStr("a-test-secret-of-enough-bytes"),
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "sink_batch_seconds": 0.2,
        }
    )


@pytest.fixture(scope="module")
def collector(tracked: Settings) -> Iterator[str]:
    with running_collector(tracked) as base:
        yield base


def topics(s: Settings) -> TopicCatalogue:
    return catalogue(s.topic_prefix, s.event_partitions)


def request(user: str, intervention_type: InterventionType = InterventionType.streak_warning) -> InterventionRequest:
    now = datetime.now(UTC)
    return InterventionRequest(
        intervention_id=str(uuid.uuid4()),
        user_id=user,
        created_at=now,
        status="send",
        tier="high",
        intervention_type=intervention_type,
        channels=[Channel.email, Channel.sms],
        reason="No login for 4 days",
        deadline=now + timedelta(hours=4),
        risk_7d=71.0,
        model_version="heuristic-1",
        triggered_by_event_time=now,
    )


def messages(s: Settings, topic: str) -> list[tuple[int, dict[str, Any]]]:
    """Every message on ``topic`` up to its end offsets now, with its partition."""
    import orjson

    consumer = Consumer(kafka_conf(s.kafka, {"group.id": f"t-{uuid.uuid4().hex}"}))
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        left = {p: end for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in left])
        out: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        while left and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if msg.partition() in left and msg.offset() < left[msg.partition()]:
                out.append((msg.partition(), orjson.loads(msg.value())))
                if msg.offset() + 1 >= left[msg.partition()]:
                    del left[msg.partition()]
        assert not left, f"{topic}: partitions {sorted(left)} not read to their end"
        return out
    finally:
        consumer.close()


def wait_for_messages(
    s: Settings, topic: str, match: Callable[[dict[str, Any]], bool], count: int, timeout: float = 30.0
) -> list[tuple[int, dict[str, Any]]]:
    """The matching messages once at least ``count`` are on the topic (polled, with a deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [(p, m) for p, m in messages(s, topic) if match(m)]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def events_of(s: Settings, user: str, event_type: str, count: int = 1) -> list[dict[str, Any]]:
    batches = wait_for_messages(
        s,
        topics(s).events.name,
        lambda b: any(e["event_type"] == event_type for e in b["events"]) and b["user_id"] == user,
        count,
    )
    return [e for _, b in batches for e in b["events"] if e["event_type"] == event_type]


def outcomes_of(s: Settings, user: str, outcome: str, count: int = 1) -> list[dict[str, Any]]:
    found = wait_for_messages(
        s, topics(s).intervention_outcomes.name, lambda o: o["user_id"] == user and o["outcome"] == outcome, count
    )
    return [o for _, o in found]


def hits(base: str, kind: str, result: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(f'engage_tracking_hits_total{{kind="{kind}",result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric for {kind}/{result}")


def path_of(url: str, s: Settings) -> str:
    prefix = f"http://127.0.0.1:{s.collector_port}"
    assert url.startswith(prefix), url
    return url[len(prefix) :]


# -- opens and clicks -------------------------------------------------------------------------------------------


def test_the_open_pixel_is_an_uncached_gif_and_each_open_an_event_and_an_outcome(collector: str, tracked: Settings):
    user = f"u-{uuid.uuid4().hex[:8]}"
    req = request(user)
    pixel = tracking_links(tracked).open_pixel(req, Channel.email)
    assert pixel is not None and user not in pixel and req.intervention_id not in pixel
    before = hits(collector, "open", "ok")
    first = httpx.get(pixel)
    second = httpx.get(pixel)  # opened again (or the client fetched it twice)
    for answer in (first, second):
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/gif"
        assert answer.content.startswith(b"GIF89a") and len(answer.content) == 42
        assert "no-store" in answer.headers["cache-control"] and answer.headers["pragma"] == "no-cache"
    assert hits(collector, "open", "ok") == before + 2

    opened = events_of(tracked, user, "notification_opened", 2)
    assert len(opened) == 2 and opened[0]["event_id"] == opened[1]["event_id"]  # one event id: counted once
    assert opened[0]["payload"]["intervention_id"] == req.intervention_id
    assert opened[0]["payload"]["channel"] == "email" and opened[0]["received_at"]
    outcomes = outcomes_of(tracked, user, "opened", 2)
    assert {(o["intervention_id"], o["channel"]) for o in outcomes} == {(req.intervention_id, "email")}


def test_a_click_redirects_to_the_sealed_target_and_becomes_an_event_and_an_outcome(collector: str, tracked: Settings):
    user = f"u-{uuid.uuid4().hex[:8]}"
    req = request(user)
    lm = tracking_links(tracked)
    action = lm.links(req, Channel.email).action
    answer = httpx.get(action, follow_redirects=False)
    assert answer.status_code == 302
    assert answer.headers["location"] == lm.action_target(req, Channel.email)
    assert (
        answer.headers["location"].startswith("https://app.example/continue?")
        and "no-store" in answer.headers["cache-control"]
    )
    (clicked,) = events_of(tracked, user, "notification_clicked")
    assert clicked["payload"] == {
        "notification_id": clicked["payload"]["notification_id"],
        "channel": "email",
        "intervention_id": req.intervention_id,
        "template_id": None,
    }
    (outcome,) = outcomes_of(tracked, user, "clicked")
    assert outcome["intervention_id"] == req.intervention_id and outcome["channel"] == "email"


def test_tampered_garbage_and_wrong_purpose_links_are_400_expired_ones_410_and_nothing_is_recorded(
    collector: str, tracked: Settings
):
    user = f"u-{uuid.uuid4().hex[:8]}"
    req = request(user)
    lm = tracking_links(tracked)
    action = lm.links(req, Channel.email).action
    token = action.rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    before = {r: hits(collector, "click", r) for r in ("400", "410")}

    tampered = httpx.get(f"{collector}/t/c/{flipped}", follow_redirects=False)
    garbage = httpx.get(f"{collector}/t/c/not-a-token", follow_redirects=False)
    pixel = lm.open_pixel(req, Channel.email)
    assert pixel is not None
    wrong_purpose = httpx.get(f"{collector}/t/c/{pixel.rsplit('/', 1)[1]}", follow_redirects=False)
    for answer in (tampered, garbage, wrong_purpose):
        assert answer.status_code == 400 and "location" not in answer.headers
        assert "not valid" in answer.text
    old = TrackingLinks(lm.codec, lm.policy, clock=lambda: datetime.now(UTC) - timedelta(days=61))
    expired = httpx.get(old.links(req, Channel.email).action, follow_redirects=False)
    assert expired.status_code == 410 and "expired on" in expired.text and "location" not in expired.headers
    expired_pixel = old.open_pixel(req, Channel.email)
    assert expired_pixel is not None and httpx.get(expired_pixel).status_code == 410
    assert hits(collector, "click", "400") == before["400"] + 3
    assert hits(collector, "click", "410") == before["410"] + 1

    httpx.get(action, follow_redirects=False)  # the genuine link: once it is recorded, nothing else was
    assert len(events_of(tracked, user, "notification_clicked")) == 1
    assert len(outcomes_of(tracked, user, "clicked")) == 1
    assert not outcomes_of(tracked, user, "opened", count=0)


def test_with_allowed_hosts_set_a_click_never_leaves_them(collector: str, tracked: Settings):
    narrow = tracked.model_copy(update={"collector_port": free_port(), "tracking_redirect_hosts": ["school.example"]})
    user = f"u-{uuid.uuid4().hex[:8]}"
    action = tracking_links(narrow).links(request(user), Channel.email).action  # to app.example: not allowed
    with running_collector(narrow):
        refused = httpx.get(action, follow_redirects=False)
    assert refused.status_code == 400 and "location" not in refused.headers
    assert "does not send to" in refused.text
    assert not events_of(tracked, user, "notification_clicked", count=0)


# -- unsubscribe ------------------------------------------------------------------------------------------------


def test_unsubscribe_asks_on_get_and_one_click_post_publishes_a_contact_change(collector: str, tracked: Settings):
    user = f"u-{uuid.uuid4().hex[:8]}"
    lm = tracking_links(tracked)
    url = lm.links(request(user), Channel.email).unsubscribe
    page = httpx.get(url)
    assert page.status_code == 200 and '<form method="post">' in page.text and "e-mail" in page.text
    one_click = httpx.post(
        url,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert one_click.status_code == 200 and "You are unsubscribed" in one_click.text
    topic = topics(tracked).contact_changes.name
    changes = wait_for_messages(tracked, topic, lambda c: c["user_id"] == user, 1)
    assert len(changes) == 1  # the GET changed nothing
    partition, change = changes[0]
    assert change["unsubscribe"] == ["email"] and change["source"] == "unsubscribe_link"
    assert partition == key_partition(user.encode(), tracked.event_partitions)
    old = TrackingLinks(lm.codec, lm.policy, clock=lambda: datetime.now(UTC) - timedelta(days=500))
    assert httpx.post(old.links(request(user), Channel.email).unsubscribe).status_code == 410


# -- Twilio status callbacks ------------------------------------------------------------------------------------


def test_twilio_status_callbacks_signed_by_twilio_become_delivered_and_failed_outcomes(
    collector: str, tracked: Settings
):
    user_ok, user_failed = f"u-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    lm = tracking_links(tracked)
    req_ok, req_failed = request(user_ok), request(user_failed)

    async def scenario() -> dict[str, int]:
        async with TwilioServer(auth_token=TWILIO_TOKEN) as twilio:
            sms = TwilioSmsChannel(
                account_sid=twilio.account_sid,
                auth_token=TWILIO_TOKEN,
                base_url=twilio.base_url,
                from_number="+15005550006",
            )
            sids = []
            for req, number in ((req_ok, "+4915112345678"), (req_failed, "+4915112345679")):
                callback = lm.status_callback(req, Channel.sms)
                assert callback is not None
                message = Message(
                    intervention_id=req.intervention_id,
                    user_id=req.user_id,
                    channel=Channel.sms,
                    to=number,
                    parts={"body": "Hi"},
                    data={"status_callback": callback},
                )
                sids.append((await sms.send(message)).provider_id)
            await sms.aclose()
            answers = {
                "sent": (await twilio.report_status(sids[0], "sent")).status_code,
                "delivered": (await twilio.report_status(sids[0], "delivered")).status_code,
                "undelivered": (await twilio.report_status(sids[1], "undelivered", "30003")).status_code,
                "forged": (await twilio.report_status(sids[1], "delivered", auth_token="not-the-token")).status_code,
            }
            url, _, _ = twilio.callbacks[sids[0]]
            async with httpx.AsyncClient() as client:
                answers["unsigned"] = (await client.post(url, data={"MessageStatus": "delivered"})).status_code
            return answers

    before = hits(collector, "status", "403")
    answers = asyncio.run(scenario())
    assert answers == {"sent": 204, "delivered": 204, "undelivered": 204, "forged": 403, "unsigned": 403}
    assert hits(collector, "status", "403") == before + 2

    (delivered,) = events_of(tracked, user_ok, "notification_delivered")
    assert (
        delivered["payload"]["channel"] == "sms" and delivered["payload"]["intervention_id"] == req_ok.intervention_id
    )
    (outcome,) = outcomes_of(tracked, user_ok, "delivered")
    assert outcome["detail"].startswith("twilio delivered SM")
    (failed,) = outcomes_of(tracked, user_failed, "failed")
    assert failed["intervention_id"] == req_failed.intervention_id and "error 30003" in failed["detail"]
    assert not outcomes_of(tracked, user_failed, "delivered", count=0)  # the forged report changed nothing


def test_a_twilio_callback_with_a_valid_signature_but_a_bad_token_is_400(collector: str, tracked: Settings):
    twilio = TwilioServer(auth_token=TWILIO_TOKEN)
    url = f"{collector}/v1/webhooks/twilio/status/garbage"
    params = {"MessageSid": "SM1", "MessageStatus": "delivered"}
    signed = {"X-Twilio-Signature": twilio.signature(url, params)}
    assert httpx.post(url, data=params, headers=signed).status_code == 400


# -- contacts -------------------------------------------------------------------------------------------------


def test_put_contact_lands_on_the_contacts_topic_in_the_students_partition(collector: str, tracked: Settings):
    user = f"u-{uuid.uuid4().hex[:8]}"
    contact = {"email": "sam@example.org", "email_verified": True, "channel_preferences": ["email", "push"]}
    url = f"{collector}/v1/users/{user}/contact"
    assert httpx.put(url, json=contact).status_code == 401
    assert httpx.put(url, json=contact, headers=WRITE_KEY).status_code == 403
    stored = httpx.put(url, json=contact, headers=SERVER_KEY)
    assert stored.status_code == 200 and stored.json() == {"user_id": user, "stored": True}

    duplicate = httpx.put(url, json={"channel_preferences": ["email", "email"]}, headers=SERVER_KEY)
    assert duplicate.status_code == 400 and "channel_preferences" in duplicate.json()["detail"]
    other = httpx.put(url, json={"user_id": "someone-else"}, headers=SERVER_KEY)
    assert other.status_code == 400 and "is not the path's" in other.json()["detail"]
    assert httpx.put(url, content=b"{nope", headers=SERVER_KEY).status_code == 400

    found = wait_for_messages(tracked, topics(tracked).contacts.name, lambda c: c["user_id"] == user, 1)
    assert len(found) == 1
    partition, value = found[0]
    assert value["email"] == "sam@example.org" and value["channel_preferences"] == ["email", "push"]
    # where the student's intervention requests go (the worker's producer keys them by user id the same way)
    assert partition == key_partition(user.encode(), topics(tracked).interventions.partitions)
    letters = wait_for_messages(tracked, topics(tracked).dead_letters.name, lambda d: d["source"] == "collector", 3)
    reasons = [d["reason"] for _, d in letters]
    assert any("channel_preferences" in r for r in reasons) and any("not valid JSON" in r for r in reasons)


# -- outcomes on to the warehouse -------------------------------------------------------------------------------


def test_tracked_outcomes_reach_clickhouse_through_the_outcomes_sink(collector: str, tracked: Settings):
    user = f"u-{uuid.uuid4().hex[:8]}"
    req = request(user)
    lm = tracking_links(tracked)
    pixel = lm.open_pixel(req, Channel.email)
    assert pixel is not None
    assert httpx.get(pixel).status_code == 200
    assert httpx.get(lm.links(req, Channel.email).action, follow_redirects=False).status_code == 302
    outcomes_of(tracked, user, "clicked")
    run_sinks(tracked, ["outcomes"], idle_exit=2.0)
    rows = connect(tracked).execute(
        f"SELECT outcome, channel FROM {tracked.clickhouse_database}.intervention_outcomes FINAL "
        "WHERE user_id = %(u)s ORDER BY outcome",
        {"u": user},
    )
    assert rows == [("clicked", "email"), ("opened", "email")]


# -- the in-app inbox on a worker -------------------------------------------------------------------------------


def test_the_inbox_through_a_worker_lists_items_and_a_read_is_an_event_and_an_outcome_once(
    tracked: Settings, tmp_path: Path
):
    s = tracked.model_copy(update={"inbox_path": tmp_path / "inbox.sqlite3", "run_dir": tmp_path})
    user = f"u-{uuid.uuid4().hex[:8]}"
    item_id = str(uuid.uuid4())
    store = SqliteInbox.from_settings(s)
    now = datetime.now(UTC)
    store.add(InboxItem(user, item_id, "Keep your streak", "One lesson today", now, "https://app.example/x"))
    store.add(InboxItem(user, "older", "Welcome", "Hi", now - timedelta(hours=1)))
    store.close()
    worker = WorkerProcess(s, free_port(), tmp_path / "worker.log").start()
    try:
        base = f"{worker.url}/v1/users/{user}/inbox"
        assert httpx.get(base, headers=WRITE_KEY).status_code == 403
        listed = httpx.get(base, headers=SERVER_KEY, timeout=10)
        assert listed.status_code == 200, listed.text
        body = listed.json()
        assert body["unread"] == 2 and [i["id"] for i in body["items"]] == [item_id, "older"]
        assert body["items"][0]["action_url"] == "https://app.example/x" and body["items"][0]["read_at"] is None

        read = httpx.post(f"{base}/{item_id}/read?platform=ios", headers=SERVER_KEY, timeout=70)
        assert read.status_code == 200 and read.json() == {"item_id": item_id, "read": True, "newly_read": True}
        again = httpx.post(f"{base}/{item_id}/read", headers=SERVER_KEY, timeout=70)
        assert again.status_code == 200 and again.json()["newly_read"] is False
        assert httpx.post(f"{base}/nope/read", headers=SERVER_KEY, timeout=10).status_code == 404
        assert httpx.post(f"{base}/{item_id}/read?platform=tv", headers=SERVER_KEY).status_code == 400
        after = httpx.get(f"{base}?unread_only=true", headers=SERVER_KEY, timeout=10).json()
        assert after["unread"] == 1 and [i["id"] for i in after["items"]] == ["older"]
    finally:
        worker.stop()

    (opened,) = events_of(s, user, "notification_opened")
    assert opened["platform"] == "ios" and opened["payload"]["channel"] == "in_app"
    assert opened["payload"]["intervention_id"] == item_id
    outcomes = outcomes_of(s, user, "opened")
    assert [(o["intervention_id"], o["channel"]) for o in outcomes] == [(item_id, "in_app")]  # once, not twice
