"""What a tracking hit or a provider report becomes: a ``notification_*`` event and an intervention outcome (pure).

Both carry the same ids: the event's ``notification_id`` is the hash the e-mail channel puts in its Message-ID
(intervention id and channel), its ``intervention_id`` the intervention's. Event ids are derived from the kind and
that hash, so a second open of the same message is the same event: the workers' dedupe ring and the warehouse's
``uniqExact(event_id)`` views count it once, while every hit still lands in ``intervention_outcomes`` with its time
(the effectiveness query counts distinct interventions).

Twilio's status callbacks (``application/x-www-form-urlencoded``) are checked as Twilio documents it: HMAC-SHA1,
keyed with the account's auth token, over the full URL Twilio was given followed by every POST parameter's name
and value sorted by name (a repeated field: each distinct value once, sorted, as Twilio's own validator does),
base64-encoded, compared with ``X-Twilio-Signature`` in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from schemas.events import (
    Channel,
    EventEnvelope,
    NotificationClicked,
    NotificationDelivered,
    NotificationOpened,
    NotificationPayload,
    Platform,
)
from schemas.interventions import InterventionOutcome, OutcomeKind

_EVENTS: dict[OutcomeKind, tuple[type[EventEnvelope], str]] = {
    OutcomeKind.delivered: (NotificationDelivered, "notification_delivered"),
    OutcomeKind.opened: (NotificationOpened, "notification_opened"),
    OutcomeKind.clicked: (NotificationClicked, "notification_clicked"),
}


def notification_id(intervention_id: str, channel: Channel) -> str:
    """32 hex characters naming one intervention's message on one channel (as the e-mail's Message-ID does)."""
    return hashlib.sha256(f"{intervention_id}\x1f{channel.value}".encode()).hexdigest()[:32]


def _payload(nid: str, channel: Channel, intervention_id: str) -> NotificationPayload:
    try:
        return NotificationPayload(notification_id=nid, channel=channel, intervention_id=intervention_id)
    except ValidationError:  # an id the event contract cannot carry (too long): the notification id still names it
        return NotificationPayload(notification_id=nid, channel=channel)


@dataclass(frozen=True, slots=True)
class Report:
    """One thing that became of one message: the event (None for failures: no event type says "failed") and the
    outcome."""

    event: EventEnvelope | None
    outcome: InterventionOutcome


def report(
    kind: OutcomeKind,
    *,
    intervention_id: str,
    user_id: str,
    channel: Channel,
    at: datetime,
    detail: str = "",
    platform: Platform = Platform.web,
) -> Report:
    """The event and outcome for ``kind`` (delivered, opened, clicked; any other kind: the outcome alone)."""
    outcome = InterventionOutcome(
        intervention_id=intervention_id, user_id=user_id, outcome=kind, at=at, channel=channel, detail=detail
    )
    if kind not in _EVENTS:
        return Report(None, outcome)
    model, event_type = _EVENTS[kind]
    nid = notification_id(intervention_id, channel)
    event = model.model_validate(
        {
            "event_id": f"{event_type}-{nid}",
            "user_id": user_id,
            "event_type": event_type,
            "event_time": at,
            "platform": platform,
            "payload": _payload(nid, channel, intervention_id),
        }
    )
    return Report(event, outcome)


# -- Twilio --------------------------------------------------------------------------------------------------


def twilio_signature(url: str, params: Sequence[tuple[str, str]], auth_token: str) -> str:
    """``X-Twilio-Signature`` for a form POST to ``url`` with ``params``."""
    data = url + "".join(name + value for name, value in sorted(set(params)))  # a repeated pair once, as Twilio
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def twilio_signature_valid(url: str, params: Sequence[tuple[str, str]], auth_token: str, presented: str) -> bool:
    return hmac.compare_digest(twilio_signature(url, params, auth_token).encode(), presented.encode())


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What one Twilio message status means here (``kind`` None: nothing to record, e.g. queued or sent)."""

    kind: OutcomeKind | None
    detail: str


def twilio_status(params: Mapping[str, str]) -> StatusReport:
    """Twilio's ``MessageStatus`` as an outcome: delivered; failed and undelivered -> failed with the error code;
    read (channels that report it) -> opened; queued, accepted, sending, sent, scheduled, canceled: nothing (the
    notification service recorded the send when Twilio accepted it)."""
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    sid = params.get("MessageSid") or params.get("SmsSid") or "?"
    if status == "delivered":
        return StatusReport(OutcomeKind.delivered, f"twilio delivered {sid}")
    if status == "read":
        return StatusReport(OutcomeKind.opened, f"twilio read {sid}")
    if status in ("failed", "undelivered"):
        code = params.get("ErrorCode") or "none given"
        return StatusReport(OutcomeKind.failed, f"twilio {status}: error {code} ({sid})")
    return StatusReport(None, f"twilio {status or 'no status'} ({sid})")
