"""Assignment: GrowthBook's published test vectors (its SDK's cases.json), then our holdout and layer rules."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from processors.experiments.assignment import (
    Reason,
    assign,
    assign_surface,
    bucket_ranges,
    choose_variation,
    equal_weights,
    exposure,
    gb_hash,
    in_holdout,
    in_namespace,
)
from processors.experiments.config import Experiment, ExperimentsConfig, Holdout, LayerSlot, Variant
from schemas.experiments import Exposure, Surface

# GrowthBook SDK cases.json, "hash": [seed, value, version, expected]
HASH_CASES = [
    ("", "a", 1, 0.22),
    ("", "b", 1, 0.077),
    ("b", "a", 1, 0.946),
    ("ef", "d", 1, 0.652),
    ("asdf", "8952klfjas09ujk", 1, 0.549),
    ("", "123", 1, 0.011),
    ("", '___)((*":&', 1, 0.563),
    ("seed", "a", 2, 0.0505),
    ("seed", "b", 2, 0.2696),
    ("foo", "ab", 2, 0.2575),
    ("foo", "def", 2, 0.2019),
    ("89123klj", "8952klfjas09ujkasdf", 2, 0.124),
    ("90850943850283058242805", "123", 2, 0.7516),
    ("()**(%$##$%#$#", '___)((*":&', 2, 0.0128),
    ("abc", "def", 99, None),
]

# "getBucketRange": [name, [numVariations, coverage, weights], expected ranges]
RANGE_CASES = [
    ("normal 50/50", (2, 1, None), [(0, 0.5), (0.5, 1)]),
    ("reduced coverage", (2, 0.5, None), [(0, 0.25), (0.5, 0.75)]),
    ("zero coverage", (2, 0, None), [(0, 0), (0.5, 0.5)]),
    ("4 variations", (4, 1, None), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("uneven weights", (2, 1, [0.4, 0.6]), [(0, 0.4), (0.4, 1)]),
    ("uneven weights, 3 variations", (3, 1, [0.2, 0.3, 0.5]), [(0, 0.2), (0.2, 0.5), (0.5, 1)]),
    ("uneven weights, reduced coverage, 3", (3, 0.2, [0.2, 0.3, 0.5]), [(0, 0.04), (0.2, 0.26), (0.5, 0.6)]),
    ("negative coverage", (2, -0.2, None), [(0, 0), (0.5, 0.5)]),
    ("coverage above 1", (2, 1.5, None), [(0, 0.5), (0.5, 1)]),
    ("weights sum below 1", (2, 1, [0.4, 0.1]), [(0, 0.5), (0.5, 1)]),
    ("weights sum above 1", (2, 1, [0.7, 0.6]), [(0, 0.5), (0.5, 1)]),
    ("weights.length not equal", (4, 1, [0.4, 0.4, 0.2]), [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]),
    ("weights sum almost equals 1", (2, 1, [0.4, 0.5999]), [(0, 0.4), (0.4, 0.9999)]),
]

# "chooseVariation": [name, n, ranges, expected]
CHOOSE_CASES = [
    ("even range, 0", 0, [(0, 0.5), (0.5, 1)], 0),
    ("even range, 0.5", 0.5, [(0, 0.5), (0.5, 1)], 1),
    ("reduced range, 0.2", 0.2, [(0, 0.25), (0.5, 0.75)], 0),
    ("reduced range, 0.4", 0.4, [(0, 0.25), (0.5, 0.75)], -1),
    ("reduced range, 0.6", 0.6, [(0, 0.25), (0.5, 0.75)], 1),
    ("reduced range, 0.8", 0.8, [(0, 0.25), (0.5, 0.75)], -1),
    ("reduced range, 0.25", 0.25, [(0, 0.25), (0.5, 0.75)], -1),
    ("reduced range, 0.5", 0.5, [(0, 0.25), (0.5, 0.75)], 1),
    ("zero range", 0.5, [(0, 0.5), (0.5, 0.5), (0.5, 1)], 2),
]

# "inNamespace": [name, user id, namespace, expected]
NAMESPACE_CASES = [
    ("1", ("namespace1", 0, 0.4), False),
    ("1", ("namespace1", 0.4, 1), True),
    ("1", ("namespace2", 0, 0.4), False),
    ("1", ("namespace2", 0.4, 1), True),
    ("2", ("namespace1", 0, 0.4), False),
    ("2", ("namespace1", 0.4, 1), True),
    ("2", ("namespace2", 0, 0.4), False),
    ("2", ("namespace2", 0.4, 1), True),
    ("3", ("namespace1", 0, 0.4), False),
    ("3", ("namespace1", 0.4, 1), True),
    ("3", ("namespace2", 0, 0.4), True),
    ("3", ("namespace2", 0.4, 1), False),
    ("4", ("namespace1", 0, 0.4), False),
    ("4", ("namespace1", 0.4, 1), True),
    ("4", ("namespace2", 0, 0.4), True),
    ("4", ("namespace2", 0.4, 1), False),
]


@pytest.mark.parametrize(("seed", "value", "version", "expected"), HASH_CASES)
def test_hash_matches_the_growthbook_sdk(seed: str, value: str, version: int, expected: float | None) -> None:
    assert gb_hash(seed, value, version) == expected


@pytest.mark.parametrize(("name", "args", "expected"), RANGE_CASES, ids=[c[0] for c in RANGE_CASES])
def test_bucket_ranges_match_the_growthbook_sdk(
    name: str, args: tuple[int, float, list[float] | None], expected: list[tuple[float, float]]
) -> None:
    got = bucket_ranges(*args)
    assert len(got) == len(expected)
    for (a, b), (x, y) in zip(got, expected, strict=True):
        assert a == pytest.approx(x, abs=1e-9) and b == pytest.approx(y, abs=1e-9), name


@pytest.mark.parametrize(("name", "n", "ranges", "expected"), CHOOSE_CASES, ids=[c[0] for c in CHOOSE_CASES])
def test_choose_variation_matches_the_growthbook_sdk(
    name: str, n: float, ranges: list[tuple[float, float]], expected: int
) -> None:
    assert choose_variation(n, ranges) == expected


@pytest.mark.parametrize(("user", "namespace", "expected"), NAMESPACE_CASES)
def test_in_namespace_matches_the_growthbook_sdk(
    user: str, namespace: tuple[str, float, float], expected: bool
) -> None:
    assert in_namespace(user, namespace) is expected


def test_equal_weights() -> None:
    assert equal_weights(-1) == [] and equal_weights(0) == [] and equal_weights(4) == [0.25] * 4


def test_sdk_experiment_buckets() -> None:
    """The SDK's "feature" cases: seed 'feature', hash v2, id '123' buckets at 0.5231; v1 buckets of key 'feature'."""
    assert gb_hash("feature", "123", 2) == 0.5231
    assert (gb_hash("feature", "123", 1), gb_hash("feature", "456", 1), gb_hash("feature", "fds", 1)) == (
        0.863,
        0.178,
        0.514,
    )


