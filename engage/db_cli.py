"""`engage db`: the warehouse's schema and its moves: migrate, status, ddl, retention, and for a cluster that
grew, new-nodes and copy, and check-ddl, whether every node executes ON CLUSTER statements
(``deploy/SCALING.md``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from config.settings import get_settings

if TYPE_CHECKING:
    from sinks.clickhouse.tables import Cluster

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ClickHouse schema.")
console = Console(width=max(Console().width, 120))


@contextmanager
def _naming_silent_nodes(client: Any, cluster: Cluster | None) -> Iterator[None]:
    """An ON CLUSTER statement some nodes did not finish ends in an error naming them (not only the task)."""
    from sinks.clickhouse.client import DDL_TASK_TIMEOUT_S
    from sinks.clickhouse.ddl_check import explain

    try:
        yield
    except Exception as exc:  # explain tells an ON CLUSTER timeout from the rest
        named = explain(client, exc, cluster.name, DDL_TASK_TIMEOUT_S) if cluster else None
        if named is None:
            raise
        console.print(f"[red]error:[/red] {named}")
        raise typer.Exit(1) from exc


@app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (idempotent)."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.tables import cluster_for

    s = get_settings()
    client, cluster = connect(s), cluster_for(s.clickhouse_cluster)
    with _naming_silent_nodes(client, cluster):
        applied = migrate(client, s.clickhouse_database, cluster)
    for m in applied:
        console.print(f"applied {m.version}: {m.description}")
    console.print(f"{s.clickhouse_database}: up to date" if not applied else f"{len(applied)} migration(s) applied")


@app.command("new-nodes")
def db_new_nodes() -> None:
    """Create the database's tables on nodes that joined the cluster after it was migrated (a new shard):
    every statement again ON CLUSTER, IF NOT EXISTS (deploy/SCALING.md, "Adding a shard")."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrations import create_on_new_nodes
    from sinks.clickhouse.tables import cluster_for

    s = get_settings()
    cluster = cluster_for(s.clickhouse_cluster)
    if cluster is None:
        console.print("[red]error:[/red] ENGAGE_CLICKHOUSE_CLUSTER is not set: there are no other nodes")
        raise typer.Exit(2)
    client = connect(s)
    with _naming_silent_nodes(client, cluster):
        ran = create_on_new_nodes(client, s.clickhouse_database, cluster)
    console.print(f"{s.clickhouse_database}: {ran} statements run ON CLUSTER {cluster.name}")


@app.command("copy")
def db_copy(
    to: Annotated[str, typer.Option("--to", help="The database to copy into (created and migrated here)")],
) -> None:
    """Copy the warehouse (ENGAGE_CLICKHOUSE_DATABASE) into another database: for a cluster that gained a shard
    (deploy/SCALING.md). The tables views fill are rebuilt from the copied rows."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.copy import copy_database
    from sinks.clickhouse.migrations import migrate
    from sinks.clickhouse.tables import cluster_for

    s = get_settings()
    client, cluster = connect(s), cluster_for(s.clickhouse_cluster)
    with _naming_silent_nodes(client, cluster):
        migrate(client, to, cluster)
        copied = copy_database(client, s.clickhouse_database, to)
    for table, rows in copied.items():
        console.print(f"{s.clickhouse_database}.{table} -> {to}.{table}: {rows:,} rows")


@app.command("check-ddl")
def db_check_ddl(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every node")] = 20.0,
) -> None:
    """Is every node of the cluster executing ON CLUSTER statements? One that changes nothing is queued and every
    node must execute it; the ones that did not are named (deploy/SCALING.md, ZooKeeper: restart them)."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.ddl_check import DDLNotAnswered, check_ddl_workers

    s = get_settings()
    if not s.clickhouse_cluster:
        console.print("[red]error:[/red] ENGAGE_CLICKHOUSE_CLUSTER is not set: a single server has no DDL queue")
        raise typer.Exit(2)
    try:
        took = check_ddl_workers(connect(s), s.clickhouse_cluster, timeout)
    except DDLNotAnswered as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{s.clickhouse_cluster}: every node executed the check's ON CLUSTER statement in {took:.1f} s")


@app.command("status")
def db_status() -> None:
    """Which migrations are applied, and when."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrations import status
    from sinks.clickhouse.tables import cluster_for

    s = get_settings()
    for version, description, at in status(connect(s), s.clickhouse_database, cluster_for(s.clickhouse_cluster)):
        console.print(f"{version:>3}  {'applied ' + at.isoformat() if at else 'PENDING':<34} {description}")


@app.command("ddl")
def db_ddl(
    cluster: Annotated[str | None, typer.Option(help="Render the cluster variant ON CLUSTER this name")] = None,
) -> None:
    """Print the DDL of a fresh database (single node, or the Replicated + Distributed cluster variant)."""
    from sinks.clickhouse.tables import OBJECTS, cluster_for

    s = get_settings()
    for obj in OBJECTS:
        for statement in obj.ddl(s.clickhouse_database, cluster_for(cluster or s.clickhouse_cluster)).split(";\n"):
            typer.echo(statement + ";\n")


@app.command("retention")
def db_retention(
    apply: Annotated[bool, typer.Option("--apply", help="Drop the partitions (default: only list them)")] = False,
    keep: Annotated[
        list[str] | None, typer.Option(help="TABLE=MONTHS, overriding a table's default (repeatable)")
    ] = None,
) -> None:
    """Drop monthly partitions older than each table keeps (raw events 13 months, aggregates 37, ...)."""
    from datetime import UTC, datetime

    from sinks.clickhouse.client import connect
    from sinks.clickhouse.retention import drop_partitions, expired_partitions, retention_policy
    from sinks.clickhouse.tables import cluster_for

    overrides: dict[str, int] = {}
    for item in keep or []:
        name, sep, months = item.partition("=")
        if not sep or not months.isdigit():
            raise typer.BadParameter(f"--keep wants TABLE=MONTHS, got {item!r}")
        overrides[name] = int(months)
    s = get_settings()
    client, cluster = connect(s), cluster_for(s.clickhouse_cluster)
    for table, kept in sorted(retention_policy(overrides).items()):
        console.print(f"{table:<24} keeps {kept} months")
    expired = expired_partitions(client, s.clickhouse_database, datetime.now(UTC).date(), overrides, cluster)
    for p in expired:
        console.print(f"{'dropping' if apply else 'would drop'} {p.table} partition {p.partition} ({p.rows} rows)")
    if apply:
        with _naming_silent_nodes(client, cluster):
            drop_partitions(client, s.clickhouse_database, expired, cluster)
    console.print(f"{len(expired)} partition(s) {'dropped' if apply else 'expired; run with --apply to drop'}")
