"""Per-event validation of a client's batch: pure logic, no I/O, so it is unit-tested without servers.

Each event is judged on its own: one bad event never sinks its neighbours. Refused events come back with
a reason for the client and a ``DeadLetter`` (reason + the event's raw JSON) for the dead-letter topic.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.errors import describe, summary
from schemas.events import EVENT_ADAPTER, EVENT_TYPES, BehaviorEvent
from schemas.interventions import InterventionOutcome
from schemas.messages import DeadLetter, FieldError, kept_raw

_EVENT_TYPES = frozenset(EVENT_TYPES)


@dataclass(frozen=True)
class Limits:
    max_events: int = 500
    max_future_skew: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=400)


@dataclass
class Rejection:
    index: int
    reason: str
    errors: list[FieldError]
    event_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "event_id": self.event_id,
            "reason": self.reason,
            "errors": [e.model_dump() for e in self.errors],
        }


@dataclass
class OutcomeVerdict:
    accepted: list[InterventionOutcome] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


@dataclass
class Verdict:
    accepted: list[BehaviorEvent] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


class BatchShapeError(ValueError):
    """The request body as a whole is unusable (not JSON, not a list of events, too many events)."""


def extract_events(body: Any, limits: Limits) -> list[Any]:
    """Accept ``{"events": [...]}`` or a bare ``[...]``; refuse anything else with a clear reason."""
    events = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events, list):
        raise BatchShapeError('body must be a JSON object {"events": [...]} or a JSON array of events')
    if not events:
        raise BatchShapeError("the batch is empty: send at least one event")
    if len(events) > limits.max_events:
        raise BatchShapeError(f"too many events in one batch: {len(events)} (at most {limits.max_events})")
    return events


def extract_outcomes(body: Any, limits: Limits) -> list[Any]:
    """Accept ``{"outcomes": [...]}``; refuse anything else with a clear reason."""
    outcomes = body.get("outcomes") if isinstance(body, dict) else None
    if not isinstance(outcomes, list) or not outcomes:
        raise BatchShapeError('body must be a JSON object {"outcomes": [...]} with at least one outcome')
    if len(outcomes) > limits.max_events:
        raise BatchShapeError(f"too many outcomes in one batch: {len(outcomes)} (at most {limits.max_events})")
    return outcomes


def judge_outcomes(items: list[Any], received_at: datetime, app_id: str, limits: Limits) -> OutcomeVerdict:
    """Validate each intervention outcome on its own (the delivery system reports sent/opened/clicked/...)."""
    verdict = OutcomeVerdict()
    newest = received_at + limits.max_future_skew
    oldest = received_at - limits.max_age
    for index, item in enumerate(items):
        try:
            outcome = InterventionOutcome.model_validate(item)
        except ValidationError as exc:
            errors = describe(exc, _EVENT_TYPES)
            _reject(verdict, index, item, summary(errors), errors, received_at, app_id)
            continue
        if outcome.at > newest:
            msg = f"at {outcome.at.isoformat()} is in the future (more than {limits.max_future_skew} ahead)"
            _reject(verdict, index, item, msg, [FieldError(field="at", message=msg)], received_at, app_id)
            continue
        if outcome.at < oldest:
            msg = f"at {outcome.at.isoformat()} is older than {limits.max_age.days} days"
            _reject(verdict, index, item, msg, [FieldError(field="at", message=msg)], received_at, app_id)
            continue
        verdict.accepted.append(outcome)
    return verdict


def _str_or_none(item: Any, key: str) -> str | None:
    value = item.get(key) if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def judge(events: list[Any], received_at: datetime, app_id: str, limits: Limits) -> Verdict:
    """Validate each event on its own; keep the first of repeated event ids in one batch."""
    verdict = Verdict()
    seen: set[str] = set()
    newest = received_at + limits.max_future_skew
    oldest = received_at - limits.max_age
    for index, item in enumerate(events):
        try:
            event = EVENT_ADAPTER.validate_python(item)
        except ValidationError as exc:
            errors = describe(exc, _EVENT_TYPES)
            _reject(verdict, index, item, summary(errors), errors, received_at, app_id)
            continue
        if event.event_time > newest:
            msg = (
                f"event_time {event.event_time.isoformat()} is in the future (more than {limits.max_future_skew} ahead)"
            )
            _reject(verdict, index, item, msg, [FieldError(field="event_time", message=msg)], received_at, app_id)
            continue
        if event.event_time < oldest:
            msg = f"event_time {event.event_time.isoformat()} is older than {limits.max_age.days} days"
            _reject(verdict, index, item, msg, [FieldError(field="event_time", message=msg)], received_at, app_id)
            continue
        if event.event_id in seen:
            verdict.duplicates.append(event.event_id)
            continue
        seen.add(event.event_id)
        verdict.accepted.append(event)  # received_at is stamped when encoded (no model copy per event)
    return verdict


def _reject(
    verdict: Verdict | OutcomeVerdict,
    index: int,
    item: Any,
    reason: str,
    errors: list[FieldError],
    received_at: datetime,
    app_id: str,
) -> None:
    event_id = _str_or_none(item, "event_id")
    verdict.rejected.append(Rejection(index, reason, errors, event_id))
    try:
        raw = orjson.dumps(item).decode()
    except TypeError:  # nested deeper than orjson writes (255 levels), or not JSON at all (direct callers)
        try:
            raw = repr(item)
        except RecursionError:  # ~1000 levels deep (orjson reads up to 1024)
            raw = f"<a {type(item).__name__} nested too deeply to keep>"
    verdict.dead_letters.append(
        DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=received_at,
            source="collector",
            app_id=app_id,
            reason=reason,
            errors=errors,
            event_id=event_id,
            user_id=_str_or_none(item, "user_id"),
            event_type=_str_or_none(item, "event_type"),
            raw=kept_raw(raw),
        )
    )
