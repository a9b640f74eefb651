"""`engage kafka users | set-password USER | delete-user USER | keystore PATH`: the SCRAM users and the listener
certificates of a locked-down Kafka.

Connects as the configured user (``ENGAGE_KAFKA_*``), so it works wherever the components do. Rotating a
password without an outage takes a second user (a SCRAM user has one password): create it, move every component
to it, delete the old one (``deploy/SCALING.md``, "Rotating credentials").
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from config.settings import get_settings
from kafka_io.admin import delete_scram_user, scram_users, set_listener_keystore, set_scram_password

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Kafka's SCRAM users and listener certificates (TLS + SASL clusters).",
)
console = Console()


@app.command("users")
def users() -> None:
    """Every SCRAM user and its mechanisms (Kafka never returns a password)."""
    for user, mechanisms in sorted(scram_users(get_settings().kafka).items()):
        console.print(f"{user}  {', '.join(mechanisms)}")


@app.command("set-password")
def set_password(
    user: Annotated[str, typer.Argument(help="The SCRAM user to create or change")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input (else: a prompt)")
    ] = False,
) -> None:
    """Create USER or change its password, for SCRAM-SHA-256 and -512, on every broker at once."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else typer.prompt("password", hide_input=True)
    set_scram_password(get_settings().kafka, user, password)
    console.print(f"{user}: password set (SCRAM-SHA-256, SCRAM-SHA-512); open connections stay open")


@app.command("delete-user")
def delete_user(user: Annotated[str, typer.Argument(help="The SCRAM user to remove")]) -> None:
    """Remove USER: its clients can no longer connect (those connected stay until they reconnect)."""
    delete_scram_user(get_settings().kafka, user)
    console.print(f"{user}: deleted")


@app.command("keystore")
def keystore(
    location: Annotated[str, typer.Argument(help="The new keystore file, as the broker's machine sees it")],
    broker: Annotated[int, typer.Option(help="The broker's node id")] = 1,
    listener: Annotated[
        str, typer.Option(help="The listener's name (its TLS settings' listener.name.NAME)")
    ] = "secure",
) -> None:
    """Make a broker's listener serve the certificate in LOCATION, without a restart (a renewed certificate:
    same subject and alternative names, from a CA the clients trust). Run it for each broker."""
    set_listener_keystore(get_settings().kafka, broker, listener, location)
    console.print(f"broker {broker}: listener {listener} serves {location}; open connections keep the old one")
