"""The success team's outreach queue: an item's states, who may move it, and its SLA.

Pure: no clock, no I/O. Each transition takes an item and ``now`` and returns the new item, or raises an
``OutreachError`` naming the problem; the store (``desk.store``) writes the result only if nobody changed the
item in between (a version check), so two people claiming at once end with one owner and one clear refusal.

States::

    open --claim(owner)--> claimed --resolve(outcome)--> resolved
      ^                       |
      +------release----------+        notes: in any state, by anyone

A claimed item is refused to a second claimer unless its owner releases it or the claimer takes it over with
``force`` and a reason (someone is ill; the reason is kept as a note). Only the owner resolves, with an outcome
from ``Resolution``. The SLA is the request's deadline: an item still open or claimed past it is overdue.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from schemas.interventions import InterventionOutcome, InterventionRequest, InterventionType, OutcomeKind

MAX_NOTE_CHARS = 4_000
MAX_NAME_CHARS = 120


class OutreachState(StrEnum):
    open = "open"
    claimed = "claimed"
    resolved = "resolved"


class Resolution(StrEnum):
    """How an outreach ended (the ``detail`` of the ``resolved`` outcome; a fixed list so it can be counted)."""

    reached_returning = "reached_returning"  # spoke to the student, who means to come back
    reached_leaving = "reached_leaving"  # spoke to the student, who is leaving anyway
    left_message = "left_message"
    no_answer = "no_answer"
    wrong_contact = "wrong_contact"
    not_needed = "not_needed"  # the student was back before anyone reached out


class OutreachError(ValueError):
    """A transition that may not happen; ``status`` is how the API answers it."""

    status = 409


class InvalidInput(OutreachError):
    status = 400


class AlreadyClaimed(OutreachError):
    pass


class NotClaimed(OutreachError):
    pass


class NotOwner(OutreachError):
    status = 403


class AlreadyResolved(OutreachError):
    pass


@dataclass(frozen=True, slots=True)
class Note:
    at: datetime
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class OutreachItem:
    """One student for the success team to reach, from one ``human_outreach`` request."""

    intervention_id: str
    user_id: str
    tier: str
    reason: str
    risk_7d: float
    queued_at: datetime
    due_at: datetime
    state: OutreachState = OutreachState.open
    owner: str | None = None
    claimed_at: datetime | None = None
    resolved_at: datetime | None = None
    resolution: Resolution | None = None
    notes: tuple[Note, ...] = ()

    def overdue(self, now: datetime) -> bool:
        return self.state != OutreachState.resolved and now > self.due_at

    def resolved_in_sla(self) -> bool | None:
        """None until resolved."""
        return None if self.resolved_at is None else self.resolved_at <= self.due_at

    def claim_to_resolve(self) -> timedelta | None:
        if self.claimed_at is None or self.resolved_at is None:
            return None
        return self.resolved_at - self.claimed_at


def item_for(request: InterventionRequest, now: datetime) -> OutreachItem:
    """A new open item for a human outreach request; due at the request's deadline."""
    if request.intervention_type != InterventionType.human_outreach:
        raise InvalidInput(
            f"intervention {request.intervention_id} is a {request.intervention_type.value}, not a human_outreach"
        )
    if request.status == "held_out":
        raise InvalidInput(f"intervention {request.intervention_id} is held out (the control group): nobody calls")
    return OutreachItem(
        intervention_id=request.intervention_id,
        user_id=request.user_id,
        tier=request.tier,
        reason=request.reason,
        risk_7d=request.risk_7d,
        queued_at=now,
        due_at=request.deadline,
    )


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is required")
    if len(value) > MAX_NAME_CHARS:
        raise InvalidInput(f"{what} is longer than {MAX_NAME_CHARS} characters")
    return value


