"""Deterministic assignment of students to experiment variants: GrowthBook's hashing algorithm, reproduced.

The bucketing is the GrowthBook SDK's, function for function (``tests/unit/test_experiment_assignment.py`` checks
the SDK's published test vectors, its ``cases.json``):

- ``gb_hash(seed, value, 2)`` = ``fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000``: FNV-1a 32-bit, hashed
  twice (version 2 fixed version 1's correlation between experiments whose keys differ by a suffix); a bucket in
  [0, 1) in steps of 0.0001. Version 1, ``fnv1a32(value + seed) % 1000 / 1000``, is kept for namespaces.
- ``bucket_ranges(n, coverage, weights)``: variant i owns ``[w_0 + ... + w_{i-1}, that + coverage * w_i)``, so
  raising coverage only adds students and never moves one between variants.
- ``choose_variation(bucket, ranges)``: the range the bucket falls in, -1 for none (outside the coverage).
- ``in_namespace(user, (id, start, end))``: ``gb_hash("__" + id, user, 1)`` in ``[start, end)``.

Why the algorithm and not the ``growthbook`` package: the package evaluates whole feature definitions (targeting
conditions, sticky buckets, remote fetching, tracking callbacks) that this engine does not use, and would be a
runtime dependency of the worker and the notification service for a hash of a few lines. Our own rules sit on
top of the hash and are not the SDK's:

- **Global holdout**: ``gb_hash(holdout salt, user, 2) < share`` puts a student outside every experiment (and the
  bandit). Its own salt makes it independent of every experiment's buckets, so it stays the same share of each.
- **Layers**: experiments on one surface are declared in one layer (a GrowthBook namespace), each owning a disjoint
  range of the layer's hash, so a student is in at most one of them (``processors.experiments.config`` refuses
  two running experiments on a surface that no layer keeps apart).
- **Variant**: ``gb_hash(experiment key, user id, 2)`` against the experiment's ranges: the same student gets the
  same variant on every process, every day, with no state, as long as the key and the weights are unchanged.

Pure: no clock, no I/O. ``exposure`` builds the message a service sends when it acts on a variant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from processors.experiments.config import Experiment, ExperimentsConfig, Holdout, Variant
from schemas.experiments import Exposure, Surface, exposure_id

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_UINT32 = 2**32


def fnv1a32(text: str) -> int:
    """FNV-1a 32-bit over the string's code points (as the GrowthBook Python SDK does)."""
    h = _FNV_OFFSET
    for ch in text:
        h = ((h ^ ord(ch)) * _FNV_PRIME) % _UINT32
    return h


def gb_hash(seed: str, value: str, version: int = 2) -> float | None:
    """GrowthBook's bucket in [0, 1); None for an unknown hash version (as the SDK answers)."""
    if version == 2:
        return (fnv1a32(str(fnv1a32(seed + value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32(value + seed) % 1000) / 1000
    return None


def equal_weights(n: int) -> list[float]:
    return [1 / n] * n if n >= 1 else []


def bucket_ranges(n: int, coverage: float = 1.0, weights: Sequence[float] | None = None) -> list[tuple[float, float]]:
    """The SDK's ``getBucketRanges``: coverage clamped to [0, 1]; weights that do not fit fall back to equal ones.

    (Configuration refuses weights that do not sum to 1, so the fallback is only the SDK's behaviour kept.)"""
    coverage = min(1.0, max(0.0, coverage))
    w = list(weights) if weights is not None else equal_weights(n)
    if len(w) != n or not 0.99 <= sum(w) <= 1.01:
        w = equal_weights(n)
    ranges = []
    cumulative = 0.0
    for weight in w:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def in_range(n: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= n < bounds[1]


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    for i, bounds in enumerate(ranges):
        if in_range(n, bounds):
            return i
    return -1


def in_namespace(user_id: str, namespace: tuple[str, float, float]) -> bool:
    n = gb_hash("__" + namespace[0], user_id, 1)
    return n is not None and namespace[1] <= n < namespace[2]


def in_holdout(holdout: Holdout, user_id: str) -> bool:
    """True when the student is in the global holdout: no experiment, and no bandit, touches them."""
    n = gb_hash(holdout.salt, user_id, 2)
    return n is not None and n < holdout.share


class Reason(StrEnum):
    assigned = "assigned"
    holdout = "holdout"  # in the global holdout
    not_running = "not_running"  # the experiment is a draft or stopped
    other_tier = "other_tier"  # the experiment is for other tiers
    outside_layer = "outside_layer"  # the layer gave this student to another experiment (or to none)
    outside_coverage = "outside_coverage"  # in the experiment's layer slot, beyond its coverage


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: Experiment
    user_id: str
    reason: Reason
    variant: Variant | None = None  # set exactly when reason is ``assigned``
    bucket: float | None = None  # the variant hash, when it was computed


def assign(experiment: Experiment, user_id: str, holdout: Holdout, tier: str | None = None) -> Assignment:
    """This student's variant of ``experiment`` (or why none): holdout first, then status, tier, layer, coverage."""
    if in_holdout(holdout, user_id):
        return Assignment(experiment, user_id, Reason.holdout)
    if experiment.status != "running":
        return Assignment(experiment, user_id, Reason.not_running)
    if tier is not None and experiment.tiers and tier not in experiment.tiers:
        return Assignment(experiment, user_id, Reason.other_tier)
    layer = experiment.layer
    if layer is not None and not in_namespace(user_id, (layer.id, layer.start, layer.end)):
        return Assignment(experiment, user_id, Reason.outside_layer)
    bucket = gb_hash(experiment.key, user_id, 2)
    assert bucket is not None  # version 2 always hashes
    ranges = bucket_ranges(len(experiment.variants), experiment.coverage, [v.weight for v in experiment.variants])
    index = choose_variation(bucket, ranges)
    if index < 0:
        return Assignment(experiment, user_id, Reason.outside_coverage, bucket=bucket)
    return Assignment(experiment, user_id, Reason.assigned, experiment.variants[index], bucket)


def assign_surface(
    config: ExperimentsConfig, surface: Surface, user_id: str, tier: str | None = None
) -> Assignment | None:
    """The student's assignment on ``surface``: the running experiment whose layer slot holds them, assigned.

    Configuration guarantees at most one running experiment on a surface can hold a student; None when none
    applies (no running experiment on the surface for this tier, or the layer gave the student to none). A
    student in the holdout gets an Assignment with reason ``holdout`` and no variant: the caller does what it
    does without experiments, and records no exposure."""
    for experiment in config.running(surface):
        assignment = assign(experiment, user_id, config.holdout, tier)
        if assignment.reason in (Reason.assigned, Reason.holdout, Reason.outside_coverage):
            return assignment
    return None


def exposure(
    assignment: Assignment,
    at: datetime,
    intervention_id: str = "",
    context: Mapping[str, str] | None = None,
) -> Exposure:
    """The message a service sends when it acts on an assigned variant; refuses an assignment with no variant."""
    variant = assignment.variant
    if variant is None:
        raise ValueError(
            f"no exposure for {assignment.user_id!r} in experiment {assignment.experiment.key!r}: "
            f"not assigned ({assignment.reason.value})"
        )
    experiment = assignment.experiment
    return Exposure(
        exposure_id=exposure_id(experiment.key, assignment.user_id, variant.id),
        experiment=experiment.key,
        variant=variant.id,
        user_id=assignment.user_id,
        at=at,
        surface=experiment.surface,
        layer=experiment.layer.id if experiment.layer else "",
        intervention_id=intervention_id,
        context=dict(context or {}),
    )
