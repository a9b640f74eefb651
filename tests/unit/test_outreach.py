"""The outreach queue's rules: one owner, owner-only resolve and release, forced take-over, notes, SLA."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from processors.outreach import (
    AlreadyClaimed,
    AlreadyResolved,
    InvalidInput,
    NotClaimed,
    NotOwner,
    OutreachState,
    Resolution,
    add_note,
    claim,
    item_for,
    release,
    resolution,
    resolve,
)
from schemas.interventions import InterventionRequest, InterventionType

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)
MIN = timedelta(minutes=1)


def request(status: str = "send", kind: InterventionType = InterventionType.human_outreach) -> InterventionRequest:
    return InterventionRequest(
        intervention_id="i-1",
        user_id="u-1",
        created_at=T0,
        status=status,
        send_after=T0 if status != "send" else None,
        tier="critical",
        intervention_type=kind,
        reason="No login for 9 days",
        deadline=T0 + timedelta(hours=4),
        risk_7d=88.0,
        model_version="heuristic-1",
        triggered_by_event_time=T0,
    )


def test_a_request_becomes_an_open_item_due_at_its_deadline() -> None:
    item = item_for(request(), T0 + MIN)
    assert item.state == OutreachState.open
    assert (item.user_id, item.queued_at, item.due_at) == ("u-1", T0 + MIN, T0 + timedelta(hours=4))
    assert item_for(request("deferred"), T0).state == OutreachState.open


def test_held_out_and_other_types_are_not_queued() -> None:
    with pytest.raises(InvalidInput, match="held out"):
        item_for(request("held_out"), T0)
    with pytest.raises(InvalidInput, match="is a discount_offer, not a human_outreach"):
        item_for(request(kind=InterventionType.discount_offer), T0)


def test_claim_then_resolve_by_the_owner() -> None:
    item = claim(item_for(request(), T0), "ana", T0 + MIN)
    assert (item.state, item.owner, item.claimed_at) == (OutreachState.claimed, "ana", T0 + MIN)
    done = resolve(item, "ana", Resolution.reached_returning, T0 + 31 * MIN, note="she will be back Monday")
    assert done.state == OutreachState.resolved
    assert done.resolution == Resolution.reached_returning
    assert done.claim_to_resolve() == 30 * MIN
    assert done.resolved_in_sla() is True
    assert [n.text for n in done.notes] == ["she will be back Monday"]


def test_a_second_claimer_is_refused_naming_the_owner() -> None:
    item = claim(item_for(request(), T0), "ana", T0)
    with pytest.raises(AlreadyClaimed, match="claimed by ana"):
        claim(item, "ben", T0 + MIN)
    assert claim(item, "ana", T0 + MIN) is item  # a retried claim by the owner changes nothing


def test_force_takes_over_with_a_reason_kept_as_a_note() -> None:
    item = claim(item_for(request(), T0), "ana", T0)
    with pytest.raises(InvalidInput, match="reason for taking over is empty"):
        claim(item, "ben", T0 + MIN, force_reason="  ")
    taken = claim(item, "ben", T0 + MIN, force_reason="ana is off sick")
    assert (taken.owner, taken.claimed_at) == ("ben", T0 + MIN)
    assert taken.notes[-1].text == "took over from ana: ana is off sick"


def test_release_only_by_the_owner_and_then_anyone_may_claim() -> None:
    item = claim(item_for(request(), T0), "ana", T0)
    with pytest.raises(NotOwner, match="claimed by ana, not ben"):
        release(item, "ben", T0)
    free = release(item, "ana", T0 + MIN)
    assert (free.state, free.owner, free.claimed_at) == (OutreachState.open, None, None)
    with pytest.raises(NotClaimed):
        release(free, "ana", T0 + MIN)
    assert claim(free, "ben", T0 + 2 * MIN).owner == "ben"


def test_resolve_needs_a_claim_by_the_resolver_and_happens_once() -> None:
    item = item_for(request(), T0)
    with pytest.raises(NotClaimed, match="claim it before resolving"):
        resolve(item, "ana", Resolution.no_answer, T0)
    claimed = claim(item, "ana", T0)
    with pytest.raises(NotOwner):
        resolve(claimed, "ben", Resolution.no_answer, T0)
    done = resolve(claimed, "ana", Resolution.no_answer, T0)
    with pytest.raises(AlreadyResolved):
        resolve(done, "ana", Resolution.left_message, T0)
    with pytest.raises(AlreadyResolved):
        claim(done, "ben", T0)


def test_notes_in_any_state_but_never_empty_or_anonymous() -> None:
    item = item_for(request(), T0)
    noted = add_note(item, "ben", "tried the phone, busy", T0)
    done = resolve(claim(noted, "ana", T0), "ana", Resolution.left_message, T0)
    after = add_note(done, "ana", "she wrote back", T0 + MIN)
    assert [n.author for n in after.notes] == ["ben", "ana"]
    with pytest.raises(InvalidInput, match="note is empty"):
        add_note(item, "ben", "   ", T0)
    with pytest.raises(InvalidInput, match="author is required"):
        add_note(item, "", "x", T0)
    with pytest.raises(InvalidInput, match="longer than 4000"):
        add_note(item, "ben", "x" * 4_001, T0)


def test_overdue_is_open_or_claimed_past_the_deadline() -> None:
    item = item_for(request(), T0)
    due = item.due_at
    assert not item.overdue(due)
    assert item.overdue(due + MIN)
    assert claim(item, "ana", T0).overdue(due + MIN)
    late = resolve(claim(item, "ana", T0), "ana", Resolution.no_answer, due + MIN)
    assert not late.overdue(due + 2 * MIN)
    assert late.resolved_in_sla() is False


def test_resolution_names_the_allowed_outcomes() -> None:
    assert resolution("no_answer") == Resolution.no_answer
    with pytest.raises(InvalidInput, match="outcome must be one of reached_returning, "):
        resolution("sorted")