def _text(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput(f"{what} is empty")
    if len(value) > MAX_NOTE_CHARS:
        raise InvalidInput(f"{what} is longer than {MAX_NOTE_CHARS} characters")
    return value


def claim(item: OutreachItem, owner: str, now: datetime, *, force_reason: str | None = None) -> OutreachItem:
    """``owner`` takes the item. Claiming one's own item again changes nothing (a retried request)."""
    owner = _name(owner, "owner")
    if item.state == OutreachState.resolved:
        raise AlreadyResolved(f"item {item.intervention_id} was resolved ({item.resolution}) by {item.owner}")
    if item.state == OutreachState.claimed:
        if item.owner == owner:
            return item
        if force_reason is None:
            raise AlreadyClaimed(
                f"item {item.intervention_id} is claimed by {item.owner} since {item.claimed_at:%Y-%m-%d %H:%M} UTC;"
                " they may release it, or take it over with force and a reason"
            )
        reason = _text(force_reason, "the reason for taking over")
        note = Note(now, owner, f"took over from {item.owner}: {reason}")
        return replace(item, owner=owner, claimed_at=now, notes=(*item.notes, note))
    return replace(item, state=OutreachState.claimed, owner=owner, claimed_at=now)


def release(item: OutreachItem, owner: str, now: datetime) -> OutreachItem:
    """The owner gives the item back to the queue."""
    owner = _name(owner, "owner")
    if item.state != OutreachState.claimed:
        raise NotClaimed(f"item {item.intervention_id} is {item.state.value}, not claimed: nothing to release")
    if item.owner != owner:
        raise NotOwner(f"item {item.intervention_id} is claimed by {item.owner}, not {owner}")
    note = Note(now, owner, "released")
    return replace(item, state=OutreachState.open, owner=None, claimed_at=None, notes=(*item.notes, note))


def add_note(item: OutreachItem, author: str, text: str, now: datetime) -> OutreachItem:
    """Anyone may add a note, in any state (a resolved item may still get a follow-up)."""
    note = Note(now, _name(author, "author"), _text(text, "the note"))
    return replace(item, notes=(*item.notes, note))


def resolution(value: str) -> Resolution:
    try:
        return Resolution(value)
    except ValueError:
        raise InvalidInput(f"outcome must be one of {', '.join(r.value for r in Resolution)}; got {value!r}") from None


def resolve(item: OutreachItem, owner: str, outcome: Resolution, now: datetime, note: str = "") -> OutreachItem:
    """The owner ends the outreach with an outcome (and optionally a note)."""
    owner = _name(owner, "owner")
    if item.state == OutreachState.resolved:
        raise AlreadyResolved(f"item {item.intervention_id} was already resolved ({item.resolution}) by {item.owner}")
    if item.state != OutreachState.claimed:
        raise NotClaimed(f"item {item.intervention_id} is open: claim it before resolving it")
    if item.owner != owner:
        raise NotOwner(f"item {item.intervention_id} is claimed by {item.owner}, not {owner}")
    notes = (*item.notes, Note(now, owner, _text(note, "the note"))) if note.strip() else item.notes
    return replace(item, state=OutreachState.resolved, resolved_at=now, resolution=outcome, notes=notes)


def queued_outcome(item: OutreachItem) -> InterventionOutcome:
    """What entering the queue reports (at the time it was stored: a replay reports the same row again)."""
    return InterventionOutcome(
        intervention_id=item.intervention_id, user_id=item.user_id, outcome=OutcomeKind.queued, at=item.queued_at
    )


def transition_outcomes(before: OutreachItem, after: OutreachItem) -> list[InterventionOutcome]:
    """The outcomes a transition reports: a (new) claim and a resolution; releases and notes report nothing.

    No staff names: the warehouse learns that and when, not who."""
    out: list[InterventionOutcome] = []
    ids = {"intervention_id": after.intervention_id, "user_id": after.user_id}
    if after.claimed_at is not None and after.claimed_at != before.claimed_at:
        detail = "taken over" if before.state == OutreachState.claimed else ""
        out.append(InterventionOutcome(**ids, outcome=OutcomeKind.claimed, at=after.claimed_at, detail=detail))
    if after.resolved_at is not None and before.resolved_at is None:
        assert after.resolution is not None
        out.append(
            InterventionOutcome(**ids, outcome=OutcomeKind.resolved, at=after.resolved_at, detail=after.resolution)
        )
    return out
