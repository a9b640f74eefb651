"""`engage gamification backfill`: unlock achievements the warehouse's history already earned.

The wiring around ``engage.gamification_backfill`` (which says what a backfill does and does not do): students
are read from ClickHouse ``behavior_events`` a page at a time (a range of user ids, which is the table's sort
key), each student's events streamed in event-time order and replayed once the next student's start, so memory
holds one student's events. Unlocks the warehouse already has (``achievements_unlocked``, live or from an
earlier backfill) are not sent again; the rest go to the achievements topic, keyed by student like the
worker's, and the sinks store them. Re-running is safe: ids are deterministic, and what is stored is skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from config.settings import Settings, get_settings
from engage.gamification_backfill import EVENT_COLUMNS, BackfillSummary, event_from_row, replay_unlocks
from processors.gamification.rules import DEFAULT_RULES_PATH, GameRules, RulesError, rules_from_file

app = typer.Typer(no_args_is_help=True, add_completion=False, help="XP, levels and achievements (PRODUCT.md §7).")
console = Console()


class BackfillError(RuntimeError):
    """Unlocks that could not be delivered to Kafka (the message says how many and why)."""


def student_pages(client: Any, database: str, page: int) -> Iterator[tuple[str, str]]:
    """(first, last) user id of each page of ``page`` students with stored events, in user id order."""
    after = ""
    while True:
        ids = [
            r[0]
            for r in client.execute(
                f"SELECT user_id FROM {database}.behavior_events WHERE user_id > %(after)s "
                f"GROUP BY user_id ORDER BY user_id LIMIT {int(page)}",
                {"after": after},
            )
        ]
        if not ids:
            return
        yield ids[0], ids[-1]
        after = ids[-1]


def stored_unlock_ids(client: Any, database: str, first: str, last: str) -> set[str]:
    rows = client.execute(
        f"SELECT DISTINCT unlock_id FROM {database}.achievements_unlocked "
        "WHERE user_id >= %(first)s AND user_id <= %(last)s",
        {"first": first, "last": last},
    )
    return {r[0] for r in rows}


def student_events(client: Any, database: str, first: str, last: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(user id, events in event-time order) per student of the page, streamed: one student held at a time.

    A re-delivered event stored twice (before ClickHouse merged it away) is read twice: the replay's signals
    drop the copy by its id, as the worker does."""
    rows = client.execute_iter(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM {database}.behavior_events "
        "WHERE user_id >= %(first)s AND user_id <= %(last)s ORDER BY user_id, event_time, event_id",
        {"first": first, "last": last},
        settings={"max_block_size": 10_000},
    )
    for user_id, group in itertools.groupby(rows, key=lambda r: r[1]):
        yield user_id, [event_from_row(r) for r in group]


def run_backfill(
    settings: Settings,
    rules: GameRules,
    *,
    dry_run: bool = False,
    page_students: int = 2_000,
    progress: Callable[[BackfillSummary], None] | None = None,
) -> BackfillSummary:
    """Replay every stored student under ``rules``; send the unlocks the warehouse does not have (unless
    ``dry_run``). Raises ``BackfillError`` when Kafka did not take them all (running again sends the rest)."""
    from kafka_io.admin import Replication, ensure_topics
    from kafka_io.producer import EventProducer
    from schemas.topics import catalogue
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrations import create_all
    from sinks.clickhouse.tables import cluster_for

    db = settings.clickhouse_database
    client = connect(settings)
    create_all(client, db, cluster_for(settings.clickhouse_cluster))  # the tables read below, if nothing ran yet
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    producer = None
    if not dry_run:
        ensure_topics(settings.kafka, [topics.achievements], replication=Replication(*settings.kafka_replication))
        producer = EventProducer(settings.kafka, topics, source="gamification-backfill")
    summary = BackfillSummary()
    try:
        for first, last in student_pages(client, db, page_students):
            stored = stored_unlock_ids(client, db, first, last)
            for user_id, events in student_events(client, db, first, last):
                summary.students += 1
                summary.events += len(events)
                new = summary.add(replay_unlocks(user_id, events, rules), stored)
                summary.sent += len(new)
                for unlock in new:
                    if producer is not None:
                        producer.send_encoded(
                            user_id.encode(), unlock.model_dump_json().encode(), topic=topics.achievements.name
                        )
            if progress is not None:
                progress(summary)
    finally:
        undelivered = producer.close() if producer is not None else 0
    failed = producer.stats.failed if producer is not None else 0
    if failed or undelivered:
        last_error = producer.stats.last_error if producer is not None else None
        raise BackfillError(
            f"{failed + undelivered} of {summary.sent} unlocks not delivered to {topics.achievements.name} "
            f"({last_error or 'timed out'}); run the backfill again: what was stored is skipped"
        )
    return summary


@app.command("backfill")
def backfill(
    rules_path: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules file (default: the workers' gamification_rules_path, or the shipped one)"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Replay and count, send nothing")] = False,
    page_students: Annotated[int, typer.Option(min=1, help="Students read from ClickHouse per page")] = 2_000,
) -> None:
    """Unlock achievements students earned before their rule existed: replay each student's events from the
    warehouse through the rules, send the unlocks not stored yet (marked backfilled; no celebrations)."""
    settings = get_settings()
    path = rules_path or settings.gamification_rules_path or DEFAULT_RULES_PATH
    try:
        rules = rules_from_file(path)
    except (RulesError, OSError) as exc:
        console.print(f"[red]cannot use rules file {path}: {exc}[/red]")
        raise typer.Exit(2) from None

    def progress(s: BackfillSummary) -> None:
        console.print(f"  ... {s.students:,} students, {s.events:,} events, {sum(s.found.values()):,} unlocks found")

    try:
        summary = run_backfill(settings, rules, dry_run=dry_run, page_students=page_students, progress=progress)
    except BackfillError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"rules {path} (version {rules.version}){' (dry run: nothing sent)' if dry_run else ''}")
    for line in summary.lines(dry_run):
        console.print(line)
