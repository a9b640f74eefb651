"""`engage leaderboards serve`: the leaderboard service (``leaderboards.runner``) as one process."""

from __future__ import annotations

import logging

import typer

from config.settings import get_settings

leaderboards_app = typer.Typer(no_args_is_help=True, help="Leaderboards: ranks from the standings topic.")


@leaderboards_app.command("serve")
def serve() -> None:
    """Rebuild the boards from the standings topic, then serve ranks on bind_host:leaderboard_port and keep up."""
    from leaderboards.runner import serve as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise typer.Exit(run(get_settings()))
