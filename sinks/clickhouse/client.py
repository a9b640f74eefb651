"""ClickHouse connections and the one way we insert: rows passed as columnar data, never inline literals.

(Inline ``INSERT ... VALUES (...)`` literals hang clickhouse-driver against the 18.16 server.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.errors import Error, ServerException
from clickhouse_driver.settings import available as driver_settings
from clickhouse_driver.varint import write_varint

from config.settings import Settings

# ClickHouse's error codes for a login it refused (18.16: UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD,
# IP_ADDRESS_NOT_ALLOWED; current servers: AUTHENTICATION_FAILED for all of them).
_REFUSED_LOGIN = {192, 193, 194, 195, 516}
#: How long the client waits for any answer from the server before it gives up on the connection.
SOCKET_TIMEOUT_S = 60
#: How long the server waits for every node to finish an ``ON CLUSTER`` statement: below the socket timeout, so a
#: node that does not answer ends in the server's own error naming the task (``sinks.clickhouse.ddl_check``), not in
#: a bare socket timeout.
DDL_TASK_TIMEOUT_S = 45


class _SignedSetting:
    """A signed setting in the binary settings format servers before revision 54429 read (18.16 among them): they
    read it as a zig-zag varint, while clickhouse-driver writes every integer as an unsigned one, so 45 arrived as
    -23 (and a negative ``distributed_ddl_task_timeout`` means "wait for ever"). Newer servers take settings as
    strings and never see this."""

    @classmethod
    def write(cls, value: Any, buf: Any) -> None:
        n = int(value)
        write_varint(((n << 1) ^ (n >> 63)) & 0xFFFF_FFFF_FFFF_FFFF, buf)


driver_settings.settings["distributed_ddl_task_timeout"] = _SignedSetting  # the one signed setting we send


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse refused our login or could not be reached: the message names the server, the user and the
    settings to check."""


def connect(settings: Settings, database: str | None = None) -> Client:
    """A client with the settings' server, user, password and TLS (it connects at its first query)."""
    tls: dict[str, Any] = {}
    if settings.clickhouse_secure:
        tls = {"secure": True, "verify": True}
        if settings.clickhouse_ca_file:
            tls["ca_certs"] = settings.clickhouse_ca_file
    return Client(
        host=settings.clickhouse_host,
        port=settings.clickhouse_port,
        database=database or "default",
        user=settings.clickhouse_user,
        password=settings.clickhouse_password.get_secret_value(),
        connect_timeout=3,
        send_receive_timeout=SOCKET_TIMEOUT_S,
        settings=session_settings(settings),
        **tls,
    )


def session_settings(settings: Settings) -> dict[str, int]:
    """ClickHouse settings of every session. On a cluster an insert into a ``Distributed`` table returns only once
    every shard stored its rows (``insert_distributed_sync``): otherwise it returns when they are queued on the
    node that took them, and a sink would commit its Kafka offsets for rows that node could still lose. ``ON
    CLUSTER`` statements wait at most ``DDL_TASK_TIMEOUT_S`` for the nodes."""
    session = {"allow_experimental_low_cardinality_type": 1}
    if settings.clickhouse_cluster:
        session["insert_distributed_sync"] = 1
        session["distributed_ddl_task_timeout"] = DDL_TASK_TIMEOUT_S
    return session


def check_connection(settings: Settings) -> None:
    """Log in once and run ``SELECT 1``, so a service with wrong credentials stops at start with an error that
    says so, instead of failing (or retrying) at its first insert."""
    where = f"ClickHouse at {settings.clickhouse_host}:{settings.clickhouse_port}"
    try:
        connect(settings).execute("SELECT 1")
    except ServerException as exc:
        if exc.code in _REFUSED_LOGIN:
            raise ClickHouseUnavailable(
                f"{where} refused user {settings.clickhouse_user!r}: {exc.message.splitlines()[0]} "
                "(check ENGAGE_CLICKHOUSE_USER and ENGAGE_CLICKHOUSE_PASSWORD)"
            ) from exc
        raise
    except (Error, OSError) as exc:
        raise ClickHouseUnavailable(
            f"{where} could not be reached as user {settings.clickhouse_user!r}: {exc} (check ENGAGE_CLICKHOUSE_HOST, "
            "ENGAGE_CLICKHOUSE_PORT and, for TLS, ENGAGE_CLICKHOUSE_SECURE and ENGAGE_CLICKHOUSE_CA_FILE)"
        ) from exc


def insert_columns(client: Client, table: str, names: Sequence[str], columns: Sequence[Sequence[Any]]) -> int:
    """Insert column-major data; returns the number of rows written."""
    if not columns or not len(columns[0]):
        return 0
    client.execute(
        f"INSERT INTO {table} ({', '.join(names)}) VALUES",
        list(columns),
        columnar=True,
        types_check=False,
    )
    return len(columns[0])
