"""What the notification service does with an intervention request: pure rules, no I/O, no clock of its own.

``decide(request, entries)`` - given the send ledger's entries for the request (``schemas.notifications``):

- any entry in a final state (sent, held out, digested, dead-lettered, queued) -> ``Skip``: a re-delivered or
  re-emitted request sends nothing twice; a scheduled one is left to its schedule (``Skip`` too);
- ``held_out`` -> ``Record(held_out)``: the control group, recorded and never sent;
- ``human_outreach`` -> ``Record(queued)``: nothing is sent; the success desk reads the interventions topic itself
  and owns the queue, the ledger only says the request is handled here;
- ``deferred`` -> ``Schedule(send_after)``: the ledger keeps the request, so a restart re-schedules it;
- ``send`` -> ``SendNow``.

Throttling. The policy's caps and cooldowns (``processors.policy``: per day, per week, per type) are applied by the
worker before a request exists; one request is delivered on at most one channel (``routing.deliver_first`` stops
at the first delivery). On top, ``cap_verdict`` is a safety net across requests: at most ``cap`` delivered
notifications per student in any rolling 24 h. Over it, the request waits for the instant the oldest of those
sends leaves the window (``Schedule``) when that is before its deadline, and is dropped with a record otherwise
(``Drop``: a dead letter whose reason says so): a message past its deadline is not worth a student's attention
(the deadline is "act by then"), and holding it longer would only pile up more for the next day.

Digests. ``plan_due`` takes the scheduled requests (deferred, or held back by the cap) and the instant now, and
returns what is due: a due request of tier low or medium takes every other scheduled low/medium request of the
same student due within ``window`` of it into ONE message, of which it is the carrier (the highest tier, then the
highest risk, then the earliest decided); the others are recorded as ``digested`` into it.

``changed_contact`` folds a contact change (unsubscribes, retired push tokens) into a contact.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.contacts import Contact
from schemas.events import Channel
from schemas.interventions import InterventionRequest, InterventionType, OutcomeKind
from schemas.notifications import FINAL_STATES, LedgerEntry, LedgerState
from schemas.signals import Tier

DIGESTIBLE_TIERS: frozenset[Tier] = frozenset({"low", "medium"})
CAP_WINDOW = timedelta(hours=24)
_TIER_RANK: dict[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1, "minimal": 0}


# -- one request ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    """Already handled (or already scheduled): nothing to do, nothing to write."""

    reason: str


@dataclass(frozen=True, slots=True)
class Record:
    """Handled without sending: write this state to the ledger and this outcome."""

    state: LedgerState  # held_out or queued
    outcome: OutcomeKind


@dataclass(frozen=True, slots=True)
class Schedule:
    """Send at ``due_at``; the ledger keeps the request meanwhile."""

    due_at: datetime
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SendNow:
    pass


@dataclass(frozen=True, slots=True)
class Drop:
    """Never sent: a dead letter with ``reason`` (the cap held it past its deadline)."""

    reason: str


Action = Skip | Record | Schedule | SendNow


def decide(request: InterventionRequest, entries: Iterable[LedgerEntry]) -> Action:
    """What to do with ``request`` given its ledger entries (see the module docstring)."""
    states = {e.state for e in entries}
    final = sorted(states & FINAL_STATES)
    if final:
        return Skip(f"already {', '.join(final)}")
    if "scheduled" in states:
        return Skip("already scheduled")
    if request.status == "held_out":
        return Record("held_out", OutcomeKind.held_out)
    if request.intervention_type is InterventionType.human_outreach:
        return Record("queued", OutcomeKind.queued)
    if request.status == "deferred":
        assert request.send_after is not None  # the contract's validator
        return Schedule(request.send_after, "deferred")
    return SendNow()


def judged_at(request: InterventionRequest, due_at: datetime | None) -> datetime:
    """The request's own "now" in a replay of history (``notify_clock=request``): the instant it came due by its own
    clock - when it was decided, or its ``send_after``, or later if it was scheduled again (the cap). Deadlines and
    the 24 h cap are then judged in the replay's time, as they would have been live."""
    own = request.send_after or request.created_at
    return max(own, due_at) if due_at is not None else own


