"""The statistics of an A/B readout, in closed form (no SciPy at runtime; unit tests compare with SciPy).

- **Relative lift** of a variant's conversion rate over the control's, ``p_v / p_c - 1``, with a 95 % interval
  by the delta method on the log of the ratio (Katz's risk-ratio interval): ``se(log RR) = sqrt(1/x_v - 1/n_v +
  1/x_c - 1/n_c)``, interval ``exp(log RR +/- 1.96 se) - 1``. On the log scale the ratio is close to normal
  and the interval stays above -100 % (a Wald interval on the ratio itself does neither). With no conversions (or
  all) in an arm, 0.5 is added to its successes and failures (Haldane-Anscombe) so the interval exists. The lift
  is *significant* when the interval leaves out 0.
- **Chance to beat control**: ``P(p_v > p_c)`` under independent Beta(1 + x, 1 + n - x) posteriors (uniform
  Beta(1, 1) priors), exact (Evan Miller's sum of Beta functions, over the arm with fewer successes), no Monte
  Carlo; beyond 100 000 successes in both arms, where the sum is long and both posteriors are normal to many
  digits, a normal approximation.
- **Sample-ratio mismatch**: Pearson's chi-square of the exposures per variant against the configured weights;
  ``p < 0.001`` flags the experiment (its split is not what was asked: assignment or exposure logging is broken,
  and the lifts cannot be trusted). The chi-square tail is the closed form for integer degrees of freedom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile
SRM_ALPHA = 0.001
_EXACT_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Arm:
    """``conversions`` of ``n`` units (students)."""

    n: int
    conversions: int

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.conversions <= self.n:
            raise ValueError(f"an arm needs 0 <= conversions <= n, got {self.conversions} of {self.n}")

    @property
    def rate(self) -> float:
        return self.conversions / self.n if self.n else math.nan


@dataclass(frozen=True, slots=True)
class Lift:
    estimate: float  # relative: 0.1 is +10 %
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def relative_lift(control: Arm, variant: Arm, z: float = Z95) -> Lift:
    """The variant's rate relative to the control's, with the delta-method (log ratio) interval; NaN when either
    arm has no units."""
    if control.n == 0 or variant.n == 0:
        return Lift(math.nan, math.nan, math.nan)
    xc, nc, xv, nv = float(control.conversions), float(control.n), float(variant.conversions), float(variant.n)
    if xc in (0.0, nc) or xv in (0.0, nv):  # Haldane-Anscombe: +0.5 to successes and failures of both arms
        xc, nc, xv, nv = xc + 0.5, nc + 1.0, xv + 0.5, nv + 1.0
    log_rr = math.log((xv / nv) / (xc / nc))
    se = math.sqrt(1 / xv - 1 / nv + 1 / xc - 1 / nc)
    estimate = variant.rate / control.rate - 1 if control.conversions else math.exp(log_rr) - 1
    return Lift(estimate, math.exp(log_rr - z * se) - 1, math.exp(log_rr + z * se) - 1)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _p_b_beats_a(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    """P(X_B > X_A), X ~ Beta(a, b), integer a_b: sum over i < a_b (Evan Miller, "Formulas for Bayesian A/B
    testing")."""
    base = _log_beta(a_a, b_a)
    total = 0.0
    for i in range(a_b):
        total += math.exp(_log_beta(a_a + i, b_a + b_b) - math.log(b_b + i) - _log_beta(1 + i, b_b) - base)
    return min(1.0, max(0.0, total))


def chance_to_beat(control: Arm, variant: Arm) -> float:
    """P(variant's true rate > control's) under Beta(1, 1) priors."""
    a_c, b_c = 1 + control.conversions, 1 + control.n - control.conversions
    a_v, b_v = 1 + variant.conversions, 1 + variant.n - variant.conversions
    if min(a_c, a_v) > _EXACT_LIMIT:
        mean_c, mean_v = a_c / (a_c + b_c), a_v / (a_v + b_v)
        var_c = a_c * b_c / ((a_c + b_c) ** 2 * (a_c + b_c + 1))
        var_v = a_v * b_v / ((a_v + b_v) ** 2 * (a_v + b_v + 1))
        return 0.5 * math.erfc(-(mean_v - mean_c) / math.sqrt(2 * (var_c + var_v)))
    if a_v <= a_c:
        return _p_b_beats_a(a_c, b_c, a_v, b_v)
    return 1.0 - _p_b_beats_a(a_v, b_v, a_c, b_c)


def chi2_sf(x: float, df: int) -> float:
    """P(chi-square with ``df`` degrees of freedom > x), closed form for integer df >= 1."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2 == 0:  # e^{-x/2} * sum_{j < df/2} (x/2)^j / j!
        term, total = 1.0, 1.0
        for j in range(1, df // 2):
            term *= half / j
            total += term
        return min(1.0, math.exp(-half) * total)
    # odd: erfc(sqrt(x/2)) + sqrt(2x/pi) e^{-x/2} * sum_{j=1}^{(df-1)/2} x^{j-1} / (1 * 3 * ... * (2j - 1))
    total, term = 0.0, 1.0
    for j in range(1, (df - 1) // 2 + 1):
        term = 1.0 if j == 1 else term * x / (2 * j - 1)
        total += term
    return min(1.0, math.erfc(math.sqrt(half)) + math.sqrt(2 * x / math.pi) * math.exp(-half) * total)


@dataclass(frozen=True, slots=True)
class SampleRatio:
    chi2: float
    df: int
    p_value: float
    expected: tuple[float, ...]

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def sample_ratio(observed: Sequence[int], weights: Sequence[float]) -> SampleRatio:
    """Pearson's goodness of fit of ``observed`` units per variant against the configured ``weights``."""
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError(f"need one weight per variant and two variants or more, got {len(observed)}/{len(weights)}")
    if any(w <= 0 for w in weights):
        raise ValueError(f"every weight must be above 0, got {list(weights)}")
    total, wsum = sum(observed), sum(weights)
    expected = tuple(total * w / wsum for w in weights)
    if total == 0:
        return SampleRatio(0.0, len(observed) - 1, 1.0, expected)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    return SampleRatio(chi2, len(observed) - 1, chi2_sf(chi2, len(observed) - 1), expected)
