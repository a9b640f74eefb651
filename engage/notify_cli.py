"""`engage notify` (the notification service) and `engage contacts import FILE.jsonl`: thin faces of
``notifications.service`` and ``notifications.contacts``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from config.settings import get_settings

app = typer.Typer(add_completion=False)
contacts_app = typer.Typer(no_args_is_help=True, help="Students' contacts (addresses, channel choices) on Kafka.")
app.add_typer(contacts_app, name="contacts")


@app.command("notify")
def notify(
    instance: Annotated[
        str | None,
        typer.Option(help="This process's member id in the group (static: a restart takes its partitions back)"),
    ] = None,
    metrics_port: Annotated[int | None, typer.Option(help="Serve /metrics on bind_host here (0: not at all)")] = None,
) -> None:
    """Deliver intervention requests (consumer group <topic_prefix>-notify; run several to share partitions)."""
    from notifications.service import run_notify, serve_metrics

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    s = get_settings()
    update: dict[str, object] = {}
    if instance is not None:
        update["notify_instance_id"] = instance
    if metrics_port is not None:
        update["notify_metrics_port"] = metrics_port
    s = s.model_copy(update=update) if update else s
    serve_metrics(s)
    run_notify(s)


@contacts_app.command("import")
def contacts_import(
    file: Annotated[Path, typer.Argument(help="JSON lines, one Contact per line (schemas/contacts.py)")],
) -> None:
    """Publish contacts to the contacts topic (keyed by user id). Nothing is written if any line is invalid."""
    from kafka_io.producer import EventProducer
    from notifications.contacts import parse_contacts_jsonl, publish_contacts
    from schemas.topics import catalogue

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(2) from exc
    contacts, errors = parse_contacts_jsonl(text)
    if errors:
        for error in errors:
            typer.echo(f"{file}: {error}", err=True)
        typer.echo(f"{len(errors)} invalid line(s): nothing imported", err=True)
        raise typer.Exit(1)
    s = get_settings()
    topics = catalogue(s.topic_prefix, s.event_partitions)
    producer = EventProducer(s.kafka, topics, source="contacts-import")
    try:
        missing = publish_contacts(producer, topics.contacts.name, contacts)
    finally:
        producer.close()
    if missing:
        typer.echo(f"{missing} of {len(contacts)} contacts not acknowledged by Kafka", err=True)
        raise typer.Exit(1)
    typer.echo(f"imported {len(contacts)} contacts to {topics.contacts.name}")
