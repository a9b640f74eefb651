"""Readout statistics on known values: SciPy (installed in the dev environment) and hand-worked figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analytics.experiments import SEVERAL, analyse
from processors.experiments.config import Experiment, Variant
from processors.experiments.stats import Arm, chance_to_beat, chi2_sf, relative_lift, sample_ratio
from schemas.experiments import Surface

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 6, 7, 10, 15])
@pytest.mark.parametrize("x", [0.001, 0.5, 1.0, 3.84, 7.5, 13.8, 30.0, 80.0])
def test_chi_square_tail_matches_scipy(x: float, df: int) -> None:
    assert chi2_sf(x, df) == pytest.approx(float(scipy_stats.chi2.sf(x, df)), rel=1e-9, abs=1e-300)


def test_chi_square_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0 and chi2_sf(-1.0, 1) == 1.0
    assert chi2_sf(3.841458820694124, 1) == pytest.approx(0.05, rel=1e-9)  # the textbook 5 % point
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2_sf(1.0, 0)


def test_sample_ratio_matches_scipy_chisquare_and_flags_below_one_in_a_thousand() -> None:
    observed, weights = [5210, 4790], [0.5, 0.5]
    srm = sample_ratio(observed, weights)
    expected = scipy_stats.chisquare(observed, [5000, 5000])
    assert srm.chi2 == pytest.approx(expected.statistic) and srm.p_value == pytest.approx(expected.pvalue)
    assert srm.chi2 == pytest.approx(17.64) and srm.mismatch  # (210^2 + 210^2) / 5000; p = 2.7e-5
    fine = sample_ratio([5050, 4950], weights)
    assert fine.chi2 == pytest.approx(1.0) and not fine.mismatch  # p = 0.317
    three = sample_ratio([2000, 3000, 5100], [0.2, 0.3, 0.5])
    ref = scipy_stats.chisquare([2000, 3000, 5100], [2020, 3030, 5050])
    assert three.p_value == pytest.approx(ref.pvalue) and three.df == 2 and not three.mismatch
    assert sample_ratio([0, 0], weights).p_value == 1.0
    with pytest.raises(ValueError, match="one weight per variant"):
        sample_ratio([1, 2, 3], weights)


def test_relative_lift_interval_by_hand() -> None:
    # 300/1000 against 345/1000: RR 1.15; se(log RR) = sqrt(1/345 - 1/1000 + 1/300 - 1/1000) = 0.06532
    lift = relative_lift(Arm(1000, 300), Arm(1000, 345))
    se = math.sqrt(1 / 345 - 1 / 1000 + 1 / 300 - 1 / 1000)
    assert lift.estimate == pytest.approx(0.15)
    assert lift.low == pytest.approx(math.exp(math.log(1.15) - 1.959963984540054 * se) - 1)
    assert lift.high == pytest.approx(math.exp(math.log(1.15) + 1.959963984540054 * se) - 1)
    assert (round(lift.low, 4), round(lift.high, 4)) == (0.0123, 0.3064) and lift.significant
    null = relative_lift(Arm(1000, 300), Arm(1000, 310))
    assert null.low < 0 < null.high and not null.significant
    assert relative_lift(Arm(0, 0), Arm(10, 1)).estimate != relative_lift(Arm(0, 0), Arm(10, 1)).estimate  # NaN


def test_relative_lift_with_an_empty_arm_uses_the_half_correction() -> None:
    lift = relative_lift(Arm(50, 0), Arm(50, 5))
    # corrected: (5.5 / 51) / (0.5 / 51) = 11, se = sqrt(1/5.5 - 1/51 + 1/0.5 - 1/51); wide but finite
    assert math.isfinite(lift.low) and math.isfinite(lift.high) and lift.low < 10 < lift.high
    se = math.sqrt(1 / 5.5 - 1 / 51 + 1 / 0.5 - 1 / 51)
    assert lift.low == pytest.approx(11 * math.exp(-1.959963984540054 * se) - 1)
    assert lift.estimate == pytest.approx(10.0)  # no control conversion: the corrected ratio (the raw one is infinite)
    with pytest.raises(ValueError, match="0 <= conversions <= n"):
        Arm(10, 11)


@pytest.mark.parametrize(
    ("control", "variant"),
    [((1000, 300), (1000, 345)), ((20, 3), (25, 9)), ((10, 0), (10, 0)), ((500, 40), (480, 31)), ((3, 3), (4, 1))],
)
def test_chance_to_beat_control_is_the_exact_beta_probability(
    control: tuple[int, int], variant: tuple[int, int]
) -> None:
    """Against numerical integration of P(X_v > X_c) = integral of f_v(x) * F_c(x) dx, Beta(1 + x, 1 + n - x)."""
    (nc, xc), (nv, xv) = control, variant
    grid = np.linspace(0, 1, 200_001)
    density = scipy_stats.beta.pdf(grid, 1 + xv, 1 + nv - xv)
    cdf = scipy_stats.beta.cdf(grid, 1 + xc, 1 + nc - xc)
    integral = float(np.trapezoid(density * cdf, grid))
    assert chance_to_beat(Arm(nc, xc), Arm(nv, xv)) == pytest.approx(integral, abs=1e-6)


def test_chance_to_beat_symmetry_and_the_large_count_approximation() -> None:
    a, b = Arm(1000, 300), Arm(1000, 345)
    assert chance_to_beat(a, b) + chance_to_beat(b, a) == pytest.approx(1.0)
    assert chance_to_beat(a, a) == pytest.approx(0.5)
    big_c, big_v = Arm(2_000_000, 200_500), Arm(2_000_000, 201_500)  # both above the exact limit
    sd = math.sqrt(2 * 0.1 * 0.9 / 2_000_000)
    assert chance_to_beat(big_c, big_v) == pytest.approx(float(scipy_stats.norm.cdf(0.0005 / sd)), abs=1e-3)


EXPERIMENT = Experiment(
    key="exp1",
    surface=Surface.template,
    status="running",
    variants=(
        Variant(id="control", weight=0.5, template="gentle_reminder"),
        Variant(id="treat", weight=0.5, template="milestone_celebration"),
    ),
)


def _row(variant: str, exposed: int, returned: int, **extra: int) -> dict[str, object]:
    counts = dict.fromkeys(
        ("opened", "clicked", "eligible_30d", "retained_30d", "unsubscribed", "notifications_sent",
         "outcomes_without_exposure"), 0,
    )  # fmt: skip
    return {"variant": variant, "exposed": exposed, "eligible_7d": exposed, "returned_7d": returned,
            **counts, **extra}  # fmt: skip


def test_analysis_flags_sample_ratio_mismatch_and_keeps_stray_rows_apart() -> None:
    rows = [
        _row(SEVERAL, 7, 3),
        _row("control", 5210, 1563, notifications_sent=10420, outcomes_without_exposure=4),
        _row("treat", 4790, 1581, outcomes_without_exposure=1),
        _row("ghost", 12, 1),
    ]
    report = analyse(rows, EXPERIMENT)
    assert [v.variant for v in report.variants] == ["control", "treat"]
    assert report.variants[0].messages_per_student == 2.0
    assert report.srm is not None and report.srm.mismatch
    assert report.several_variants == 7 and report.unknown_variants == {"ghost": 12}
    assert report.outcomes_without_exposure == 5
    flags = report.flags
    assert flags[0].startswith("sample-ratio mismatch: chi-square 17.64")
    assert any("exposed to variant 'ghost'" in f for f in flags)
    assert any("7 student(s) exposed to more than one variant" in f for f in flags)
    cells = report.metric("returned_7d")
    assert cells[0].lift is None and cells[1].lift is not None
    assert cells[1].lift.estimate == pytest.approx((1581 / 4790) / (1563 / 5210) - 1)


def test_analysis_of_a_variant_nobody_saw() -> None:
    report = analyse([_row("control", 100, 10)], EXPERIMENT)
    treat = report.metric("returned_7d")[1]
    assert treat.arm == Arm(0, 0) and treat.lift is None and treat.chance_to_beat is None
    assert report.srm is not None and report.srm.mismatch  # 100 against 0 of a 50/50 split


def test_the_report_renders_every_metric_and_the_flags() -> None:
    import io

    from rich.console import Console

    from engage.experiments_cli import render

    report = analyse([_row("control", 5210, 1563), _row("treat", 4790, 1581, unsubscribed=3)], EXPERIMENT)
    out = io.StringIO()
    console = Console(file=out, width=200)
    for table in render(report):
        console.print(table)
    text = out.getvalue()
    assert "exp1 (template, running): exposures, control = control" in text
    for metric in ("returned_7d", "opened", "clicked", "retained_30d", "unsubscribed"):
        assert metric in text
    assert "+10.0 % *" in text  # (1581 / 4790) / (1563 / 5210) - 1, significant