NO_HOLDOUT = Holdout(share=0.0, salt="none")


def _experiment(key: str = "exp", weights: tuple[float, ...] = (0.5, 0.5), **extra: object) -> Experiment:
    variants = tuple(Variant(id=f"v{i}", weight=w, template="gentle_reminder") for i, w in enumerate(weights))
    fields: dict[str, object] = {"key": key, "surface": Surface.template, "status": "running", "variants": variants}
    return Experiment.model_validate({**fields, **extra})


USERS = [f"sim-{i:06d}" for i in range(20_000)]


def test_assignment_is_deterministic_and_follows_the_weights() -> None:
    exp = _experiment(weights=(0.2, 0.3, 0.5))
    first = [assign(exp, u, NO_HOLDOUT).variant for u in USERS]
    again = [assign(exp, u, NO_HOLDOUT).variant for u in USERS]
    assert first == again
    counts = Counter(v.id for v in first if v is not None)
    assert sum(counts.values()) == len(USERS)
    for vid, weight in (("v0", 0.2), ("v1", 0.3), ("v2", 0.5)):
        assert abs(counts[vid] / len(USERS) - weight) < 0.015, counts
    other = [assign(_experiment(key="other", weights=(0.2, 0.3, 0.5)), u, NO_HOLDOUT).variant for u in USERS[:2000]]
    assert other != first[:2000]  # another key reshuffles


