"""Is every node of the cluster executing ``ON CLUSTER`` DDL? And when one is not, which?

An ``ON CLUSTER`` statement is a task in ZooKeeper's DDL queue that each node's DDL worker executes, and the statement
waits until every node has marked it finished (up to ``distributed_ddl_task_timeout``). A node whose DDL worker has
stopped (ClickHouse 18.16 stops it for good on some ZooKeeper session losses, while the server goes on serving
queries: ``deploy/SCALING.md``, ZooKeeper) makes every later ``ON CLUSTER`` statement wait out that timeout. The
server's error then names the task but not the nodes; :func:`explain` reads the task's ``finished`` list from
``system.zookeeper`` and names the nodes that did not answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from clickhouse_driver.errors import ServerException

#: ClickHouse's KEEPER_EXCEPTION: its ZooKeeper session is being re-established (after a ZooKeeper loss), try again.
KEEPER_EXCEPTION = 999
#: ClickHouse's TIMEOUT_EXCEEDED: what an ON CLUSTER statement ends with when some node did not finish it in time.
TIMEOUT_EXCEEDED = 159
_WATCHING = re.compile(r"Watching task (\S+) is executing longer than distributed_ddl_task_timeout")
#: A statement every node can run and that changes nothing: the check's task in the DDL queue.
PROBE = "DROP DATABASE IF EXISTS engage_ddl_probe ON CLUSTER {cluster}"


class DDLNotAnswered(RuntimeError):
    """An ``ON CLUSTER`` task some nodes did not finish in time: the task, and those nodes as ``host:port``."""

    def __init__(self, task: str, hosts: list[str], waited: float) -> None:
        self.task, self.hosts = task, hosts
        super().__init__(
            f"{len(hosts)} node(s) did not execute the ON CLUSTER task {task} within {waited:g} s: "
            f"{', '.join(hosts) or '(none named: every node finished it since)'}. A node whose DDL worker stopped "
            "(its error log says 'DDLWorker: Unexpected error, will terminate') executes no ON CLUSTER statement "
            "until it is restarted: deploy/SCALING.md, ZooKeeper"
        )


def unfinished(expected: Iterable[str], finished_ids: Iterable[str]) -> list[str]:
    """The ``host:port`` of ``expected`` that are not among a task's ``finished`` children (ZooKeeper names them
    ``host:port`` with the host escaped for a file name: ``127%2E0%2E0%2E1:9000``)."""
    done = {unquote(name) for name in finished_ids}
    return sorted(host for host in expected if host not in done)


def timed_out_task(exc: BaseException) -> str | None:
    """The ZooKeeper path of the DDL task an ``ON CLUSTER`` statement gave up waiting for, if that is ``exc``."""
    if not isinstance(exc, ServerException) or exc.code != TIMEOUT_EXCEEDED:
        return None
    found = _WATCHING.search(exc.message)
    return found.group(1) if found else None


def explain(client: Any, exc: BaseException, cluster: str, waited: float) -> DDLNotAnswered | None:
    """``exc`` as a :class:`DDLNotAnswered` naming the nodes that did not finish its task; None if ``exc`` is not
    an ``ON CLUSTER`` timeout."""
    task = timed_out_task(exc)
    if task is None:
        return None
    hosts = client.execute("SELECT host_name, port FROM system.clusters WHERE cluster = %(c)s", {"c": cluster})
    finished = client.execute("SELECT name FROM system.zookeeper WHERE path = %(p)s", {"p": f"{task}/finished"})
    return DDLNotAnswered(task, unfinished((f"{h}:{p}" for h, p in hosts), (n for (n,) in finished)), waited)


def check_ddl_workers(client: Any, cluster: str, timeout: float = 20.0) -> float:
    """Put a statement that changes nothing in the DDL queue and wait (up to ``timeout`` s) for every node to
    execute it; the seconds that took. Raises :class:`DDLNotAnswered` naming the nodes that did not. Just after a
    ZooKeeper loss the node we ask may still be renewing its session: the statement is sent again meanwhile."""
    started = time.monotonic()
    while True:
        try:
            client.execute(
                PROBE.format(cluster=cluster), settings={"distributed_ddl_task_timeout": max(1, round(timeout))}
            )
            return time.monotonic() - started
        except ServerException as exc:
            if exc.code == KEEPER_EXCEPTION and time.monotonic() - started < timeout:
                time.sleep(1.0)
                continue
            named = explain(client, exc, cluster, timeout)
            if named is None:
                raise
            raise named from exc
