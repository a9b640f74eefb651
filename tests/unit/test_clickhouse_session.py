"""Every ClickHouse session's settings: on a cluster, inserts into Distributed tables wait for the shards (#27)."""

from __future__ import annotations

from io import BytesIO

from clickhouse_driver.settings import available as driver_settings

from config.settings import Settings
from sinks.clickhouse.client import DDL_TASK_TIMEOUT_S, SOCKET_TIMEOUT_S, connect, session_settings


def test_a_single_server_session_needs_no_distributed_setting() -> None:
    assert session_settings(Settings()) == {"allow_experimental_low_cardinality_type": 1}


def test_on_a_cluster_inserts_return_only_once_every_shard_stored_the_rows() -> None:
    s = Settings(clickhouse_cluster="engage")
    assert session_settings(s)["insert_distributed_sync"] == 1
    assert connect(s).settings["insert_distributed_sync"] == 1  # what the driver sends with each query


def test_on_a_cluster_on_cluster_statements_give_up_before_the_socket_does() -> None:
    s = Settings(clickhouse_cluster="engage")
    assert 0 < session_settings(s)["distributed_ddl_task_timeout"] == DDL_TASK_TIMEOUT_S < SOCKET_TIMEOUT_S


def test_the_ddl_timeout_is_sent_as_the_signed_varint_an_old_server_reads() -> None:
    """18.16 reads a signed setting of the binary settings format as a zig-zag varint: 45 is sent as 90."""
    for value, sent in ((45, b"\x5a"), (0, b"\x00"), (-1, b"\x01"), (180, b"\xe8\x02")):
        buf = BytesIO()
        driver_settings.settings["distributed_ddl_task_timeout"].write(value, buf)
        assert buf.getvalue() == sent, value
