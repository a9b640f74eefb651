"""Pure helpers of ``engage bench notify`` (no I/O): the bench's policy, live events made from simulator events,
contacts, the spread of a set of durations, delivery rates and the split of a response time."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engage.bench.report import percentile
from schemas.contacts import Contact, PushToken
from schemas.events import Channel


def bench_policy(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The policy document with every decision a ``send`` now: no quiet hours, no send-time optimisation (both
    would defer), nobody held out. Everything else (tiers, channels, caps, cooldowns) is the document's."""
    out = copy.deepcopy(dict(doc))
    out["quiet_hours"] = None
    out["send_time_tiers"] = []
    out["holdout_share"] = 0.0
    return out


def fresh_students(events: Sequence[Mapping[str, Any]], slice_events: int) -> list[dict[str, Any]]:
    """The events with each student renamed per slice of ``slice_events`` events (``sim-000187`` in the third slice
    becomes ``sim-000187-s2``, event ids alike): new students keep arriving through the whole run, so first scores
    (the ones that decide interventions) are spread over it instead of all falling in its first seconds."""
    if slice_events < 1:
        raise ValueError(f"slice_events must be at least 1, not {slice_events}")
    out = []
    for i, e in enumerate(events):
        tag = f"-s{i // slice_events}"
        out.append({**e, "user_id": f"{e['user_id']}{tag}", "event_id": f"{e['event_id']}{tag}"})
    return out


def live(events: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """The events as happening ``now`` (event_time rewritten, in UTC): what an app sends as it happens."""
    stamp = now.astimezone(UTC).isoformat()
    return [{**e, "event_time": stamp} for e in events]


def due(rate: float, elapsed: float) -> int:
    """Events that should have been offered ``elapsed`` seconds into a run at ``rate`` events/s."""
    return max(0, math.floor(rate * elapsed))


def bench_contact(user_id: str, channel: Channel | None = None, *, push_every: int = 3, index: int = 0) -> Contact:
    """A contact whose first choice is ``channel`` (only that address, and only that channel preferred) or, with
    ``channel`` None, a verified e-mail for everyone and a device for every ``push_every``-th student, who prefer
    push, then e-mail, then the in-app inbox (so the tiers' sends go to the providers, not only to the inbox)."""
    token = PushToken(
        token=f"bench-token-{user_id}", platform="android", registered_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    if channel is None:
        tokens = [token] if push_every and index % push_every == 0 else []
        return Contact(
            user_id=user_id,
            email=f"{user_id}@school.example",
            email_verified=True,
            push_tokens=tokens,
            channel_preferences=[Channel.push, Channel.email, Channel.in_app],
        )
    addresses: dict[Channel, dict[str, Any]] = {
        Channel.email: {"email": f"{user_id}@school.example", "email_verified": True},
        Channel.push: {"push_tokens": [token]},
        Channel.sms: {"phone": f"+1555{index % 10_000_000:07d}"},
        Channel.in_app: {},
    }
    address = addresses[channel]
    return Contact(user_id=user_id, channel_preferences=[channel], **address)


@dataclass(frozen=True, slots=True)
class Spread:
    """Count and percentiles of some durations (seconds)."""

    n: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(
            len(values),
            percentile(values, 0.5),
            percentile(values, 0.95),
            percentile(values, 0.99),
            max(values) if values else float("nan"),
        )

    def line(self, unit: float = 1.0, suffix: str = "s") -> str:
        return (
            f"n={self.n:,} p50 {self.p50 * unit:.2f} {suffix}, p95 {self.p95 * unit:.2f} {suffix}, "
            f"p99 {self.p99 * unit:.2f} {suffix}, max {self.max * unit:.2f} {suffix}"
        )


def delivery_rate(times: Sequence[datetime]) -> float:
    """Deliveries per second from the first delivery to the last (``n - 1`` intervals over the span); NaN for
    fewer than two or a zero span."""
    if len(times) < 2:
        return float("nan")
    span = (max(times) - min(times)).total_seconds()
    return (len(times) - 1) / span if span > 0 else float("nan")


@dataclass(frozen=True, slots=True)
class Response:
    """One ``send`` request's way: event -> decision (the worker) -> provider accepted (the notifier)."""

    intervention_id: str
    total: float
    to_decision: float
    to_accepted: float


def responses(requests: Mapping[str, Mapping[str, Any]], sent_at: Mapping[str, datetime]) -> list[Response]:
    """For each request (intervention id -> the request as JSON) with ``status`` send that was sent: its times.
    A request without a send (queued for a human, dead-lettered) has no response time and is left out."""
    out = []
    for iid, request in requests.items():
        at = sent_at.get(iid)
        if request.get("status") != "send" or at is None:
            continue
        event = _instant(request["triggered_by_event_time"])
        decided = _instant(request["created_at"])
        out.append(
            Response(
                iid, (at - event).total_seconds(), (decided - event).total_seconds(), (at - decided).total_seconds()
            )
        )
    return out


def _instant(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)
