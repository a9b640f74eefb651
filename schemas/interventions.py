"""Intervention contracts: what the policy decided (``InterventionRequest``) and what became of it (outcomes).

One ``InterventionRequest`` goes on the interventions topic per policy decision that is not simply suppressed:
``status="send"`` (act now), ``"deferred"`` (act at ``send_after``, the end of the student's quiet hours) or
``"held_out"`` (the student is in the control group: nothing is sent, but the would-be intervention is recorded
so that effectiveness can be measured as uplift against it). Capped, cooling-down and unneeded decisions only
count in metrics.

Intervention types per tier (PRODUCT.md §5): critical -> human_outreach (a queue for the success team) and
discount_offer; high -> personalised_content and streak_warning; medium -> achievement_notification and
peer_comparison; low -> gentle_reminder and milestone_celebration; minimal -> none.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.columns import NOT_WAREHOUSED
from schemas.events import Channel
from schemas.signals import RiskFactor, SignalSnapshot, Tier

INTERVENTION_SCHEMA_VERSION: Literal[1] = 1


class InterventionType(StrEnum):
    human_outreach = "human_outreach"
    discount_offer = "discount_offer"
    personalised_content = "personalised_content"
    streak_warning = "streak_warning"
    achievement_notification = "achievement_notification"
    peer_comparison = "peer_comparison"
    gentle_reminder = "gentle_reminder"
    milestone_celebration = "milestone_celebration"


RequestStatus = Literal["send", "held_out", "deferred"]


ChosenBy = Literal["policy", "experiment", "bandit"]


class InterventionRequest(BaseModel):
    """One decided intervention for one student, with the reason in words and a deadline to act by."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = INTERVENTION_SCHEMA_VERSION
    intervention_id: str = Field(min_length=1, description="deterministic: the same decision replayed has the same id")
    user_id: str = Field(min_length=1)
    created_at: AwareDatetime = Field(description="when the policy decided")
    status: RequestStatus
    send_after: AwareDatetime | None = Field(
        None, description="deferred: not before this instant (end of quiet hours); held_out: when it would have gone"
    )
    tier: Tier
    intervention_type: InterventionType
    channels: list[Channel] = Field(default_factory=list, description="preference order")
    reason: str = Field(description="why, in words, from the top risk factors")
    deadline: AwareDatetime = Field(description="act by then (send, or a success-team member reaches out)")
    risk_7d: float = Field(ge=0, le=100)
    confidence: float = Field(1.0, ge=0, le=1)
    model_version: str
    triggered_by_event_time: AwareDatetime = Field(description="event time of the update that led to this decision")
    # What the notification service renders the message from (the student as the worker saw them when it decided:
    # streak, progress, reasons). Not warehoused: risk_updates already holds the same snapshot, per re-score.
    signals: SignalSnapshot | None = Field(
        None, description="the student's signals at the decision", json_schema_extra=NOT_WAREHOUSED
    )
    factors: list[RiskFactor] = Field(
        default_factory=list, description="the top risk factors, largest first", json_schema_extra=NOT_WAREHOUSED
    )
    timezone: str | None = Field(None, description="the student's IANA zone as the worker knows it")
    locale: str | None = Field(None, description="the student's locale as the worker knows it (BCP 47)")
    # How the intervention type (and send time) were chosen: the policy's first allowed type, an experiment's
    # variant, or the bandit; ``arms`` names each experiment that shaped this request and its variant.
    chosen_by: ChosenBy = Field("policy", description="what picked the intervention type: policy, experiment, bandit")
    arms: dict[str, str] = Field(
        default_factory=dict, description="experiment key -> variant id, for each experiment that shaped the request"
    )

    @model_validator(mode="after")
    def _send_after_matches_status(self) -> InterventionRequest:
        if self.status == "deferred" and self.send_after is None:
            raise ValueError("a deferred request needs send_after")
        if self.status == "send" and self.send_after is not None:
            raise ValueError("a request to send now cannot carry send_after; use status 'deferred'")
        return self


#: "Returned within 7 days": the student is active again within this many seconds after an intervention went.
RETURN_WINDOW_SECONDS = 7 * 86_400.0


class OutcomeKind(StrEnum):
    sent = "sent"
    delivered = "delivered"
    opened = "opened"
    clicked = "clicked"
    failed = "failed"
    returned_within_7d = "returned_within_7d"  # the student was active again within 7 days (treated or held out)
    not_returned_within_7d = "not_returned_within_7d"
    held_out = "held_out"  # the control group: recorded by the notification service, nothing sent
    digested = "digested"  # merged into another intervention's digest message (``detail`` names it)
    dead_lettered = "dead_lettered"  # no channel delivered after the last attempt; ``detail`` is the reason
    queued = "queued"  # a human outreach item entered the success team's queue
    claimed = "claimed"  # a success-team member took the item
    resolved = "resolved"  # the outreach ended; ``detail`` is its outcome
    offer_issued = "offer_issued"  # a discount code was minted for the offer
    offer_redeemed = "offer_redeemed"


class InterventionOutcome(BaseModel):
    """What happened to one intervention; held-out ones get the return outcomes too, which is what uplift needs."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = INTERVENTION_SCHEMA_VERSION
    intervention_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    outcome: OutcomeKind
    at: AwareDatetime
    channel: Channel | None = None
    detail: str = ""
