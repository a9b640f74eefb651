"""The ``engage bench notify`` command (registered on ``engage bench`` in ``engage/cli.py``); the work is in
``engage.bench.notify``, imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from config.settings import get_settings


def bench_notify(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/notify.json"),
    deliveries: Annotated[int, typer.Option(help="Send requests per channel for the delivery rate")] = 2_000,
    channel: Annotated[
        list[str] | None, typer.Option(help="Channels for the delivery rate (repeatable; default all four)")
    ] = None,
    rate: Annotated[list[int] | None, typer.Option(help="Events/s offered for the response time (repeatable)")] = None,
    seconds: Annotated[float, typer.Option(help="Seconds of offered load per rate")] = 45.0,
) -> None:
    """Deliveries/s per notification process beside a bare send loop; event -> provider-accepted response time."""
    from engage.bench.notify import NotifyBenchConfig, run
    from schemas.events import Channel

    defaults = NotifyBenchConfig()
    config = NotifyBenchConfig(
        deliveries=deliveries,
        channels=tuple(Channel(c) for c in channel) if channel else defaults.channels,
        rates=tuple(rate or defaults.rates),
        seconds=seconds,
    )
    report = run(get_settings(), Console(width=max(Console().width, 120)), out, config)
    raise typer.Exit(1 if report.problems else 0)
