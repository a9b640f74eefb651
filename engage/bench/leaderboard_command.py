"""The ``engage bench leaderboard`` command (registered on ``engage bench`` in ``engage/cli.py``); the work is in
``engage.bench.leaderboard``, imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config.settings import get_settings


def bench_leaderboard(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/leaderboard.json"),
    students: Annotated[int, typer.Option(help="Students with a standing, preloaded")] = 1_000_000,
    rate: Annotated[int, typer.Option(help="Standings/s streamed in while reading")] = 5_000,
    reads: Annotated[int, typer.Option(help="Reads of each kind (top 100, rank + neighbours)")] = 3_000,
    burst: Annotated[int, typer.Option(help="Standings written at once for the apply capacity")] = 200_000,
    alternatives: Annotated[bool, typer.Option(help="Also measure a plain sorted list and ClickHouse")] = True,
) -> None:
    """Top-100 and rank reads at 1M students under a stream of standings; rebuild, memory; beside alternatives."""
    from engage.bench.leaderboard import LeaderboardBenchConfig, run

    cfg = LeaderboardBenchConfig(students=students, rate=rate, reads=reads, burst=burst, alternatives=alternatives)
    report = run(get_settings(), Console(width=max(Console().width, 120)), out, cfg)
    raise typer.Exit(1 if report.problems else 0)
