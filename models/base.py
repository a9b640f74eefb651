"""The one interface every risk model implements, so the scorer can swap the heuristic for LightGBM unchanged.

A model is pure: a snapshot in, an assessment out, no I/O. ``score_many`` exists because a trained model is
much cheaper per row on a micro-batch (one predict call) than row by row; the scorer always calls it with
the snapshots of one Kafka poll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from schemas.signals import RiskAssessment, SignalSnapshot


@runtime_checkable
class RiskModel(Protocol):
    """Drop-off risk for the next 7 and 30 days, with confidence, tier and the factors behind it."""

    name: str
    version: str  # written into every RiskAssessment.model_version, so each score is traceable to a model

    def score(self, snapshot: SignalSnapshot) -> RiskAssessment: ...

    def score_many(self, snapshots: Sequence[SignalSnapshot]) -> list[RiskAssessment]:
        """Same answers as ``[score(s) for s in snapshots]``, in the same order."""
        ...
