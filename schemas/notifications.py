"""The notification service's send ledger: what became of each intervention request, per channel, kept on a
compacted topic (``notification_ledger``) so that a re-delivered or re-emitted request sends nothing twice and a
deferred request survives a restart.

One entry per (intervention, channel) - ``ledger_key`` - holding its newest state; entries about the request as a
whole (scheduled, held out, merged into a digest, dead-lettered, queued for the success team, and "sent" once a
channel delivered it, which replaces the scheduled entry so compaction drops the request it carried) carry no
channel. A request is handled once any of its entries is in a ``FINAL_STATES`` state.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Channel
from schemas.interventions import InterventionRequest

LedgerState = Literal["scheduled", "sent", "held_out", "digested", "dead_lettered", "queued"]
FINAL_STATES: frozenset[LedgerState] = frozenset({"sent", "held_out", "digested", "dead_lettered", "queued"})


def ledger_key(intervention_id: str, channel: Channel | None) -> str:
    """The compaction key: one newest state per intervention and channel (``-`` for the request as a whole)."""
    return f"{intervention_id}|{channel.value if channel is not None else '-'}"


class LedgerEntry(BaseModel):
    """The newest state of one intervention on one channel (or of the request as a whole)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    ledger_key: str = Field(min_length=1)
    intervention_id: str = Field(min_length=1)
    user_id: str = Field(min_length=1)
    state: LedgerState
    at: AwareDatetime = Field(description="when this state was reached (wall clock of the notification service)")
    channel: Channel | None = None
    provider: str = ""
    provider_message_id: str = Field("", description="the provider's id for the accepted message, when it gives one")
    detail: str = Field("", description="the reason of a dead letter, the digest an item went into, ...")
    request: InterventionRequest | None = Field(
        None, description="scheduled: the request itself, so a restart re-schedules it without re-reading its topic"
    )
    due_at: AwareDatetime | None = Field(
        None, description="scheduled: when to send (send_after, or later when the student's 24 h cap was full)"
    )
