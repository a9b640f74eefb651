"""Experiment messages (PRODUCT.md §6): an ``Exposure`` records that a student met one variant of an experiment.

A service exposes a student when it acts on their assignment: the notification service when it renders a template,
schedules by a send-time strategy or sends an intervention type that an experiment chose; the worker when it
prices XP with an experiment's rules. Exposures, not assignments, are what the readout counts: a student assigned
but never reached did not see the variant.

``exposure_id`` is deterministic, ``{experiment}:{user_id}:{variant}``: every exposure of one student to one variant
shares it, so it names the (student, variant) pair the readout counts once. The table keeps each exposure (its sort
key also holds ``at`` and ``intervention_id``, so a re-delivered message collapses and a second message does not):
the readout needs every message an experiment shaped to attribute opens and clicks.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from schemas.events import Identifier
from schemas.interventions import InterventionType
from schemas.signals import Tier

EXPERIMENTS_SCHEMA_VERSION: Literal[1] = 1
EXPERIMENT_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
VARIANT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class Surface(StrEnum):
    """What an experiment changes; each variant sets the surface's value."""

    template = "template"  # the template set a message is rendered from
    send_time_strategy = "send_time_strategy"  # when a message goes (immediate, sto, cohort_only)
    intervention_type = "intervention_type"  # which intervention a decision sends
    xp_rules = "xp_rules"  # the gamification rules file XP is priced with


def exposure_id(experiment: str, user_id: str, variant: str) -> str:
    return f"{experiment}:{user_id}:{variant}"


class Exposure(BaseModel):
    """One student met one variant of one experiment, at one moment (one message, one XP pricing)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = EXPERIMENTS_SCHEMA_VERSION
    exposure_id: str = Field(description="f'{experiment}:{user_id}:{variant}'")
    experiment: str = Field(pattern=EXPERIMENT_KEY_PATTERN)
    variant: str = Field(pattern=VARIANT_ID_PATTERN)
    user_id: Identifier
    at: AwareDatetime = Field(description="when the service acted on the variant")
    surface: Surface
    layer: str = Field("", description="the layer that keeps it exclusive with experiments on its surface, '' none")
    intervention_id: str = Field("", description="the message it shaped, '' when none (XP rules)")
    context: dict[str, str] = Field(
        default_factory=dict, description="what the service knew when it acted: tier, channel, locale, ..."
    )

    @model_validator(mode="after")
    def _id_matches(self) -> Exposure:
        expected = exposure_id(self.experiment, self.user_id, self.variant)
        if self.exposure_id != expected:
            raise ValueError(f"exposure_id must be {expected!r} (experiment:user_id:variant), got {self.exposure_id!r}")
        return self


class ArmOutcome(BaseModel):
    """What became of one intervention the bandit chose: the student came back within the window, or did not.

    The worker sends one per bandit-chosen intervention when its window closes (``processors.experiments.arms``);
    every worker folds them all into its posteriors (``streams.worker.bandit_learner``). Its id is the
    intervention's: a copy re-sent after a crash is recognised and counted once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = EXPERIMENTS_SCHEMA_VERSION
    intervention_id: str = Field(min_length=1, description="the intervention the bandit chose the type of")
    user_id: Identifier
    arm: InterventionType = Field(description="the intervention type chosen")
    tier: Tier = Field(description="the student's risk tier at the decision: the context")
    profile: str = Field("", max_length=64, description="the profile bucket of the context, '' none")
    success: bool = Field(description="the student was active within the window after the send")
    sent_at: AwareDatetime = Field(description="when the intervention went (or was due to)")
    at: AwareDatetime = Field(description="when the window closed: the return, or the window's end")
