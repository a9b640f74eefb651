"""An experiment's readout: the named query ``experiment_readout`` per variant, then the statistics.

``analyse`` is pure (rows in, ``Readout`` out); ``readout`` runs the query. Per conversion metric and variant: the
rate, the relative lift against the control (the experiment's first variant) with its 95 % interval (delta method
on the log ratio) and the chance to beat the control (exact, Beta(1, 1) priors): ``processors.experiments.stats``.
The sample-ratio check compares the exposed students per variant with the configured weights and flags the
experiment at p < 0.001. Guardrails: the share of students who unsubscribed (a lift above 0 is harm) and messages
sent per student. Counted and shown, never folded into a variant: students exposed to several variants, exposures
of variants the configuration does not declare, and opens or clicks of messages no exposure names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analytics.runner import run
from processors.experiments.config import Experiment
from processors.experiments.stats import Arm, Lift, SampleRatio, chance_to_beat, relative_lift, sample_ratio

SEVERAL = "(several)"
#: metric -> (units column, conversions column, what it says)
METRICS: dict[str, tuple[str, str, str]] = {
    "returned_7d": ("eligible_7d", "returned_7d", "active again within 7 days of the first exposure"),
    "opened": ("exposed", "opened", "opened a message the experiment shaped"),
    "clicked": ("exposed", "clicked", "clicked a message the experiment shaped"),
    "retained_30d": ("eligible_30d", "retained_30d", "active in days 24-30 after the first exposure"),
}
GUARDRAILS: dict[str, tuple[str, str, str]] = {
    "unsubscribed": ("exposed", "unsubscribed", "unsubscribed since the first exposure (higher is worse)"),
}
_COUNTS = (
    "exposed",
    "eligible_7d",
    "returned_7d",
    "opened",
    "clicked",
    "eligible_30d",
    "retained_30d",
    "unsubscribed",
    "notifications_sent",
    "outcomes_without_exposure",
)


@dataclass(frozen=True)
class VariantCounts:
    variant: str
    weight: float
    counts: Mapping[str, int]

    @property
    def exposed(self) -> int:
        return self.counts["exposed"]

    @property
    def messages_per_student(self) -> float:
        return self.counts["notifications_sent"] / self.exposed if self.exposed else math.nan


@dataclass(frozen=True)
class Cell:
    """One metric of one variant: its arm, and against the control its lift and chance to beat it."""

    variant: str
    arm: Arm
    lift: Lift | None  # None for the control
    chance_to_beat: float | None


@dataclass
class Readout:
    experiment: Experiment
    variants: list[VariantCounts]
    cells: dict[str, list[Cell]]
    srm: SampleRatio | None
    several_variants: int = 0
    unknown_variants: dict[str, int] = field(default_factory=dict)
    outcomes_without_exposure: int = 0

    def metric(self, name: str) -> list[Cell]:
        return self.cells[name]

    @property
    def flags(self) -> list[str]:
        """What makes the readout untrustworthy or incomplete, in words (empty: nothing)."""
        out = []
        if self.srm is not None and self.srm.mismatch:
            split = ", ".join(f"{v.variant} {v.exposed}" for v in self.variants)
            out.append(
                f"sample-ratio mismatch: chi-square {self.srm.chi2:.2f}, p = {self.srm.p_value:.2g} < 0.001 "
                f"({split}); do not trust the lifts until the split is explained"
            )
        if self.several_variants:
            out.append(f"{self.several_variants} student(s) exposed to more than one variant: left out")
        for variant, n in sorted(self.unknown_variants.items()):
            out.append(f"{n} student(s) exposed to variant {variant!r}, which the configuration does not declare")
        if self.outcomes_without_exposure:
            out.append(
                f"{self.outcomes_without_exposure} open(s)/click(s) of messages no exposure records (exposures "
                "lost, or messages outside the experiment): counted here, credited to no variant"
            )
        return out


def _cells(variants: Sequence[VariantCounts], units: str, conversions: str) -> list[Cell]:
    arms = [Arm(v.counts[units], v.counts[conversions]) for v in variants]
    control = arms[0]
    out = [Cell(variants[0].variant, control, None, None)]
    for v, arm in zip(variants[1:], arms[1:], strict=True):
        usable = control.n > 0 and arm.n > 0
        out.append(
            Cell(
                v.variant,
                arm,
                relative_lift(control, arm) if usable else None,
                chance_to_beat(control, arm) if usable else None,
            )
        )
    return out


def analyse(rows: Sequence[Mapping[str, Any]], experiment: Experiment) -> Readout:
    """The readout of ``experiment`` from the query's rows (one per variant exposed)."""
    by_variant = {str(r["variant"]): r for r in rows}
    declared = {v.id for v in experiment.variants}
    variants = [
        VariantCounts(v.id, v.weight, {c: int(by_variant[v.id][c]) if v.id in by_variant else 0 for c in _COUNTS})
        for v in experiment.variants
    ]
    cells = {name: _cells(variants, u, c) for name, (u, c, _) in {**METRICS, **GUARDRAILS}.items()}
    weighted = [v for v in variants if v.weight > 0]
    srm = sample_ratio([v.exposed for v in weighted], [v.weight for v in weighted]) if len(weighted) >= 2 else None
    return Readout(
        experiment=experiment,
        variants=variants,
        cells=cells,
        srm=srm,
        several_variants=int(by_variant[SEVERAL]["exposed"]) if SEVERAL in by_variant else 0,
        unknown_variants={k: int(r["exposed"]) for k, r in by_variant.items() if k not in declared | {SEVERAL}},
        outcomes_without_exposure=sum(int(r["outcomes_without_exposure"]) for r in rows),
    )


def readout(client: Any, experiment: Experiment, as_of: str | None = None) -> Readout:
    """Run ``experiment_readout`` (``client`` has the engine's database selected) and analyse it."""
    params = {"experiment": experiment.key, **({"as_of": as_of} if as_of else {})}
    return analyse(run(client, "experiment_readout", params).records(), experiment)
