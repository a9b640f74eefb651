"""Risk updates: the scorer's output topic, one message per (debounced) re-score of one student."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.signals import RiskFactor, SignalSnapshot, Tier

Trigger = Literal["events", "silence", "manual"]


class RiskUpdate(BaseModel):
    """A student's drop-off risk at ``as_of`` (event time), why, and the signals it was computed from."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    update_id: str = Field(description="f'{user_id}:{score_seq}': unique per re-score of a user, stable in replays")
    user_id: str
    scored_at: AwareDatetime = Field(description="wall-clock time the worker scored")
    as_of: AwareDatetime = Field(description="event time the score describes")
    trigger: Trigger
    triggered_by_event_time: AwareDatetime | None = Field(None, description="the newest event behind this update")
    received_at: AwareDatetime | None = Field(None, description="when the engine received that event (for latency)")
    risk_7d: float = Field(ge=0, le=100)
    risk_30d: float = Field(ge=0, le=100)
    tier: Tier
    previous_tier: Tier | None = None
    confidence: float = Field(ge=0, le=1)
    factors: list[RiskFactor]
    model_version: str
    signals: SignalSnapshot
