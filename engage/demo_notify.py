"""The demo's delivery half: interventions reaching students, and what came back.

The replayed cohort's decisions go through the real notification service to the local provider stand-ins (SMTP,
FCM, Twilio) and the in-app inbox; the success desk queues the critical tier. Then some students "open" their
e-mail (the tracking pixel, fetched from the collector), click (the signed redirect) and read their in-app
messages (the worker's inbox API), a success-team member claims and resolves an outreach item, and a student
redeems an offer code, so the outcomes flowing back can be shown beside what was sent.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from config.settings import Settings
from deploy.providers.process import standin_settings
from deploy.providers.record import Accepted, read_accepted, read_mail
from engage.simulator import Population
from engage.simulator.contacts import contacts_for
from kafka_io.admin import group_lag
from kafka_io.producer import EventProducer
from notifications.contacts import publish_contacts
from notifications.service import notify_group
from schemas.topics import catalogue
from sinks.clickhouse.client import connect

OPEN_SHARE = 0.35  # of the e-mails delivered, opened (pixel fetched)
CLICK_SHARE = 0.4  # of the opened ones, clicked
READ_SHARE = 0.5  # of the students with in-app messages, reading them
_PIXEL = re.compile(r'<img[^>]+src="([^"]*/t/o/[^"]+)"')
_CLICK = re.compile(r'href="([^"]*/t/c/[^"]+)"')
_CODE = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}\b")


def delivery_settings(settings: Settings) -> Settings:
    """Every process of the demo gets these: channels pointed at the stand-ins, and the replay clock (the cohort's
    decisions carry the event clock's time: each is judged at its own instant, as the worker judges events)."""
    return standin_settings(settings).model_copy(update={"notify_clock": "request"})


def publish_demo_contacts(settings: Settings, students: int, seed: int) -> int:
    population = Population.generate(students, seed=seed)
    contacts = contacts_for(list(population.students), seed, datetime.now(UTC))
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    producer = EventProducer(settings.kafka, topics, source="demo-contacts")
    try:
        missing = publish_contacts(producer, topics.contacts.name, contacts)
    finally:
        producer.close()
    if missing:
        raise RuntimeError(f"{missing} of {len(contacts)} contacts not acknowledged by Kafka")
    return len(contacts)


def wait_for_notify(settings: Settings, timeout: float = 120.0) -> None:
    """Until the notification service has handled every request (its group has no lag), and a moment for the sends
    that were due at once."""
    topic = catalogue(settings.topic_prefix, settings.event_partitions).interventions.name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if group_lag(settings.kafka, notify_group(settings), topic) == 0:
            time.sleep(3.0)
            return
        time.sleep(1.0)
    raise RuntimeError(f"the notification service still had requests to handle after {timeout:.0f} s")


@dataclass
class Engagement:
    """What the demo's students did with their messages (each through the real endpoint)."""

    opened: int = 0
    clicked: int = 0
    inbox_read: int = 0
    answers: Counter[int] = field(default_factory=Counter)
    outreach: list[str] = field(default_factory=list)
    offer: list[str] = field(default_factory=list)


def engage_with_messages(settings: Settings, record_dir: Path, worker_url: str, seed: int = 2026) -> Engagement:
    """Opens and clicks on delivered e-mails, in-app reads, through the collector's tracking and the worker's API."""
    rng = random.Random(seed)
    done = Engagement()
    key = settings.server_keys[0].partition(":")[2]
    headers = {"Authorization": f"Bearer {key}"}
    emails = [a for a in read_accepted(record_dir) if a.provider == "smtp"]
    with httpx.Client(timeout=10.0, follow_redirects=False) as http:
        for accepted in emails:
            if rng.random() >= OPEN_SHARE:
                continue
            html = _html(read_mail(record_dir, accepted.id))
            if (pixel := _PIXEL.search(html)) is None:
                continue
            done.answers[http.get(_unescape(pixel.group(1))).status_code] += 1
            done.opened += 1
            if rng.random() < CLICK_SHARE and (link := _CLICK.search(html)) is not None:
                done.answers[http.get(_unescape(link.group(1))).status_code] += 1
                done.clicked += 1
        users = sorted({a.to.split("@")[0] for a in emails} | _inbox_users(settings))
        for user in users:
            if rng.random() >= READ_SHARE:
                continue
            inbox = http.get(f"{worker_url}/v1/users/{user}/inbox", headers=headers)
            if inbox.status_code != 200:
                continue
            for item in inbox.json().get("items", []):
                if item.get("read_at") is None:
                    answer = http.post(f"{worker_url}/v1/users/{user}/inbox/{item['id']}/read", headers=headers)
                    done.answers[answer.status_code] += 1
                    done.inbox_read += answer.status_code == 200
    return done


def work_the_desk(settings: Settings, record_dir: Path, done: Engagement) -> None:
    """A success-team member claims and resolves the most urgent outreach item; a student redeems an offer code."""
    key = settings.server_keys[0].partition(":")[2]
    desk = f"http://127.0.0.1:{settings.desk_port}"
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(timeout=10.0) as http:
        items = http.get(f"{desk}/v1/outreach", params={"state": "open"}, headers=headers).json().get("items", [])
        if items:
            item = items[0]
            claim = http.post(
                f"{desk}/v1/outreach/{item['intervention_id']}/claim", json={"owner": "maria"}, headers=headers
            )
            again = http.post(
                f"{desk}/v1/outreach/{item['intervention_id']}/claim", json={"owner": "tom"}, headers=headers
            )
            resolve = http.post(
                f"{desk}/v1/outreach/{item['intervention_id']}/resolve",
                json={"owner": "maria", "outcome": "reached_returning", "note": "called; new study plan"},
                headers=headers,
            )
            done.outreach = [
                f"claim by maria -> {claim.status_code}",
                f"claim by tom -> {again.status_code} ({_detail(again)})",
                f"resolve by maria -> {resolve.status_code} (state {_field(resolve, 'state')}, "
                f"outcome {_field(resolve, 'resolution')})",
            ]
        for accepted in read_accepted(record_dir):
            if accepted.provider != "smtp" or "offer" not in (accepted.subject or "").lower():
                continue
            mail = read_mail(record_dir, accepted.id)
            if (code := _CODE.search(_text(mail))) is None:
                continue
            user = accepted.to.split("@")[0]
            first = http.post(f"{desk}/v1/offers/{code.group(0)}/redeem", json={"user_id": user}, headers=headers)
            second = http.post(f"{desk}/v1/offers/{code.group(0)}/redeem", json={"user_id": user}, headers=headers)
            done.offer = [
                f"{user} redeems {code.group(0)} -> {first.status_code}",
                f"the same code again -> {second.status_code} ({_detail(second)})",
            ]
            break


def show_notifications(settings: Settings, console: Console, record_dir: Path, done: Engagement) -> None:
    db = settings.clickhouse_database
    client = connect(settings)
    rows = client.execute(
        f"SELECT outcome, channel, uniqExact(intervention_id) FROM {db}.intervention_outcomes FINAL "
        "GROUP BY outcome, channel ORDER BY outcome, channel"
    )
    channels = ["email", "push", "sms", "in_app", ""]
    outcomes: dict[str, Counter[str]] = {}
    for outcome, channel, n in rows:
        outcomes.setdefault(outcome, Counter())[channel] += n
    table = Table(title="Interventions by outcome and channel (ClickHouse intervention_outcomes)", title_justify="left")
    table.add_column("outcome")
    for c in channels:
        table.add_column(c or "(none)", justify="right")
    order = ["sent", "delivered", "opened", "clicked", "digested", "held_out", "queued", "offer_issued",
             "claimed", "resolved", "offer_redeemed", "failed", "dead_lettered"]  # fmt: skip
    for outcome in sorted(outcomes, key=lambda o: order.index(o) if o in order else len(order)):
        counts = outcomes[outcome]
        table.add_row(outcome, *(f"{counts[c]:,}" if counts[c] else "" for c in channels))
    console.print(table)

    reasons = client.execute(
        f"SELECT detail, count() AS n FROM {db}.intervention_outcomes FINAL WHERE outcome = 'dead_lettered' "
        "GROUP BY detail ORDER BY n DESC LIMIT 4"
    )
    if reasons:
        console.print("[bold]Why some were not delivered (dead letters, with the reason):[/bold]")
        for detail, n in reasons:
            console.print(f"  {n:>4} x {detail[:150]}")

    accepted = read_accepted(record_dir)
    by_provider = Counter(a.provider for a in accepted)
    console.print(
        "Providers accepted: "
        + ", ".join(f"{p} {n:,}" for p, n in sorted(by_provider.items()))
        + f"  (record: {record_dir})"
    )
    _show_emails(console, record_dir, [a for a in accepted if a.provider == "smtp"])
    console.print(
        f"Students engaged: {done.opened} e-mails opened (pixel), {done.clicked} links clicked (signed redirect), "
        f"{done.inbox_read} in-app messages read; answers {dict(sorted(done.answers.items()))}"
    )
    for line in done.outreach:
        console.print(f"  outreach queue: {line}")
    for line in done.offer:
        console.print(f"  offer: {line}")
    _show_response_time(settings, console, accepted)


def _show_emails(console: Console, record_dir: Path, emails: list[Accepted]) -> None:
    for accepted in emails[:2]:
        mail = read_mail(record_dir, accepted.id)
        text = _text(mail).strip().splitlines()
        console.print(
            Panel(
                "\n".join(
                    [
                        f"To: {mail['To']}   Subject: {mail['Subject']}",
                        f"List-Unsubscribe: {str(mail['List-Unsubscribe'])[:110]}",
                        f"Parts: {', '.join(p.get_content_type() for p in mail.walk() if not p.is_multipart())}",
                        "",
                        *text[:9],
                    ]
                ),
                title="An e-mail as the SMTP server received it",
                title_align="left",
            )
        )


def _show_response_time(settings: Settings, console: Console, accepted: list[Accepted]) -> None:
    """Event received by the engine (the triggering risk update's ``received_at``) -> provider accepted, wall clock,
    for the interventions a provider accepted (e-mail and push carry their intervention id)."""
    db = settings.clickhouse_database
    received = dict(
        connect(settings).execute(
            f"SELECT r.intervention_id, u.received_at FROM "
            f"(SELECT intervention_id, user_id, triggered_by_event_time FROM {db}.intervention_requests FINAL) AS r "
            f"ANY INNER JOIN (SELECT user_id, triggered_by_event_time, max(received_at) AS received_at "
            f"FROM {db}.risk_updates FINAL GROUP BY user_id, triggered_by_event_time) AS u "
            "USING (user_id, triggered_by_event_time)"
        )
    )
    seconds = sorted(
        (a.accepted_at - received[a.intervention_id].replace(tzinfo=UTC)).total_seconds()
        for a in accepted
        if a.intervention_id in received and received[a.intervention_id].year > 1970
    )
    if not seconds:
        console.print("Response time: no provider-accepted intervention could be matched to its triggering event")
        return
    p50 = statistics.median(seconds)
    p99 = seconds[min(len(seconds) - 1, int(0.99 * len(seconds)))]
    console.print(
        f"[bold]Response time[/bold], event received -> provider accepted ({len(seconds):,} sends triggered by an "
        f"event; the others by a student's silence; whole seconds): "
        f"p50 {p50:.1f} s, p99 {p99:.1f} s, max {seconds[-1]:.1f} s (the seed's aim: < 5 minutes)"
    )


def _inbox_users(settings: Settings) -> set[str]:
    db = settings.clickhouse_database
    rows = connect(settings).execute(
        f"SELECT DISTINCT user_id FROM {db}.intervention_outcomes FINAL WHERE outcome = 'sent' AND channel = 'in_app'"
    )
    return {r[0] for r in rows}


def _html(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    return str(part.get_content()) if part is not None else ""


def _text(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    return str(part.get_content()) if part is not None else ""


def _unescape(url: str) -> str:
    return url.replace("&amp;", "&")


def _field(response: httpx.Response, name: str) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return "?"
    return str(body.get(name, "?")) if isinstance(body, dict) else "?"


def _detail(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:80]
    return str(body.get("detail") or body.get("error") or body)[:100] if isinstance(body, dict) else str(body)[:100]
