"""Naming the nodes that did not execute an ON CLUSTER statement, from the server's timeout error (#27)."""

from __future__ import annotations

from clickhouse_driver.errors import ServerException

from sinks.clickhouse.ddl_check import TIMEOUT_EXCEEDED, DDLNotAnswered, timed_out_task, unfinished

# What 18.16 says (clickhouse-client, a node stopped), up to the stack trace.
SAID = (
    "DB::Exception: Watching task /clickhouse/task_queue/ddl/query-0000000049 is executing longer than "
    "distributed_ddl_task_timeout (=5) seconds. There are 1 unfinished hosts (0 of them are currently active), "
    "they are going to execute the query in background."
)


def test_the_task_is_read_from_the_timeout_error() -> None:
    assert timed_out_task(ServerException(SAID, TIMEOUT_EXCEEDED)) == "/clickhouse/task_queue/ddl/query-0000000049"


def test_other_errors_are_not_ddl_timeouts() -> None:
    assert timed_out_task(ServerException(SAID, 49)) is None  # another code
    assert timed_out_task(ServerException("DB::Exception: Timeout exceeded: elapsed 5 s", TIMEOUT_EXCEEDED)) is None
    assert timed_out_task(TimeoutError("timed out")) is None


def test_the_nodes_missing_from_the_finished_list_are_named() -> None:
    expected = ["127.0.0.1:9000", "127.0.0.1:9001", "127.0.0.1:9002"]
    finished = ["127%2E0%2E0%2E1:9002", "127%2E0%2E0%2E1:9000"]  # as ZooKeeper names them
    assert unfinished(expected, finished) == ["127.0.0.1:9001"]
    assert unfinished(expected, [f.replace("9001", "9003") for f in finished]) == ["127.0.0.1:9001"]


def test_the_error_names_the_task_the_nodes_and_the_runbook() -> None:
    said = str(DDLNotAnswered("/clickhouse/task_queue/ddl/query-0000000049", ["127.0.0.1:9001"], 20))
    assert "query-0000000049" in said and "127.0.0.1:9001" in said and "within 20 s" in said
    assert "deploy/SCALING.md" in said