def test_coverage_only_adds_students_never_moves_them() -> None:
    half = _experiment(coverage=0.5)
    full = _experiment(coverage=1.0)
    in_half = 0
    for u in USERS[:5000]:
        a, b = assign(half, u, NO_HOLDOUT), assign(full, u, NO_HOLDOUT)
        if a.variant is not None:
            in_half += 1
            assert b.variant == a.variant
        else:
            assert a.reason is Reason.outside_coverage
    assert 0.47 < in_half / 5000 < 0.53


def test_the_global_holdout_takes_its_share_from_every_experiment_alike() -> None:
    holdout = Holdout(share=0.1, salt="h1")
    held = [u for u in USERS if in_holdout(holdout, u)]
    assert 0.09 < len(held) / len(USERS) < 0.11
    for key in ("a", "b"):
        results = [assign(_experiment(key=key), u, holdout) for u in USERS]
        assert {u for u, r in zip(USERS, results, strict=True) if r.reason is Reason.holdout} == set(held)
        # independent of the experiment's split: each variant loses about the holdout share
        split = Counter(assign(_experiment(key=key), u, NO_HOLDOUT).variant.id for u in held)  # type: ignore[union-attr]
        assert abs(split["v0"] / len(held) - 0.5) < 0.05
    redrawn = {u for u in USERS if in_holdout(Holdout(share=0.1, salt="h2"), u)}
    assert len(redrawn & set(held)) < 0.2 * len(held)


def test_a_layer_keeps_two_experiments_on_one_surface_apart() -> None:
    a = _experiment(key="a", layer=LayerSlot(id="copy", start=0.0, end=0.4))
    b = _experiment(key="b", layer=LayerSlot(id="copy", start=0.4, end=1.0))
    config = ExperimentsConfig(holdout=NO_HOLDOUT, experiments=(a, b))
    seen: Counter[str] = Counter()
    for u in USERS[:5000]:
        in_a = assign(a, u, NO_HOLDOUT).variant is not None
        in_b = assign(b, u, NO_HOLDOUT).variant is not None
        assert in_a != in_b  # exactly one: disjoint slots covering the layer
        chosen = assign_surface(config, Surface.template, u)
        assert chosen is not None and chosen.experiment.key == ("a" if in_a else "b")
        seen[chosen.experiment.key] += 1
    assert 0.37 < seen["a"] / 5000 < 0.43
    assert assign_surface(config, Surface.xp_rules, USERS[0]) is None


def test_status_and_tiers_gate_the_assignment() -> None:
    assert assign(_experiment(status="draft"), USERS[0], NO_HOLDOUT).reason is Reason.not_running
    medium = _experiment(tiers=("medium",))
    assert assign(medium, USERS[0], NO_HOLDOUT, tier="low").reason is Reason.other_tier
    assert assign(medium, USERS[0], NO_HOLDOUT, tier="medium").reason is Reason.assigned
    assert assign(medium, USERS[0], NO_HOLDOUT).reason is Reason.assigned  # no tier given: not filtered


def test_exposure_message_is_deterministic_and_refused_without_a_variant() -> None:
    exp = _experiment(layer=LayerSlot(id="copy", start=0.0, end=1.0))
    assigned = assign(exp, "sim-000001", NO_HOLDOUT)
    at = datetime(2026, 11, 20, 9, tzinfo=UTC)
    message = exposure(assigned, at, "i-1", {"tier": "low"})
    assert assigned.variant is not None
    assert message.exposure_id == f"exp:sim-000001:{assigned.variant.id}"
    assert (message.surface, message.layer, message.intervention_id) == (Surface.template, "copy", "i-1")
    assert Exposure.model_validate_json(message.model_dump_json()) == message
    assert exposure(assigned, at, "i-2").exposure_id == message.exposure_id  # one id per student and variant
    everyone_held = Holdout(share=0.5, salt="x")
    held_user = next(u for u in USERS if in_holdout(everyone_held, u))
    with pytest.raises(ValueError, match=r"not assigned \(holdout\)"):
        exposure(assign(exp, held_user, everyone_held), at)


def test_exposure_contract_refuses_a_wrong_id() -> None:
    with pytest.raises(ValueError, match="exposure_id must be 'exp:u1:v0'"):
        Exposure(
            exposure_id="exp:u1:v1",
            experiment="exp",
            variant="v0",
            user_id="u1",
            at=datetime(2026, 11, 20, tzinfo=UTC),
            surface=Surface.template,
        )
