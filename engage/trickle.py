"""`engage trickle`: a steady stream of simulated students' events, stamped with the time they are sent.

The demo's students go on living after the demo: their days after the replayed ones are played ``speed`` times
faster than real time (60: a simulated day every 24 minutes, about 100 events a minute for 400 students), each
event sent through the HTTP collector when its (compressed) moment comes, with ``event_time`` set to that
moment. So the live views (active now, events per minute) move, and risk, streaks and XP keep changing, until
`make down` stops it. Event ids are the simulator's own (a later day never repeats them).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from config.settings import Settings
from engage.simulator import Population, iter_event_days
from engage.traffic import TrafficPlan, _client_batches


def _later_days(plan: TrafficPlan, skip: int) -> Iterator[list[dict[str, Any]]]:
    population = Population.generate(plan.students, seed=plan.seed, start=plan.start)
    # What `skip` days sent, exactly as they were sent (their last batch also held the far-west zones' last
    # evening, which a longer run places in the next UTC day): none of it goes again.
    sent = {e["event_id"] for _, events in iter_event_days(population, skip) for e in events}
    for day, events in iter_event_days(population, skip + 3650):
        if day >= skip:
            yield [e for e in events if e["event_id"] not in sent]


def trickle(settings: Settings, plan: TrafficPlan, speed: float, stop_after: float | None = None) -> int:
    """Send the plan's students' days after ``plan.days``, ``speed`` times faster than real time; returns the
    number of events accepted (when ``stop_after`` seconds pass; otherwise it runs until killed)."""
    url = f"http://{settings.collector_host}:{settings.collector_port}/v1/events"
    key = settings.write_keys[0].partition(":")[2]
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    started = time.monotonic()
    accepted = 0
    with httpx.Client(timeout=30.0) as client:
        for events in _later_days(plan, plan.days):
            if not events:
                continue
            first = datetime.fromisoformat(events[0]["event_time"]).timestamp()
            day_started = time.monotonic()
            due: list[dict[str, Any]] = []
            for event in events:
                offset = (datetime.fromisoformat(event["event_time"]).timestamp() - first) / speed
                wait = day_started + offset - time.monotonic()
                if wait > 0.5 and due:  # flush what is due before sleeping
                    accepted += _send(client, url, headers, due)
                    due = []
                if wait > 0:
                    time.sleep(wait)
                if stop_after is not None and time.monotonic() - started > stop_after:
                    return accepted + _send(client, url, headers, due)
                due.append({**event, "event_time": datetime.now(UTC).isoformat()})
            accepted += _send(client, url, headers, due)
    return accepted


def _send(client: httpx.Client, url: str, headers: dict[str, str], events: list[dict[str, Any]]) -> int:
    accepted = 0
    for batch in _client_batches(events, 100):
        for attempt in range(5):
            try:
                resp = client.post(url, content=orjson.dumps({"events": batch}), headers=headers)
            except httpx.HTTPError:
                resp = None
            if resp is not None and resp.status_code == 200:
                body = resp.json()
                accepted += len(body["accepted"])
                break
            time.sleep(0.2 * 2**attempt)  # the collector is busy or restarting: the batch is safe to resend
    return accepted
