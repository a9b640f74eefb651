"""``engage bench experiments``: does the A/B readout find a planted lift, and does an A/A test stay quiet?

The students are the simulator's (``engage.simulator.Population``: their ids, and a base return rate per student
from their archetype's daily activity, so the population is as uneven as a real one). Each of ``runs`` seeded runs
is a fresh experiment (its own key, so the GrowthBook hash splits the students anew; the shipped global holdout
is kept out), and each assigned student converts with a known probability:

- **planted lift**: the treatment multiplies every student's rate by ``1 + lift``, so the true relative lift is
  exactly ``lift``; the figure is the share of runs whose 95 % interval (delta method on the log ratio) covers it
  (aim: 90 % or more; the interval's own promise is 95 %), beside how often the lift is found (power);
- **A/A**: both arms convert alike; the figure is the share of runs flagged by the sample-ratio check (p < 0.001)
  or by a significant lift (aim: about 5 %, not more: that is what a 95 % interval allows).

Conversions are Bernoulli draws with the known rates (numpy, seeded per run): this tests the assignment and the
statistics, not the ClickHouse query (``tests/analytics/test_experiment_readout.py`` does that by hand). Figures
are printed and saved, nothing is timed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console

from engage.bench.report import Figure, Report
from processors.experiments.assignment import assign
from processors.experiments.config import DEFAULT_EXPERIMENTS_PATH, Experiment, Holdout, Variant, load_experiments
from processors.experiments.stats import Arm, chance_to_beat, relative_lift, sample_ratio
from schemas.experiments import Surface


@dataclass(frozen=True)
class ExperimentsBenchConfig:
    runs: int = 50
    students: int = 20_000
    lift: float = 0.10  # relative: +10 %
    rate_scale: float = 0.5  # a student's 7-day return probability = rate_scale x their archetype's daily activity
    seed: int = 23


@dataclass(frozen=True)
class RunResult:
    control: Arm
    treatment: Arm
    low: float
    high: float
    estimate: float
    chance: float
    srm_p: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


def _experiment(key: str) -> Experiment:
    return Experiment(
        key=key,
        surface=Surface.template,
        status="running",
        variants=(
            Variant(id="control", weight=0.5, template="gentle_reminder"),
            Variant(id="treatment", weight=0.5, template="milestone_celebration"),
        ),
    )


def one_run(ids: list[str], rates: np.ndarray, key: str, holdout: Holdout, lift: float, seed: int) -> RunResult:
    """One experiment: assign every student, draw each assigned student's conversion, read it out."""
    experiment = _experiment(key)
    arm = np.full(len(ids), -1, dtype=np.int8)
    for i, user in enumerate(ids):
        variant = assign(experiment, user, holdout).variant
        if variant is not None:
            arm[i] = 0 if variant.id == "control" else 1
    rng = np.random.default_rng(seed)
    p = np.where(arm == 1, rates * (1 + lift), rates)
    converted = rng.random(len(ids)) < p
    control = Arm(int((arm == 0).sum()), int((converted & (arm == 0)).sum()))
    treatment = Arm(int((arm == 1).sum()), int((converted & (arm == 1)).sum()))
    interval = relative_lift(control, treatment)
    srm = sample_ratio([control.n, treatment.n], [0.5, 0.5])
    return RunResult(
        control,
        treatment,
        interval.low,
        interval.high,
        interval.estimate,
        chance_to_beat(control, treatment),
        srm.p_value,
    )


def _share_interval(share: float, runs: int) -> str:
    """The share's own 95 % Wilson interval: with 50 runs a share is known to a few points only."""
    z = 1.959963984540054
    centre = (share + z * z / (2 * runs)) / (1 + z * z / runs)
    half = z * np.sqrt(share * (1 - share) / runs + z * z / (4 * runs * runs)) / (1 + z * z / runs)
    return f"{runs} runs: the share's 95 % interval is [{100 * (centre - half):.1f} %, {100 * (centre + half):.1f} %]"


