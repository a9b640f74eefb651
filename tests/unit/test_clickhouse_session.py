"""Every ClickHouse session's settings: on a cluster, inserts into Distributed tables wait for the shards (#27)."""

from __future__ import annotations

from config.settings import Settings
from sinks.clickhouse.client import connect, session_settings


def test_a_single_server_session_needs_no_distributed_setting() -> None:
    assert session_settings(Settings()) == {"allow_experimental_low_cardinality_type": 1}


def test_on_a_cluster_inserts_return_only_once_every_shard_stored_the_rows() -> None:
    s = Settings(clickhouse_cluster="engage")
    assert session_settings(s)["insert_distributed_sync"] == 1
    assert connect(s).settings["insert_distributed_sync"] == 1  # what the driver sends with each query
