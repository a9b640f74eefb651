"""``engage dashboards student-link USER_ID [--hours H]``: print the signed link to a student's page.

The client app (or support) hands this URL to the student, e.g. opened in a web view; it expires after
``--hours`` (default ``student_link_hours``). Wired into the ``engage dashboards`` group with one line:
``dashboards_app.command("student-link")(student_link_command)``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from config.settings import get_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Student dashboard links.")


@app.callback()
def _group() -> None:
    """Student dashboard links (a group, so the command keeps its name when run on its own)."""


@app.command("student-link")
def student_link_command(
    user_id: Annotated[str, typer.Argument(help="the student's id, as in their events")],
    hours: Annotated[
        float | None, typer.Option("--hours", min=0.01, help="hours the link works (default student_link_hours)")
    ] = None,
) -> None:
    """Print the URL of USER_ID's dashboard (signed; only that student's page; expires)."""
    from dashboards.student import student_link

    try:
        typer.echo(student_link(get_settings(), user_id, hours=hours))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="USER_ID") from None
