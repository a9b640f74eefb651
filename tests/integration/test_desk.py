"""The success desk on real Kafka: requests on the interventions topic become queue items and offers, the API
moves them (one owner under racing claimers, single redemption), outcomes reach the outcomes topic, overdue
items show in /metrics, and the `engage desk` commands work against the running desk."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.infra import Infra
from deploy.process import free_port
from desk.runner import Desk, running
from kafka_io.admin import ensure_topics
from kafka_io.client import kafka_conf
from processors.offers import code_for
from schemas.interventions import InterventionRequest, InterventionType
from schemas.topics import TopicCatalogue, catalogue
from tests.integration.helpers import read_to_end

pytestmark = pytest.mark.integration

SERVER_KEY = {"Authorization": "Bearer sk_demo_backend"}
OUTREACH, OFFER = InterventionType.human_outreach, InterventionType.discount_offer


@pytest.fixture(scope="module")
def desk(settings: Settings, infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tag = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "topic_prefix": f"desk-{tag}",
            "desk_port": free_port(),
            "desk_store_path": tmp_path_factory.mktemp("desk") / "desk.sqlite3",
            "offer_code_secret": "integration-secret",
            "offer_valid_days": 14.0,
        }
    )
    s = Settings(**{**s.model_dump(), "offer_code_secret": "integration-secret"})  # a SecretStr, as from the env
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    with running(s) as d:
        yield d


def topics(desk: Desk) -> TopicCatalogue:
    return catalogue(desk.settings.topic_prefix, desk.settings.event_partitions)


def request(
    kind: InterventionType,
    status: str = "send",
    *,
    created: datetime | None = None,
    deadline: datetime | None = None,
    user: str | None = None,
) -> InterventionRequest:
    now = created or datetime.now(UTC)
    return InterventionRequest(
        intervention_id=str(uuid.uuid4()),
        user_id=user or f"student-{uuid.uuid4().hex[:6]}",
        created_at=now,
        status=status,
        send_after=now + timedelta(hours=1) if status != "send" else None,
        tier="critical",
        intervention_type=kind,
        reason="No login for 9 days; streak lost",
        deadline=deadline or now + timedelta(hours=4),
        risk_7d=91.0,
        model_version="heuristic-1",
        triggered_by_event_time=now,
    )


def produce(desk: Desk, *messages: InterventionRequest | bytes) -> None:
    producer = Producer(kafka_conf(desk.settings.kafka))
    for m in messages:
        key, value = (b"junk", m) if isinstance(m, bytes) else (m.user_id.encode(), m.model_dump_json().encode())
        producer.produce(topics(desk).interventions.name, key=key, value=value)
    assert producer.flush(30) == 0


def api(desk: Desk, method: str, path: str, body: dict[str, Any] | None = None, **kw: Any) -> httpx.Response:
    return httpx.request(
        method, f"{desk.url}{path}", json=body, headers=kw.pop("headers", SERVER_KEY), timeout=30, **kw
    )


def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def at_least(n: int, read: Callable[[], list[Any]]) -> Callable[[], list[Any] | None]:
    def check() -> list[Any] | None:
        got = read()
        return got if len(got) >= n else None

    return check


def item_state(desk: Desk, item_id: str) -> dict[str, Any] | None:
    answer = api(desk, "GET", f"/v1/outreach/{item_id}")
    return answer.json() if answer.status_code == 200 else None


def outcomes(desk: Desk, ids: set[str]) -> list[tuple[str, str, str]]:
    rows = read_to_end(desk.settings.kafka, topics(desk).intervention_outcomes.name)
    return sorted((r["intervention_id"], r["outcome"], r["detail"]) for r in rows if r["intervention_id"] in ids)


def metric(desk: Desk, name: str) -> float:
    text = httpx.get(f"{desk.url}/metrics", timeout=10).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_requests_become_queue_items_and_offers_with_their_outcomes(desk: Desk) -> None:
    reach, deferred, held = request(OUTREACH), request(OUTREACH, "deferred"), request(OUTREACH, "held_out")
    offer, held_offer, reminder = request(OFFER), request(OFFER, "held_out"), request(InterventionType.gentle_reminder)
    held_before = metric(desk, 'engage_desk_requests_total{action="held_out"}')
    produce(desk, reach, deferred, held, offer, held_offer, reminder, b'{"not": "a request"}')

    for r in (reach, deferred):
        item = until(f"item {r.intervention_id}", lambda r=r: item_state(desk, r.intervention_id))
        assert (item["state"], item["user_id"], item["overdue"]) == ("open", r.user_id, False)
        assert item["due_at"] == r.deadline.isoformat()
    # the code is the one the notification service computes by itself from the same secret
    code = code_for(offer.intervention_id, desk.settings.offer_secret)
    stored = until("the offer", lambda: (a := api(desk, "GET", f"/v1/offers/{code}")).status_code == 200 and a.json())
    assert (stored["user_id"], stored["percent_off"], stored["redeemed_at"]) == (offer.user_id, 20, None)
    assert stored["expires_at"] == (offer.created_at + timedelta(days=14)).isoformat()

    # the control group gets neither a queue item nor a code; other types are not the desk's
    until("held-out requests counted", lambda: metric(desk, 'engage_desk_requests_total{action="held_out"}')
          >= held_before + 2)  # fmt: skip
    assert item_state(desk, held.intervention_id) is None
    assert (
        api(desk, "GET", f"/v1/offers/{code_for(held_offer.intervention_id, desk.settings.offer_secret)}").status_code
        == 404
    )
    ids = {r.intervention_id for r in (reach, deferred, held, offer, held_offer, reminder)}
    got = until("three outcomes", at_least(3, lambda: outcomes(desk, ids)))
    assert got == sorted(
        [
            (reach.intervention_id, "queued", ""),
            (deferred.intervention_id, "queued", ""),
            (offer.intervention_id, "offer_issued", f"20% off until {stored['expires_at']}"),
        ]
    )
    # the message that was no request is a dead letter naming the problem
    letters = until(
        "the dead letter",
        lambda: [d for d in read_to_end(desk.settings.kafka, topics(desk).dead_letters.name) if d["source"] == "desk"],
    )
    assert letters[0]["reason"].startswith("not an intervention request")
    assert letters[0]["original_topic"] == topics(desk).interventions.name


def test_a_redelivered_request_changes_nothing(desk: Desk) -> None:
    reach = request(OUTREACH)
    produce(desk, reach)
    until("the item", lambda: item_state(desk, reach.intervention_id))
    assert api(desk, "POST", f"/v1/outreach/{reach.intervention_id}/claim", {"owner": "ana"}).status_code == 200
    duplicates = metric(desk, 'engage_desk_requests_total{action="duplicate"}')
    produce(desk, reach, reach)
    until("both re-deliveries consumed",
          lambda: metric(desk, 'engage_desk_requests_total{action="duplicate"}') >= duplicates + 2)  # fmt: skip
    item = item_state(desk, reach.intervention_id)
    assert item is not None and (item["state"], item["owner"]) == ("claimed", "ana")
    listed = api(desk, "GET", "/v1/outreach", params={"state": "all", "limit": "5000"}).json()["items"]
    assert [i["intervention_id"] for i in listed].count(reach.intervention_id) == 1
    got = until("two outcomes", at_least(2, lambda: outcomes(desk, {reach.intervention_id})))
    assert got == [(reach.intervention_id, "claimed", ""), (reach.intervention_id, "queued", "")]


def test_racing_claims_through_the_api_leave_one_owner(desk: Desk) -> None:
    reqs = [request(OUTREACH) for _ in range(10)]
    produce(desk, *reqs)
    for r in reqs:
        until("the items", lambda r=r: item_state(desk, r.intervention_id))
    for r in reqs:
        barrier = threading.Barrier(2)
        answers: dict[str, httpx.Response] = {}

        def claim(
            owner: str,
            r: InterventionRequest = r,
            barrier: threading.Barrier = barrier,
            answers: dict[str, httpx.Response] = answers,
        ) -> None:
            barrier.wait()
            answers[owner] = api(desk, "POST", f"/v1/outreach/{r.intervention_id}/claim", {"owner": owner})

        threads = [threading.Thread(target=claim, args=(o,)) for o in ("ana", "ben")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(a.status_code for a in answers.values())
        assert statuses == [200, 409], statuses
        winner = next(o for o, a in answers.items() if a.status_code == 200)
        loser = next(a for a in answers.values() if a.status_code == 409)
        assert f"claimed by {winner}" in loser.json()["detail"]
        assert item_state(desk, r.intervention_id)["owner"] == winner  # type: ignore[index]


def test_notes_resolve_and_the_resolved_outcome(desk: Desk) -> None:
    reach = request(OUTREACH)
    produce(desk, reach)
    until("the item", lambda: item_state(desk, reach.intervention_id))
    path = f"/v1/outreach/{reach.intervention_id}"
    assert api(desk, "POST", f"{path}/resolve", {"owner": "ana", "outcome": "no_answer"}).status_code == 409
    assert api(desk, "POST", f"{path}/claim", {"owner": "ana"}).status_code == 200
    assert api(desk, "POST", f"{path}/notes", {"author": "ben", "text": "her number is new"}).status_code == 200
    bad = api(desk, "POST", f"{path}/resolve", {"owner": "ana", "outcome": "sorted"})
    assert bad.status_code == 400 and "outcome must be one of" in bad.json()["detail"]
    assert api(desk, "POST", f"{path}/resolve", {"owner": "ben", "outcome": "no_answer"}).status_code == 403
    resolved_before = metric(desk, "engage_outreach_claim_to_resolve_seconds_count")
    done = api(desk, "POST", f"{path}/resolve", {"owner": "ana", "outcome": "reached_returning", "note": "back Monday"})
    assert done.status_code == 200
    body = done.json()
    assert (body["state"], body["resolution"]) == ("resolved", "reached_returning")
    assert [n["text"] for n in body["notes"]] == ["her number is new", "back Monday"]
    assert metric(desk, "engage_outreach_claim_to_resolve_seconds_count") == resolved_before + 1
    got = until("three outcomes", at_least(3, lambda: outcomes(desk, {reach.intervention_id})))
    assert [(o[1], o[2]) for o in got] == [("claimed", ""), ("queued", ""), ("resolved", "reached_returning")]


def test_redeem_once_then_conflict_and_expired_wrong_user_unknown(desk: Desk) -> None:
    offer = request(OFFER)
    old = request(OFFER, created=datetime.now(UTC) - timedelta(days=30))  # 14 days of validity are over
    produce(desk, offer, old)
    code = code_for(offer.intervention_id, desk.settings.offer_secret)
    old_code = code_for(old.intervention_id, desk.settings.offer_secret)
    for c in (code, old_code):
        until(f"offer {c}", lambda c=c: api(desk, "GET", f"/v1/offers/{c}").status_code == 200)
    redeemed_before = metric(desk, "engage_offers_redeemed_total")

    def redeem(c: str, user: str) -> httpx.Response:
        return api(desk, "POST", f"/v1/offers/{c}/redeem", {"user_id": user})

    assert redeem(code, "someone-else").status_code == 403
    typed = code.replace("-", "").lower()  # as a student types it
    first = redeem(typed, offer.user_id)
    assert first.status_code == 200 and first.json()["redeemed_at"]
    assert redeem(code, offer.user_id).status_code == 409
    assert redeem(old_code, old.user_id).status_code == 410
    assert redeem("ZZZZ-ZZZZ-ZZZZ", offer.user_id).status_code == 404
    assert redeem("NOT-A-CODE", offer.user_id).status_code == 400
    assert metric(desk, "engage_offers_redeemed_total") == redeemed_before + 1
    assert metric(desk, 'engage_offer_redemptions_refused_total{reason="already_redeemed"}') >= 1
    got = until("offer outcomes", at_least(2, lambda: outcomes(desk, {offer.intervention_id})))
    assert [o[1] for o in got] == ["offer_issued", "offer_redeemed"]


def test_keys_are_checked(desk: Desk) -> None:
    assert api(desk, "GET", "/v1/outreach", headers={}).status_code == 401
    write_key = {"Authorization": "Bearer wk_demo_web"}
    assert api(desk, "GET", "/v1/outreach", headers=write_key).status_code == 403
    assert api(desk, "POST", "/v1/offers/AAAA-BBBB-CCCC/redeem", {"user_id": "u"}, headers=write_key).status_code == 403


def test_overdue_items_are_counted_in_metrics(desk: Desk) -> None:
    now = datetime.now(UTC)
    late = [request(OUTREACH, created=now - timedelta(hours=6), deadline=now - timedelta(hours=2)) for _ in range(3)]
    produce(desk, *late)
    for r in late:
        until("the late items", lambda r=r: item_state(desk, r.intervention_id))
    overdue = api(desk, "GET", "/v1/outreach", params={"state": "overdue"}).json()["items"]
    assert {r.intervention_id for r in late} <= {i["intervention_id"] for i in overdue}
    assert all(i["overdue"] for i in overdue)
    assert metric(desk, "engage_outreach_overdue_items") == len(overdue) >= 3
    # resolving one takes it off the gauge
    path = f"/v1/outreach/{late[0].intervention_id}"
    assert api(desk, "POST", f"{path}/claim", {"owner": "ana"}).status_code == 200
    assert api(desk, "POST", f"{path}/resolve", {"owner": "ana", "outcome": "left_message"}).status_code == 200
    assert metric(desk, "engage_outreach_overdue_items") == len(overdue) - 1


def _engage(desk: Desk, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(desk.settings), "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "engage.cli", "desk", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_desk_commands_work_against_the_running_desk(desk: Desk) -> None:
    reach, offer = request(OUTREACH), request(OFFER)
    produce(desk, reach, offer)
    until("the item", lambda: item_state(desk, reach.intervention_id))
    listed = _engage(desk, "list", "--state", "open")
    assert listed.returncode == 0, listed.stderr
    assert reach.intervention_id in listed.stdout
    claimed = _engage(desk, "claim", reach.intervention_id, "--owner", "ana")
    assert claimed.returncode == 0 and "claimed ana" in claimed.stdout
    taken = _engage(desk, "claim", reach.intervention_id, "--owner", "ben")
    assert taken.returncode == 1 and "claimed by ana" in taken.stderr
    noted = _engage(desk, "note", reach.intervention_id, "--text", "voicemail", "--author", "ana")
    assert noted.returncode == 0 and "ana: voicemail" in noted.stdout
    done = _engage(desk, "resolve", reach.intervention_id, "--outcome", "left_message", "--owner", "ana")
    assert done.returncode == 0 and "resolved" in done.stdout
    code = code_for(offer.intervention_id, desk.settings.offer_secret)
    until("the offer", lambda: api(desk, "GET", f"/v1/offers/{code}").status_code == 200)
    redeemed = _engage(desk, "redeem", code, "--user", offer.user_id)
    assert redeemed.returncode == 0 and "20% off" in redeemed.stdout
    again = _engage(desk, "redeem", code, "--user", offer.user_id)
    assert again.returncode == 1 and "already_redeemed" in again.stderr