def missed_deadline(request: InterventionRequest, now: datetime) -> str | None:
    """The dead letter's reason when a request comes due after its deadline (None: still in time)."""
    if now <= request.deadline:
        return None
    late = now - request.deadline
    return (
        f"intervention {request.intervention_id} came due {late.total_seconds():.0f} s after its deadline "
        f"{request.deadline.isoformat()}: not sent"
    )


# -- the per-student cap ------------------------------------------------------------------------------------------


def cap_verdict(
    request: InterventionRequest, sent_at: Sequence[datetime], now: datetime, cap: int
) -> Schedule | Drop | None:
    """None when the student may get one more notification now (``cap`` 0: no cap); otherwise when to send
    (the oldest send in the rolling window leaves it) or why not at all (that is past the deadline)."""
    if cap <= 0:
        return None
    recent = sorted(t for t in sent_at if now - CAP_WINDOW < t <= now)
    if len(recent) < cap:
        return None
    frees_at = recent[len(recent) - cap] + CAP_WINDOW  # then only cap - 1 of these are still in the window
    why = f"{len(recent)} notifications delivered to {request.user_id} in the last 24 h (cap {cap})"
    if frees_at <= request.deadline:
        return Schedule(frees_at, f"capped: {why}")
    return Drop(
        f"intervention {request.intervention_id} not sent: {why}, and the next free slot "
        f"{frees_at.isoformat()} is after its deadline {request.deadline.isoformat()}"
    )


# -- due requests and digests -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scheduled:
    request: InterventionRequest
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Due:
    """One message to send now: ``carrier`` is sent; ``merged`` go in its digest (empty: a plain send)."""

    carrier: InterventionRequest
    merged: tuple[InterventionRequest, ...] = ()
    due_at: datetime | None = None  # when it was scheduled for (None: a request sent as it arrived)

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.carrier.intervention_id, *(r.intervention_id for r in self.merged))


def _carrier_rank(item: Scheduled) -> tuple[int, float, datetime, str]:
    r = item.request
    return (-_TIER_RANK.get(r.tier, 0), -r.risk_7d, r.created_at, r.intervention_id)


def digestible(request: InterventionRequest) -> bool:
    return request.tier in DIGESTIBLE_TIERS and request.intervention_type is not InterventionType.human_outreach


def plan_due(scheduled: Iterable[Scheduled], now: datetime, window: timedelta) -> list[Due]:
    """The messages due at ``now``: each due request alone, or, for low/medium ones, with the student's other
    low/medium requests due within ``window`` of the earliest due one merged into a digest. Each request appears
    in at most one ``Due``; what is not due (and not pulled into a digest) stays scheduled."""
    by_user: dict[str, list[Scheduled]] = {}
    for item in scheduled:
        by_user.setdefault(item.request.user_id, []).append(item)
    out: list[Due] = []
    for items in by_user.values():
        items.sort(key=lambda i: (i.due_at, i.request.intervention_id))
        taken: set[str] = set()
        for item in items:
            if item.due_at > now:
                break
            if item.request.intervention_id in taken:
                continue
            taken.add(item.request.intervention_id)
            if not digestible(item.request):
                out.append(Due(item.request, due_at=item.due_at))
                continue
            group = [item] + [
                other
                for other in items
                if other.request.intervention_id not in taken
                and digestible(other.request)
                and other.due_at <= item.due_at + window
            ]
            taken.update(o.request.intervention_id for o in group)
            group.sort(key=_carrier_rank)
            out.append(Due(group[0].request, tuple(g.request for g in group[1:]), due_at=item.due_at))
    return out


# -- contacts -----------------------------------------------------------------------------------------------------


def changed_contact(contact: Contact, unsubscribe: Collection[Channel], retire_tokens: Collection[str]) -> Contact:
    """``contact`` with the channels unsubscribed and the push tokens removed (the same contact if nothing
    changes, so the caller can tell whether to publish)."""
    new_unsubscribed = contact.unsubscribed | frozenset(unsubscribe)
    tokens = [t for t in contact.push_tokens if t.token not in retire_tokens]
    if new_unsubscribed == contact.unsubscribed and len(tokens) == len(contact.push_tokens):
        return contact
    return contact.model_copy(update={"unsubscribed": new_unsubscribed, "push_tokens": tokens})
