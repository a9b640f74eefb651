"""Streak milestones: the message contract of the streak-milestones topic (PRODUCT.md §3).

A milestone is emitted once per streak run when the run reaches 7, 14, 30, 100 or 365 active days, counted in
the student's own time zone. ``milestone_id`` is deterministic (user, first day of the run, milestone), so a
replay of the same events produces the same id and consumers (gamification, notifications) can drop repeats.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import SCHEMA_VERSION, Identifier

STREAK_MILESTONES: Final[tuple[int, ...]] = (7, 14, 30, 100, 365)


def milestone_id(user_id: str, run_start: date, milestone_days: int) -> str:
    """The idempotency key of a milestone: one per (user, streak run, milestone)."""
    return f"{user_id}:{run_start.isoformat()}:{milestone_days}"


class StreakMilestone(BaseModel):
    """A student's streak run reached ``milestone_days`` active days on ``reached_on`` (their local date)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    milestone_id: str = Field(description="f'{user_id}:{run_start}:{milestone_days}', stable under replays")
    user_id: Identifier
    milestone_days: int = Field(description="one of 7, 14, 30, 100, 365")
    streak_days: int = Field(description="active days in the run as known when emitted (>= milestone_days)")
    run_start: date = Field(description="the student's local date the run began")
    reached_on: date = Field(description="the student's local date the run reached milestone_days")
    timezone: str = Field(description="the zone the local dates are in (IANA name, or a fixed offset fallback)")
    event_time: AwareDatetime = Field(description="event time of the event that completed the milestone")
