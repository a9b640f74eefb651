"""How a synthetic student responds to an intervention: known probabilities, by whether its trigger group is
the one they respond to (``Student.responsive_trigger``).

The engine's interventions are not part of the simulated days (those hold the platform's own reminders): a
caller that plays a policy (``engage bench profile``, a bandit's proof) asks here what became of each
intervention it sent, and gets the notification events, carrying the intervention's id, that the notification
service and the app would report, plus, after a click, the short session the student opens from it. Each
answer is drawn from a generator seeded from the student and the intervention id, so it is the same on every
run and does not depend on the order interventions are asked about.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from engage.simulator.behaviour import Event
from engage.simulator.population import CONTENT_FORMATS, Student, derive_seed

OPEN_RATE = {True: 0.6, False: 0.2}  # by whether the group is the student's trigger
CLICK_RATE = {True: 0.6, False: 0.3}  # of the opened ones
SESSION_AFTER_CLICK = 0.8  # a click leads to a short session


def response_rates(student: Student, group: str) -> tuple[float, float]:
    """(P(open), P(click)) of an intervention of ``group`` for ``student``: the truth a learner is scored on."""
    hit = group == student.responsive_trigger
    return OPEN_RATE[hit], OPEN_RATE[hit] * CLICK_RATE[hit]


def _event(student: Student, event_id: str, event_type: str, at: float, payload: dict[str, object]) -> Event:
    device = student.devices[0]
    local = datetime.fromtimestamp(at, UTC).astimezone(ZoneInfo(student.timezone))
    return {
        "event_id": event_id,
        "event_type": event_type,
        "user_id": student.user_id,
        "event_time": local.isoformat(timespec="seconds"),
        "schema_version": 1,
        "platform": device.platform,
        "device": device.as_dict(),
        "app_version": device.app_version,
        "session_id": payload.pop("_session", None),
        "course_id": payload.pop("_course", None),
        "timezone": student.timezone,
        "locale": student.locale,
        "payload": payload,
    }


def respond(student: Student, intervention_id: str, group: str, sent_at: float) -> list[Event]:
    """The events an intervention of ``group`` sent at ``sent_at`` (epoch seconds) leads to, in time order:
    delivered, then opened and clicked as the student's rates say, then a short session after a click."""
    rng = random.Random(derive_seed(student.seed, "intervention", intervention_id))
    open_p, _ = response_rates(student, group)
    hit = group == student.responsive_trigger
    nid = f"{intervention_id}-n"
    base = {"notification_id": nid, "channel": "push", "intervention_id": intervention_id}
    at = sent_at + 5 + rng.random() * 60
    events = [_event(student, f"{nid}-d", "notification_delivered", at, dict(base))]
    if rng.random() >= open_p:
        return events
    at += 60 + rng.random() * 3 * 3600
    events.append(_event(student, f"{nid}-o", "notification_opened", at, dict(base)))
    if rng.random() >= CLICK_RATE[hit]:
        return events
    at += 3 + rng.random() * 30
    events.append(_event(student, f"{nid}-c", "notification_clicked", at, dict(base)))
    if rng.random() >= SESSION_AFTER_CLICK or not student.courses:
        return events
    sid = f"{nid}-s"
    course = student.courses[0]
    fmt = student.preferred_format if rng.random() < 0.65 else rng.choice(CONTENT_FORMATS)
    seconds = float(60 + int(rng.random() * 600))
    at += 5
    events.append(_event(student, f"{sid}0", "session_started", at, {"referrer": "notification", "_session": sid}))
    at += seconds
    view = {
        "content_id": f"{course}-{fmt}-recap",
        "content_format": fmt,
        "seconds_viewed": seconds,
        "completion_pct": 100.0,
        "_session": sid,
        "_course": course,
    }
    events.append(_event(student, f"{sid}1", "content_viewed", at, view))
    at += 10
    events.append(_event(student, f"{sid}2", "session_ended", at, {"duration_seconds": seconds + 10, "_session": sid}))
    return events
