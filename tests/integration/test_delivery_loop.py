"""The whole loop on real servers: a student's events -> the worker's decision -> `engage notify` -> an e-mail the SMTP
server received -> the student opens and clicks it through the collector -> `notification_opened|clicked` events on
the events topic, folded by the worker, and `opened|clicked` outcomes - the path PRODUCT.md section 5 promises."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings
from deploy.infra import Infra
from deploy.process import free_port
from engage.simulator import Population, iter_event_days, last_finished_day
from engage.traffic import _client_batches
from kafka_io.producer import EventProducer
from notifications.tracking.keys import tracking_links
from schemas.topics import catalogue
from tests.integration.helpers import running_collector
from tests.integration.notify_helpers import (
    Providers,
    by_intervention,
    email_contact,
    notify_settings,
    outcomes,
    produce,
    service_thread,
    wait_for,
)
from tests.integration.workers import SERVER_KEY, WorkerProcess

pytestmark = pytest.mark.integration

PIXEL = re.compile(r'<img[^>]+src="([^"]*/t/o/[^"]+)"')
CLICK = re.compile(r'href="([^"]*/t/c/[^"]+)"')


def _student_events(days: int = 10) -> tuple[str, list[dict[str, Any]]]:
    population = Population.generate(5, seed=11, start=last_finished_day() - timedelta(days=days - 1))
    events = [e for _, day in iter_event_days(population, days) for e in day]
    user = max({e["user_id"] for e in events}, key=lambda u: sum(e["user_id"] == u for e in events))
    return user, [e for e in events if e["user_id"] == user]


def test_an_event_becomes_an_email_whose_open_and_click_come_back_as_events_and_outcomes(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    # Every tier reachable by e-mail (with a type that has an e-mail template), whatever tier the model gives.
    policy = json.loads((PROJECT_ROOT / "deploy" / "policy" / "default.json").read_text())
    for tier in policy["tiers"].values():
        tier["channels"] = ["email"]
        tier["intervention_types"] = ["personalised_content"] if tier["intervention_types"] else []
    policy_path = tmp_path / "policy.json"
    policy_path.write_text(json.dumps(policy))
    with Providers() as providers:
        s = notify_settings(
            settings,
            tmp_path,
            providers,
            collector_port=free_port(),
            tracking_secret=SecretStr("a-test-secret-of-enough-bytes"),
            broker_session_timeout_seconds=6.0,
            score_debounce_seconds=0.2,
            policy_path=policy_path,
        )
        user, events = _student_events()
        produce(s, contacts=[email_contact(user)])
        with EventProducer(s.kafka, catalogue(s.topic_prefix, s.event_partitions)) as producer:
            for batch in _client_batches(events, 50):
                producer.send(batch)
            assert producer.flush(60) == 0
        worker = WorkerProcess(s, free_port(), tmp_path / "worker.log").start()
        try:

            def folded() -> dict[str, Any] | None:
                answer = worker.engagement(user, SERVER_KEY)
                return answer.json() if answer.status_code == 200 else None

            engagement = wait_for("the worker to fold the student's events", folded, timeout=90)
            assert engagement["user_id"] == user
            # The decision: the worker's manual trigger makes the same request a policy decision makes (signals,
            # factors, zone, locale from the record), sent now.
            trigger = httpx.post(
                f"{worker.url}/v1/users/{user}/interventions",
                json={"intervention_type": "personalised_content", "reason": "the loop test"},
                headers=SERVER_KEY,
                timeout=30,
            )
            assert trigger.status_code in (200, 201), trigger.text
            intervention = trigger.json()["intervention"]["intervention_id"]
            with running_collector(s), service_thread(s, links=tracking_links(s)):
                mail = wait_for("the e-mail", lambda: next(iter(providers.smtp.received), None), timeout=60)
                message = mail.parsed()
                assert message["X-Engage-Intervention"] == intervention and message["To"] == f"{user}@school.example"
                body = message.get_body(("html",))
                assert body is not None
                html = str(body.get_content())
                pixel, click = PIXEL.search(html), CLICK.search(html)
                assert pixel is not None and click is not None, html
                assert user not in pixel.group(1) + click.group(1)  # no student id in a tracking URL in clear
                opened = httpx.get(pixel.group(1).replace("&amp;", "&"), timeout=10)
                clicked = httpx.get(click.group(1).replace("&amp;", "&"), follow_redirects=False, timeout=10)
                assert opened.status_code == 200 and opened.headers["content-type"] == "image/gif"
                assert clicked.status_code == 302 and clicked.headers["location"].startswith("https://")

                def outcome_kinds() -> set[str] | None:
                    kinds = {o["outcome"] for o in by_intervention(outcomes(s)).get(intervention, [])}
                    return kinds if {"sent", "opened", "clicked"} <= kinds else None

                kinds = wait_for("sent, opened and clicked outcomes", outcome_kinds, timeout=60)
                assert "dead_lettered" not in kinds
            # The open is an event of the student, folded by the worker like any other (a 30-day signal).
            before = engagement["signals"]["notifications_opened_30d"]

            def opened_signal() -> int | None:
                now = worker.engagement(user, SERVER_KEY).json()["signals"]["notifications_opened_30d"]
                return now if now > before else None

            assert wait_for("the worker to fold the open", opened_signal, timeout=60) == before + 1
        finally:
            worker.stop()