def run(config: ExperimentsBenchConfig, console: Console, out: Path) -> Report:
    from engage.simulator.population import Population

    population = Population.generate(config.students, seed=config.seed)
    ids = [s.user_id for s in population.students]
    rates = np.array([config.rate_scale * s.activity for s in population.students])
    holdout = load_experiments(DEFAULT_EXPERIMENTS_PATH).holdout
    planted, aa = [], []
    for r in range(config.runs):
        seed = config.seed * 100_000 + 2 * r
        planted.append(one_run(ids, rates, f"bench-lift-{config.seed}-{r}", holdout, config.lift, seed))
        aa.append(one_run(ids, rates, f"bench-aa-{config.seed}-{r}", holdout, 0.0, seed + 1))
    n = config.runs
    covered = sum(x.low <= config.lift <= x.high for x in planted) / n
    found = sum(x.low > 0 for x in planted) / n
    srm_flags = sum(x.srm_p < 0.001 for x in aa) / n
    sig_flags = sum(x.significant for x in aa) / n
    either = sum(x.srm_p < 0.001 or x.significant for x in aa) / n
    widths = sorted(x.high - x.low for x in planted)
    held_out = 1 - (planted[0].control.n + planted[0].treatment.n) / len(ids)
    report = Report(
        "A/B readout on simulated students",
        context={
            "runs": n,
            "students": config.students,
            "planted_lift": config.lift,
            "mean_base_rate": float(rates.mean()),
            "global_holdout_share": holdout.share,
            "seed": config.seed,
        },
    )
    report.add(Figure("planted lift: 95 % interval covers it", 100 * covered, "% of runs", aim=">= 90 %",
                      notes=f"planted +{100 * config.lift:.0f} %; median interval width {100 * widths[n // 2]:.1f} "
                            f"points of relative lift; {_share_interval(covered, n)}"))  # fmt: skip
    report.add(Figure("planted lift: found (interval above 0)", 100 * found, "% of runs", aim="power, for scale"))
    report.add(Figure("planted lift: mean chance to beat control", 100 * float(np.mean([x.chance for x in planted])),
                      "%"))  # fmt: skip
    report.add(Figure("A/A: flagged (SRM or significant)", 100 * either, "% of runs", aim="about 5 %, not more",
                      notes=_share_interval(either, n)))  # fmt: skip
    report.add(Figure("A/A: significant lift", 100 * sig_flags, "% of runs", aim="5 % expected"))
    report.add(Figure("A/A: sample-ratio mismatch (p < 0.001)", 100 * srm_flags, "% of runs", aim="0.1 % expected"))
    report.add(Figure("students in the global holdout", 100 * held_out, "%", aim=f"{100 * holdout.share:g} %"))
    report.print(console)
    if covered < 0.9:
        report.problems.append(f"the interval covered the planted lift in only {100 * covered:.0f} % of runs")
    if either > 0.1:
        report.problems.append(f"the A/A test flagged {100 * either:.0f} % of runs (expected about 5 %)")
    for problem in report.problems:
        console.print(f"[red]{problem}[/red]")
    console.print(f"saved {report.save(out)}")
    return report


def bench_experiments(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/experiments.json"),
    runs: Annotated[int, typer.Option(help="Seeded runs of each test")] = 50,
    students: Annotated[int, typer.Option(help="Simulated students per run")] = 20_000,
    lift: Annotated[float, typer.Option(help="Planted relative lift (0.1 = +10 %)")] = 0.10,
    seed: Annotated[int, typer.Option(help="Seed of the population and the draws")] = 23,
) -> None:
    """Planted-lift coverage of the readout's 95 % interval over seeded runs, and the A/A false-flag rate."""
    config = ExperimentsBenchConfig(runs=runs, students=students, lift=lift, seed=seed)
    report = run(config, Console(width=max(Console().width, 120)), out)
    raise typer.Exit(1 if report.problems else 0)
