"""The notification service over real Kafka (the session's) and real local providers (SMTP, FCM, Twilio servers):
delivery read back from the SMTP server, idempotence across re-delivery and restarts, deferred sends that survive a
restart, held-out and outreach requests recorded without a send, digests, contact changes, bad input as dead
letters, the ledger's figures, and THE SIGKILL TEST (``engage notify`` killed mid-run: nothing lost, duplicates
bounded by the messages in flight)."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from deploy.process import free_ports
from kafka_io.producer import EventProducer, key_partition
from notifications.ledger import Ledger, Out, Outbox
from notifications.verify import check_sends
from schemas.contacts import ContactChange
from schemas.events import Channel
from schemas.interventions import InterventionType
from schemas.notifications import LedgerEntry, ledger_key
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end
from tests.integration.notify_helpers import (
    Providers,
    all_committed,
    by_intervention,
    dead_letters,
    email_contact,
    ledger,
    make_request,
    notify_settings,
    outcomes,
    partitions_by_key,
    produce,
    service_thread,
    start_subprocess,
    templates_with_sms,
    wait_for,
)

pytestmark = pytest.mark.usefixtures("infra")


def test_a_request_is_delivered_by_email_once_even_when_redelivered_and_after_a_restart(settings, tmp_path):
    with Providers() as providers:
        s = notify_settings(settings, tmp_path, providers)
        request = make_request("iv-email-1", "student-1", channels=[Channel.email, Channel.in_app])
        produce(s, contacts=[email_contact("student-1")], requests=[request])
        with service_thread(s):
            mail = wait_for("the e-mail", lambda: providers.smtp.received[:1])[0].parsed()
            wait_for("the offsets committed", lambda: all_committed(s))
            produce(s, requests=[request])  # re-emitted: the ledger says sent
            wait_for("the re-emitted request handled", lambda: all_committed(s))
        with service_thread(s):  # a restart reads the ledger back
            produce(s, requests=[request])
            wait_for("the request handled after the restart", lambda: all_committed(s))
        assert len(providers.smtp.received) == 1
    assert mail["To"] == "student-1@school.example" and mail["X-Engage-Intervention"] == "iv-email-1"
    assert mail["List-Unsubscribe"] and mail.get_body(("html",)) is not None
    sent = by_intervention(outcomes(s), "sent")["iv-email-1"]
    assert len(sent) == 1 and sent[0]["channel"] == "email" and sent[0]["detail"].startswith("smtp ")
    entries = {e["ledger_key"]: e for e in ledger(s)}
    assert entries[ledger_key("iv-email-1", Channel.email)]["state"] == "sent"


def test_a_students_contact_and_requests_land_on_the_same_partition_number(settings, tmp_path):
    """Both keyed by user id through the repo's producer (murmur2_random): what the service's ownership relies on."""
    with Providers() as providers:
        s = notify_settings(settings, tmp_path, providers)
    users = [f"part-{i}" for i in range(40)]
    produce(s, contacts=[email_contact(u) for u in users], requests=[make_request(f"iv-{u}", u) for u in users])
    topics = catalogue(s.topic_prefix, s.event_partitions)
    landed = {t: partitions_by_key(s.kafka, t) for t in (topics.contacts.name, topics.interventions.name)}
    assert landed[topics.contacts.name] == landed[topics.interventions.name]
    assert landed[topics.contacts.name] == {u: key_partition(u.encode(), s.event_partitions) for u in users}
    assert len(set(landed[topics.contacts.name].values())) == s.event_partitions  # really spread over all of them


def test_a_deferred_request_goes_at_send_after_and_survives_a_restart_in_between(settings, tmp_path):
    with Providers() as providers:
        s = notify_settings(settings, tmp_path, providers)
        produce(s, contacts=[email_contact("student-2", channel_preferences=["email"])])
        with service_thread(s) as service:
            wait_for("the partitions assigned", lambda: len(service.ledger.partitions) == s.event_partitions)
            send_after = datetime.now(UTC) + timedelta(seconds=4)
            request = make_request("iv-deferred", "student-2", status="deferred", send_after=send_after)
            produce(s, requests=[request])
            wait_for("the request scheduled", lambda: all_committed(s))
            entries = {e["ledger_key"]: e for e in ledger(s)}
            assert entries[ledger_key("iv-deferred", None)]["state"] == "scheduled"
            assert not providers.smtp.received
        assert datetime.now(UTC) < send_after, "the test machine was too slow to stop before send_after"
        with service_thread(s):  # re-schedules from the ledger, the request's offset long committed
            wait_for("the deferred e-mail", lambda: providers.smtp.received, timeout=60)
            arrived = datetime.now(UTC)
            wait_for("its ledger entry", lambda: by_intervention(outcomes(s), "sent").get("iv-deferred"))
        assert len(providers.smtp.received) == 1
    assert arrived >= send_after
    assert {e["ledger_key"]: e for e in ledger(s)}[ledger_key("iv-deferred", None)]["state"] == "sent"


def test_held_out_and_outreach_are_recorded_never_sent_and_a_digest_merges_a_slot(settings, tmp_path):
    with Providers() as providers:
        s = notify_settings(settings, tmp_path, providers)
        slot = datetime.now(UTC) + timedelta(seconds=2)
        low = dict(kind=InterventionType.gentle_reminder, tier="low", channels=[Channel.email], status="deferred")
        requests = [
            make_request("iv-held", "student-3", status="held_out"),
            make_request("iv-outreach", "student-3", kind=InterventionType.human_outreach, tier="critical"),
            make_request("iv-low-a", "student-4", send_after=slot, risk_7d=30.0, **low),
            make_request("iv-low-b", "student-4", send_after=slot + timedelta(seconds=1), risk_7d=35.0, **low),
        ]
        produce(s, contacts=[email_contact("student-3"), email_contact("student-4")], requests=requests)
        with service_thread(s):
            wait_for("the digest", lambda: providers.smtp.received)
            # all four final in the ledger: nothing of these can be sent any more
            rows = wait_for("four outcomes", lambda: (o := outcomes(s)) and len(o) >= 4 and o)
        assert len(providers.smtp.received) == 1
    kinds = {r["intervention_id"]: r for r in rows}
    assert kinds["iv-held"]["outcome"] == "held_out" and kinds["iv-outreach"]["outcome"] == "queued"
    assert kinds["iv-low-b"]["outcome"] == "sent"  # the riskier one carries the digest
    assert kinds["iv-low-a"]["outcome"] == "digested" and "iv-low-b" in kinds["iv-low-a"]["detail"]
    text = providers.smtp.received[0].parsed().get_body(("plain",)).get_content()
    assert "Also for you:" in text


def test_bad_input_ends_as_dead_letters_with_reasons_and_the_service_goes_on(settings, tmp_path):
    with Providers() as providers:
        s = notify_settings(settings, tmp_path, providers)
        produce(
            s,
            contacts=[
                email_contact("student-bad-mail", email="not an address"),
                email_contact("student-ok"),
                email_contact("student-no-signals"),
            ],
            requests=[
                make_request("iv-unknown", "nobody-knows-me"),
                make_request("iv-bad-mail", "student-bad-mail", channels=[Channel.email]),
                make_request("iv-no-signals", "student-no-signals", signals=None),
                make_request("iv-offer", "student-ok", kind=InterventionType.discount_offer, tier="critical"),
                b'{"intervention_id": "broken"',
                make_request("iv-fine", "student-ok", channels=[Channel.email]),
            ],
        )
        with service_thread(s):
            wait_for("the good one delivered", lambda: providers.smtp.received)
            letters = wait_for("five dead letters", lambda: (d := dead_letters(s)) and len(d) >= 5 and d)
    reasons = {d.get("event_id") or "unparsed": d["reason"] for d in letters}
    assert reasons["iv-unknown"] == "no contact for user nobody-knows-me"
    assert "invalid e-mail address" in reasons["iv-bad-mail"] and "not an address" not in reasons["iv-bad-mail"]
    assert "iv-bad-mail" in reasons["iv-bad-mail"] and "email via smtp" in reasons["iv-bad-mail"]
    assert "no signal snapshot" in reasons["iv-no-signals"]
    assert "no offer issuer configured" in reasons["iv-offer"]
    assert reasons["unparsed"].startswith("invalid intervention request at ")
    dead = by_intervention(outcomes(s), "dead_lettered")
    assert set(dead) == {"iv-unknown", "iv-bad-mail", "iv-no-signals", "iv-offer"}
    assert by_intervention(outcomes(s), "sent").keys() == {"iv-fine"}


def test_a_contact_change_is_folded_in_published_and_honoured(settings, tmp_path):
    with Providers() as providers:
        s = notify_settings(settings, tmp_path, providers)
        topics = catalogue(s.topic_prefix, s.event_partitions)
        change = ContactChange(
            user_id="student-5", at=datetime.now(UTC), unsubscribe=frozenset({Channel.email}), source="unsubscribe_link"
        )
        produce(
            s,
            contacts=[email_contact("student-5")],
            raw=[(topics.contact_changes.name, b"student-5", change.model_dump_json().encode())],
        )
        with service_thread(s):
            wait_for(
                "the new contact published",
                lambda: [c for c in read_to_end(s.kafka, topics.contacts.name) if c["unsubscribed"]],
            )
            produce(s, requests=[make_request("iv-after-unsub", "student-5", channels=[Channel.email, Channel.in_app])])
            sent = wait_for("the send", lambda: by_intervention(outcomes(s), "sent").get("iv-after-unsub"))
        assert not providers.smtp.received
    assert sent[0]["channel"] == "in_app"


def test_ledger_figures_rebuild_of_100k_entries_and_write_latency(settings, tmp_path):
    """The numbers behind "a compacted topic, not ClickHouse" (printed; not timed assertions)."""
    import asyncio

    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}-ledger"})
    from kafka_io.admin import ensure_topics

    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    request = make_request("iv-template", "student-x", status="deferred", send_after=datetime.now(UTC))
    n = 100_000
    producer = EventProducer(s.kafka, topics, source="test", report_successes=True)
    now = datetime.now(UTC)
    started = time.monotonic()
    for i in range(n):
        iid = f"iv-{i}"
        # a fifth are scheduled entries carrying their request (the heavy ones), the rest sent entries
        entry = LedgerEntry(
            ledger_key=ledger_key(iid, None if i % 5 == 0 else Channel.email),
            intervention_id=iid,
            user_id=f"student-{i % 5000}",
            state="scheduled" if i % 5 == 0 else "sent",
            at=now,
            channel=None if i % 5 == 0 else Channel.email,
            request=request.model_copy(update={"intervention_id": iid}) if i % 5 == 0 else None,
            due_at=now + timedelta(days=1) if i % 5 == 0 else None,
        )
        producer.send_encoded(
            entry.ledger_key.encode(),
            entry.model_dump_json().encode(),
            topic=topics.notification_ledger.name,
            partition=0,
        )
    assert producer.flush(120) == 0 and producer.stats.failed == 0
    produced = time.monotonic() - started
    book = Ledger(s.kafka, topics.notification_ledger.name, Outbox(producer))
    count, seconds = book.load(0)
    assert count == n and len(book) == n and sum(1 for _ in book.scheduled(0)) == n // 5

    async def latencies() -> list[float]:
        out = []
        for i in range(200):
            e = LedgerEntry(ledger_key=f"lat-{i}|email", intervention_id=f"lat-{i}", user_id="u", state="sent", at=now)
            t = time.monotonic()
            await book.outbox.send(
                [Out(topics.notification_ledger.name, e.ledger_key.encode(), e.model_dump_json().encode(), 0)]
            )
            out.append(time.monotonic() - t)
        return sorted(out)

    lat = asyncio.run(latencies())
    producer.close()
    print(
        f"\n[ledger] produced {n:,} entries in {produced:.1f} s; rebuilt one partition of {n:,} entries in "
        f"{seconds:.2f} s ({n / seconds:,.0f} entries/s); write+ack latency p50 {lat[100] * 1000:.1f} ms, "
        f"p99 {lat[197] * 1000:.1f} ms"
    )


def test_sigkill_mid_run_loses_nothing_and_duplicates_at_most_what_was_in_flight(settings, tmp_path):
    """``engage notify`` as a subprocess, SIGKILLed after some of 300 sends (email, SMS, push), restarted: every
    request has exactly one provider-accepted send or a dead letter; duplicates <= messages in flight at the kill."""
    in_flight = 8
    (metrics_port,) = free_ports(1)
    with Providers(delay=0.02) as providers:
        s = notify_settings(
            settings,
            tmp_path,
            providers,
            notify_max_in_flight=in_flight,
            notify_metrics_port=metrics_port,
            notify_templates_dir=templates_with_sms(tmp_path / "templates"),
        )
        channels = [Channel.email, Channel.sms, Channel.push]
        contacts, requests, numbers = [], [], {}
        for i in range(300):
            user, channel = f"kill-{i:03d}", channels[i % 3]
            fields: dict[str, object] = {"channel_preferences": [channel.value]}
            if channel is Channel.sms:
                fields["phone"] = f"+1555{i:07d}"
                numbers[str(fields["phone"])] = f"iv-kill-{i:03d}"
            if channel is Channel.push:
                fields["push_tokens"] = [
                    {"token": f"tok-{i}", "platform": "android", "registered_at": datetime.now(UTC).isoformat()}
                ]
            contacts.append(email_contact(user, **fields))
            requests.append(make_request(f"iv-kill-{i:03d}", user, channels=channels))
        produce(s, contacts=contacts, requests=requests)
        # one dead letter, produced after the kill so that the restarted process is the one that counts it
        bad = requests[7].model_copy(update={"user_id": "kill-unknown", "intervention_id": "iv-kill-unknown"})
        log = tmp_path / "notify.log"
        first = start_subprocess(s, "notify-0", log)
        try:
            wait_for("some sends", lambda: len(providers.accepted(numbers)) >= 60, timeout=120, every=0.005)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            at_kill = len(providers.accepted(numbers))
        finally:
            if first.poll() is None:
                first.kill()
        assert at_kill < len(requests), "everything was sent before the kill: the test proved nothing"
        requests.append(bad)
        produce(s, requests=[bad])
        second = start_subprocess(s, "notify-0", log)
        try:
            wanted = {r.intervention_id for r in requests}

            def handled() -> set[str]:
                return set(by_intervention(outcomes(s), "sent")) | set(by_intervention(outcomes(s), "dead_lettered"))

            try:
                wait_for("every request handled", lambda: wanted <= handled(), timeout=180, every=0.5)
            except AssertionError:
                missing = sorted(wanted - handled())
                sent = providers.accepted(numbers)
                held = {
                    i: [(e["ledger_key"], e["state"]) for e in ledger(s) if e["intervention_id"] == i] for i in missing
                }
                raise AssertionError(
                    f"{len(missing)} requests never handled: {missing[:20]}; providers accepted "
                    f"{ {i: sent.count(i) for i in missing[:20]} }; the ledger holds {held}; the notifier's log ends:\n"
                    + log.read_text()[-4000:]
                ) from None
            wait_for("the offsets committed", lambda: all_committed(s))
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, log.read_text()[-3000:]
        accepted = providers.accepted(numbers)
    letters = [d["event_id"] for d in dead_letters(s) if d.get("event_id")]
    check = check_sends([r.intervention_id for r in requests], accepted, letters)
    print(f"\n[sigkill] {at_kill} sends before the kill; {check.summary()}; in flight at most {in_flight}")
    assert check.ok, check.summary()
    assert check.dead_lettered == ("iv-kill-unknown",)
    assert check.extra_sends <= in_flight, check.duplicated
    assert "Traceback" not in log.read_text()
    for series in (
        'engage_notify_requests_total{channel="push",outcome="sent"}',
        'engage_notify_dead_letters_total{reason="no_contact"} 1.0',
        "engage_notify_ledger_rebuild_seconds_count",
        'engage_notify_response_seconds_count{since="event",status="send"}',
        "engage_notify_scheduled 0.0",
    ):
        assert series in metrics, series


def test_contacts_import_refuses_a_file_naming_the_bad_line_and_publishes_a_good_one(settings, tmp_path):
    import subprocess
    import sys

    from config.settings import PROJECT_ROOT, settings_env

    s = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}-import"})
    topics = catalogue(s.topic_prefix, s.event_partitions)
    from kafka_io.admin import ensure_topics

    ensure_topics(s.kafka, topics.all())
    env = {**os.environ, **settings_env(s), "PYTHONPATH": str(PROJECT_ROOT)}
    bad, good = tmp_path / "bad.jsonl", tmp_path / "good.jsonl"
    bad.write_text('{"user_id": "a", "email": "a@x.org"}\n{"user_id": "b", "unsubscribed": ["fax"]}\n')
    good.write_text("".join(email_contact(f"imp-{i}").model_dump_json() + "\n" for i in range(5)))

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engage.cli", "contacts", "import", str(path)],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    refused = run(bad)
    assert refused.returncode == 1 and "line 2: unsubscribed" in refused.stderr and "nothing imported" in refused.stderr
    assert read_to_end(s.kafka, topics.contacts.name) == []
    imported = run(good)
    assert imported.returncode == 0, imported.stderr
    stored = read_to_end(s.kafka, topics.contacts.name)
    assert sorted(c["user_id"] for c in stored) == [f"imp-{i}" for i in range(5)]


def test_watermarks_are_asked_again_until_the_broker_knows_the_partition(settings, tmp_path):
    # Right after a broker restart a partition can be unknown for a moment; the ledger and contacts reads ask again
    # instead of failing (an error raised in the rebalance callback once left the service hung).
    import threading

    from kafka_io.admin import ensure_topics
    from notifications.ledger import reader, watermarks
    from schemas.topics import TopicSpec

    topic = f"{settings.topic_prefix}-late-{os.getpid()}-{time.monotonic_ns()}"
    consumer = reader(settings.kafka, "watermarks-test")
    creating = threading.Timer(2.0, lambda: ensure_topics(settings.kafka, [TopicSpec(topic, 2)]))
    creating.start()
    try:
        started = time.monotonic()
        assert watermarks(consumer, topic, 1, timeout=30.0) == (0, 0)
        assert time.monotonic() - started >= 1.5  # it waited for the topic rather than answering early
    finally:
        creating.join()
        consumer.close()
