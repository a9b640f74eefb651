"""Celebrations reaching the student's in-app inbox and achievements exported as Open Badges, on real Kafka with a
real `engage worker` (its engagement API serves the inbox and the badges) and the notification service (which
consumes the celebrations topic and writes the inbox)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from config.settings import Settings
from deploy.process import free_port
from kafka_io.producer import EventProducer
from schemas.contacts import Contact
from schemas.events import Channel
from schemas.gamification import Celebration, CelebrationKind
from schemas.topics import catalogue
from tests.integration.notify_helpers import Providers, notify_settings, outcomes, produce, service_thread, wait_for
from tests.integration.workers import SERVER_KEY, WorkerProcess

pytestmark = pytest.mark.usefixtures("infra")

WRITE_KEY = {"Authorization": "Bearer wk_demo_web"}


@pytest.fixture(scope="module")
def running(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, WorkerProcess]]:
    """Fresh topics, one worker and the notification service (in this process), sharing one inbox file."""
    run = tmp_path_factory.mktemp("celebrations")
    with Providers() as providers:
        s = notify_settings(settings, run, providers, score_debounce_seconds=0.2)
        worker = WorkerProcess(s, free_port(), run / "worker.log").start()
        try:
            with service_thread(s):
                yield s, worker
        finally:
            worker.stop()


def celebration(user: str, level: int) -> Celebration:
    return Celebration(
        celebration_id=f"level_up:{user}:level:{level}",
        user_id=user,
        kind=CelebrationKind.level_up,
        source_id=f"{user}:level:{level}",
        title=f"Level {level}!",
        body=f"You reached level {level}. Keep it up.",
        event_time=datetime.now(UTC),
    )


def send_celebrations(s: Settings, *parties: Celebration) -> None:
    topic = catalogue(s.topic_prefix, s.event_partitions).celebrations.name
    produce(s, raw=[(topic, c.user_id.encode(), c.model_dump_json().encode()) for c in parties])


def inbox(worker: WorkerProcess, user: str) -> dict[str, Any]:
    answer = httpx.get(f"{worker.url}/v1/users/{user}/inbox", headers=SERVER_KEY, timeout=10)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("engage_notify_celebrations_total", {"result": result}) or 0.0


def test_a_celebration_reaches_the_inbox_once_even_when_sent_twice(running: tuple[Settings, WorkerProcess]) -> None:
    s, worker = running
    user = f"cel-{uuid.uuid4().hex[:8]}"
    duplicates = counted("duplicate")
    first, marker = celebration(user, 3), celebration(user, 4)
    send_celebrations(s, first)
    shown = wait_for("the celebration in the inbox", lambda: inbox(worker, user)["items"])
    assert [(i["id"], i["title"], i["body"]) for i in shown] == [(first.celebration_id, first.title, first.body)]
    assert shown[0]["data"]["type"] == "celebration" and shown[0]["data"]["kind"] == "level_up"

    # Sent again, then another one for the same student (same key, same partition, handled in order): once the
    # second is in the inbox, the re-sent first has been handled too.
    send_celebrations(s, first, marker)
    after = wait_for("the second celebration", lambda: [i for i in inbox(worker, user)["items"] if "4" in i["title"]])
    items = inbox(worker, user)
    assert sorted(i["id"] for i in items["items"]) == sorted([first.celebration_id, marker.celebration_id])
    assert items["unread"] == 2 and after[0]["id"] == marker.celebration_id
    assert counted("duplicate") == duplicates + 1  # consumed and recognised, not skipped

    # Read: marked read, and no intervention outcome for it (a celebration is not an intervention).
    read = httpx.post(f"{worker.url}/v1/users/{user}/inbox/{first.celebration_id}/read", headers=SERVER_KEY, timeout=30)
    assert read.status_code == 200 and read.json()["newly_read"] is True
    assert inbox(worker, user)["unread"] == 1
    assert not [o for o in outcomes(s) if o["intervention_id"] == first.celebration_id]


def test_a_student_who_turned_in_app_off_gets_no_celebration(running: tuple[Settings, WorkerProcess]) -> None:
    s, worker = running
    quiet, other = f"off-{uuid.uuid4().hex[:8]}", f"on-{uuid.uuid4().hex[:8]}"
    produce(s, contacts=[Contact(user_id=quiet, unsubscribed=frozenset({Channel.in_app}))])
    unsubscribed = counted("unsubscribed")
    send_celebrations(s, celebration(quiet, 2), celebration(other, 2))
    wait_for("the other student's celebration", lambda: inbox(worker, other)["items"])
    wait_for("the unsubscribed student's celebration handled", lambda: counted("unsubscribed") > unsubscribed)
    assert inbox(worker, quiet)["items"] == []


def lesson(user: str, n: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{user}-lesson-{n}",
        "user_id": user,
        "event_type": "lesson_completed",
        "event_time": at.isoformat(),
        "platform": "web",
        "course_id": "course-1",
        "payload": {"lesson_id": f"lesson-{n}", "duration_seconds": 600},
    }


def test_an_unlocked_achievement_is_a_badge_and_a_celebration_in_the_inbox(
    running: tuple[Settings, WorkerProcess], tmp_path: Path
) -> None:
    """End to end: an event -> the worker unlocks 'first-lesson' -> GET /badges exports it, and the worker's own
    celebration goes through the celebrations topic and the notification service into the inbox."""
    s, worker = running
    user = f"badge-{uuid.uuid4().hex[:8]}"
    at = datetime.now(UTC) - timedelta(minutes=5)
    with EventProducer(s.kafka, catalogue(s.topic_prefix, s.event_partitions)) as producer:
        producer.send([lesson(user, 1, at)])
        assert producer.flush(30) == 0

    badges_url = f"{worker.url}/v1/users/{user}/badges"

    def exported() -> dict[str, Any] | None:
        answer = httpx.get(badges_url, headers=SERVER_KEY, timeout=10)
        return answer.json() if answer.status_code == 200 and answer.json()["count"] else None

    body = wait_for("the badge", exported)
    assert body["signed"] is False and "unsigned" in body["note"].lower()
    (cred,) = [c for c in body["credentials"] if c["credentialSubject"]["achievement"]["id"].endswith("/first-lesson")]
    assert cred["type"] == ["VerifiableCredential", "OpenBadgeCredential"] and "proof" not in cred
    assert cred["issuer"] == {"id": s.badges_issuer_id, "type": ["Profile"], "name": s.badges_issuer_name}
    assert datetime.fromisoformat(cred["validFrom"]) == at.replace(microsecond=0)
    assert cred["credentialSubject"]["achievement"]["name"] == "First steps"
    assert user not in str(cred)

    assert httpx.get(badges_url, timeout=10).status_code == 401
    assert httpx.get(badges_url, headers=WRITE_KEY, timeout=10).status_code == 403
    unknown = httpx.get(f"{worker.url}/v1/users/nobody-{uuid.uuid4().hex[:6]}/badges", headers=SERVER_KEY, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"

    def celebrated() -> list[dict[str, Any]]:
        return [i for i in inbox(worker, user)["items"] if i["data"].get("source_id", "").endswith(":first-lesson")]

    (item,) = wait_for("the worker's celebration in the inbox", celebrated)
    assert item["data"]["kind"] == "achievement" and item["title"]
