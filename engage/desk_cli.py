"""`engage desk`: run the success desk, and work its queue from a terminal.

The commands other than ``serve`` talk to the running desk's HTTP API with a server key (``desk_key``, else the
first of ``server_keys``), not to its SQLite file: they then work from any machine that reaches the API, go
through the same key checks and rules as every other client, and the desk process stays the only writer (its
metrics - claim-to-resolve times, redemptions - count every change, and its outbox publishes the outcomes).
"""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import httpx
import typer

from config.settings import get_settings

desk_app = typer.Typer(no_args_is_help=True, help="The success desk: human outreach queue and discount offers.")

Owner = Annotated[str, typer.Option(help="Who you are on the team (default: your login name)")]


def _client() -> httpx.Client:
    from access.auth import parse_pair

    settings = get_settings()
    if settings.desk_key is not None:
        key = settings.desk_key.get_secret_value()
    elif settings.server_keys:
        key = parse_pair(settings.server_keys[0])[1]
    else:
        typer.echo("error: no key for the desk API: set ENGAGE_DESK_KEY to a server key", err=True)
        raise typer.Exit(2)
    return httpx.Client(
        base_url=f"http://127.0.0.1:{settings.desk_port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def _call(method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None) -> Any:
    try:
        with _client() as client:
            answer = client.request(method, path, json=body, params=params)
    except httpx.HTTPError as exc:
        typer.echo(f"error: the desk does not answer ({exc}); is `engage desk serve` running?", err=True)
        raise typer.Exit(2) from None
    data = answer.json()
    if answer.status_code != 200:
        typer.echo(f"refused ({answer.status_code} {data.get('error')}): {data.get('detail')}", err=True)
        raise typer.Exit(1)
    return data


def _line(item: dict[str, Any]) -> str:
    flag = " OVERDUE" if item["overdue"] else ""
    owner = f" {item['owner']}" if item["owner"] else ""
    return (
        f"{item['intervention_id']}  {item['state']}{owner}{flag}  due {item['due_at'][:16]}  "
        f"student {item['user_id']} (risk {item['risk_7d']:.0f}): {item['reason']}"
    )


def _show(item: dict[str, Any]) -> None:
    typer.echo(_line(item))
    if item["resolution"]:
        typer.echo(f"  resolved {item['resolved_at'][:16]}: {item['resolution']}")
    for note in item["notes"]:
        typer.echo(f"  {note['at'][:16]} {note['author']}: {note['text']}")


@desk_app.command("serve")
def serve() -> None:
    """Consume intervention requests into the queue and offers, and serve the API (bind_host:desk_port)."""
    import logging

    from desk.runner import serve as run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise typer.Exit(run(get_settings()))


@desk_app.command("list")
def list_items(
    state: Annotated[str, typer.Option(help="open, claimed, overdue, resolved or all")] = "open",
    limit: Annotated[int, typer.Option(help="At most this many, most urgent first")] = 200,
) -> None:
    """The queue: items in a state, earliest deadline first."""
    data = _call("GET", "/v1/outreach", params={"state": state, "limit": str(limit)})
    for item in data["items"]:
        typer.echo(_line(item))
    typer.echo(f"{len(data['items'])} {state} item(s)")


@desk_app.command("show")
def show(item_id: Annotated[str, typer.Argument(metavar="ID", help="The intervention id")]) -> None:
    """One item with its notes."""
    _show(_call("GET", f"/v1/outreach/{item_id}"))


@desk_app.command("claim")
def claim(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    owner: Owner = "",
    force: Annotated[str | None, typer.Option(help="Take it over from its owner, saying why")] = None,
) -> None:
    """Take an item (refused if someone else has it, unless --force REASON)."""
    body = {"owner": owner or getpass.getuser(), "force_reason": force}
    _show(_call("POST", f"/v1/outreach/{item_id}/claim", body))


@desk_app.command("note")
def note(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    text: Annotated[str, typer.Option(help="The note")],
    author: Owner = "",
) -> None:
    """Add a note to an item (any state)."""
    _show(_call("POST", f"/v1/outreach/{item_id}/notes", {"author": author or getpass.getuser(), "text": text}))


@desk_app.command("resolve")
def resolve(
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    outcome: Annotated[
        str,
        typer.Option(help="reached_returning, reached_leaving, left_message, no_answer, wrong_contact or not_needed"),
    ],
    note: Annotated[str, typer.Option(help="What happened, in words")] = "",
    owner: Owner = "",
) -> None:
    """End your item's outreach with an outcome."""
    body = {"owner": owner or getpass.getuser(), "outcome": outcome, "note": note}
    _show(_call("POST", f"/v1/outreach/{item_id}/resolve", body))


@desk_app.command("release")
def release(item_id: Annotated[str, typer.Argument(metavar="ID")], owner: Owner = "") -> None:
    """Give your item back to the queue."""
    _show(_call("POST", f"/v1/outreach/{item_id}/release", {"owner": owner or getpass.getuser()}))


@desk_app.command("redeem")
def redeem(
    code: Annotated[str, typer.Argument(metavar="CODE", help="The offer code as the student typed it")],
    user: Annotated[str, typer.Option(help="The student redeeming it")],
) -> None:
    """Redeem an offer code for a student (what the shop's checkout calls)."""
    offer = _call("POST", f"/v1/offers/{code}/redeem", {"user_id": user})
    typer.echo(f"redeemed {offer['code']}: {offer['percent_off']}% off for {offer['user_id']}")
