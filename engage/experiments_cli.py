"""`engage experiments report NAME` and `engage experiments check FILE`: the wiring around
``analytics.experiments`` (the readout) and ``processors.experiments.config`` (the configuration check)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from analytics.experiments import GUARDRAILS, METRICS, Readout
from processors.experiments.config import DEFAULT_EXPERIMENTS_PATH, ExperimentConfigError, load_experiments
from processors.experiments.stats import Lift

app = typer.Typer(no_args_is_help=True, add_completion=False, help="A/B tests (PRODUCT.md §6): readouts and checks.")
console = Console(width=max(Console().width, 120))

ConfigFile = Annotated[Path, typer.Option("--config", help="The experiments file")]


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.1f} %"


def _signed(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:+.1f} %"


def _lift(lift: Lift | None, control: bool) -> str:
    if lift is None:
        return "control" if control else "-"
    return _signed(lift.estimate) + (" *" if lift.significant else "")


def render(report: Readout) -> list[Table]:
    """The readout as tables: exposures and guardrails per variant, then one row per metric and variant."""
    exp = report.experiment
    split = Table(title=f"{exp.key} ({exp.surface.value}, {exp.status}): exposures, control = {exp.control.id}")
    for column in ("variant", "weight", "exposed", "share", "messages/student"):
        split.add_column(column, justify="right" if column != "variant" else "left")
    total = sum(v.exposed for v in report.variants) or 1
    for v in report.variants:
        per = "-" if math.isnan(v.messages_per_student) else f"{v.messages_per_student:.2f}"
        split.add_row(v.variant, f"{v.weight:g}", str(v.exposed), _pct(v.exposed / total), per)
    metrics = Table(title="conversions (units: students) and guardrails")
    columns = ("metric", "variant", "students", "converted", "rate", "lift vs control", "95 % interval", "P(beats)")
    for column in columns:
        metrics.add_column(column, justify="left" if column in ("metric", "variant") else "right")
    for name in (*METRICS, *GUARDRAILS):
        for cell in report.metric(name):
            lift = cell.lift
            interval = "-" if lift is None or math.isnan(lift.low) else f"[{_signed(lift.low)}, {_signed(lift.high)}]"
            metrics.add_row(
                name,
                cell.variant,
                str(cell.arm.n),
                str(cell.arm.conversions),
                _pct(cell.arm.rate),
                _lift(cell.lift, cell.variant == exp.control.id),
                interval,
                "-" if cell.chance_to_beat is None else _pct(cell.chance_to_beat),
            )
    return [split, metrics]


@app.command("report")
def report(
    name: Annotated[str, typer.Argument(help="The experiment key")],
    as_of: Annotated[str | None, typer.Option(help="Data complete up to this day (YYYY-MM-DD); default today")] = None,
    config: ConfigFile = DEFAULT_EXPERIMENTS_PATH,
) -> None:
    """Per variant: exposures, conversions, lift with its 95 % interval, chance to beat control, SRM, guardrails."""
    from analytics.catalog import QueryError
    from analytics.experiments import readout
    from config.settings import get_settings
    from sinks.clickhouse.client import connect

    try:
        experiments = load_experiments(config)
    except ExperimentConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    experiment = experiments.get(name)
    if experiment is None:
        known = ", ".join(e.key for e in experiments.experiments) or "none"
        console.print(f"[red]no experiment {name!r} in {config}; known: {known}[/red]")
        raise typer.Exit(2)
    s = get_settings()
    try:
        result = readout(connect(s, s.clickhouse_database), experiment, as_of)
    except QueryError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for table in render(result):
        console.print(table)
    if result.srm is not None:
        srm = result.srm
        console.print(f"sample ratio: chi-square {srm.chi2:.3f}, df {srm.df}, p = {srm.p_value:.3g}")
    console.print("* the 95 % interval leaves out 0 (delta method on the log of the rate ratio)")
    for flag in result.flags:
        console.print(f"[bold red]FLAG[/bold red] {flag}")


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="An experiments file to check")]) -> None:
    """Load an experiments file the way the services do; list every problem, naming experiment and field."""
    try:
        experiments = load_experiments(file)
    except ExperimentConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    running = [e for e in experiments.experiments if e.status == "running"]
    console.print(
        f"{file}: {len(experiments.experiments)} experiment(s), {len(running)} running; "
        f"global holdout {experiments.holdout.share:.1%} (salt {experiments.holdout.salt!r})"
    )
    for e in experiments.experiments:
        layer = f" layer {e.layer.id} [{e.layer.start:g}, {e.layer.end:g})," if e.layer else ""
        variants = ", ".join(f"{v.id} {v.weight:g}" for v in e.variants)
        console.print(f"  {e.key}: {e.surface.value}, {e.status},{layer} coverage {e.coverage:g}: {variants}")
