"""`engage dashboards serve`: the admin and student pages on settings.bind_host:dashboards_port."""

from __future__ import annotations

from typing import Annotated

import typer

from config.settings import get_settings
from dashboards.student_cli import student_link_command

app = typer.Typer(no_args_is_help=True, help="Web dashboards: the admin pages and the student page.")


@app.command("serve")
def serve(
    port: Annotated[int | None, typer.Option(help="Port (default settings.dashboards_port)")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve the dashboards until stopped; the admin pages ask for a server or admin key at /login."""
    import uvicorn

    from dashboards.app import create_app
    from sinks.clickhouse.client import check_connection

    settings = get_settings()
    check_connection(settings)  # wrong ClickHouse credentials: a clear error now, not on every page
    listen = port or settings.dashboards_port
    typer.echo(f"dashboards on http://{settings.dashboards_host}:{listen}/admin (log in with a server or admin key)")
    uvicorn.run(create_app(settings), host=settings.bind_host, port=listen, log_level=log_level)


app.command("student-link")(student_link_command)
