"""A ClickHouse cluster of 2 shards x 2 replicas with ZooKeeper, run for real (#27): the cluster DDL executed,
the sinks writing through the Distributed tables, one replica SIGKILLed while they write and restarted; every
event once in the Distributed table's FINAL count, and the restarted replica catching up with its shard.

Four 18.16 servers and a ZooKeeper started by the project's own code (``deploy.clickhouse_cluster``), on free
ports with a password, stopped by PID at the end. Kafka is the session's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy import server
from deploy.clickhouse_cluster import ClickHouseCluster
from deploy.infra import Infra
from deploy.process import read_pid
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from schemas.topics import catalogue
from sinks.clickhouse.client import DDL_TASK_TIMEOUT_S, ClickHouseUnavailable, check_connection, connect
from sinks.clickhouse.ddl_check import DDLNotAnswered, check_ddl_workers
from sinks.clickhouse.migrations import LEDGER, MIGRATIONS, migrate
from sinks.clickhouse.tables import cluster_for
from sinks.service import run_sinks
from tests.integration.workers import wait_for

pytestmark = pytest.mark.integration

PASSWORD = "four servers"


@pytest.fixture(scope="module")
def cluster(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseCluster]:
    ch = ClickHouseCluster.local(tmp_path_factory.mktemp("ch-cluster"), settings.cache_dir, user="engage",
                                 password=PASSWORD)  # fmt: skip
    try:
        for started in ch.up():
            print(f"\n[cluster] {started.name} ready in {started.seconds_to_ready:.1f} s (pid {started.pid})")
        yield ch
    finally:
        ch.down()


@pytest.fixture(scope="module")
def clustered(infra: Infra, settings: Settings, cluster: ClickHouseCluster) -> Settings:
    s = settings.model_copy(
        update={
            "clickhouse_port": cluster.first.tcp_port,
            "clickhouse_http_port": cluster.first.http_port,
            "clickhouse_user": "engage",
            "clickhouse_password": SecretStr(PASSWORD),
            "clickhouse_cluster": cluster.name,
            "clickhouse_database": f"engage_cluster_{uuid.uuid4().hex[:6]}",
            "topic_prefix": f"chc-{uuid.uuid4().hex[:8]}",
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    return s


def _on(node_settings: Settings, cluster: ClickHouseCluster, index: int) -> Settings:
    node = cluster.nodes[index]
    return node_settings.model_copy(update={"clickhouse_port": node.tcp_port, "clickhouse_http_port": node.http_port})


def _count(s: Settings, sql: str) -> int:
    return int(connect(s).execute(sql)[0][0])


def _send(s: Settings, tag: str, users: int, per_user: int) -> int:
    topics = catalogue(s.topic_prefix, s.event_partitions)
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    with EventProducer(s.kafka, topics) as producer:
        for u in range(users):
            user = f"chc-{tag}-{u}"
            producer.send([{"event_id": f"{user}-{i}", "user_id": user, "event_type": "login", "event_time": at,
                            "platform": "web", "timezone": "UTC"} for i in range(per_user)])  # fmt: skip
        assert producer.flush(60) == 0
    return users * per_user


def test_the_cluster_ddl_runs_on_every_node_and_the_ledger_is_everywhere(
    clustered: Settings, cluster: ClickHouseCluster
) -> None:
    db = clustered.clickhouse_database
    migrate(connect(clustered), db, cluster_for(clustered.clickhouse_cluster))
    for i in range(len(cluster.nodes)):
        node = _on(clustered, cluster, i)
        engines = dict(connect(node).execute(f"SELECT name, engine FROM system.tables WHERE database = '{db}'"))
        assert engines["behavior_events"] == "Distributed"
        assert engines["behavior_events_local"] == "ReplicatedReplacingMergeTree"
        assert engines[LEDGER] == "ReplicatedReplacingMergeTree"
        assert wait_for(
            lambda n=node: _count(n, f"SELECT uniqExact(version) FROM {db}.{LEDGER}") == len(MIGRATIONS), 30
        )


def test_a_replica_killed_while_the_sinks_write_loses_nothing_and_catches_up(
    clustered: Settings, cluster: ClickHouseCluster
) -> None:
    db = clustered.clickhouse_database
    total = f"SELECT count() FROM {db}.behavior_events FINAL WHERE user_id LIKE 'chc-%'"
    local = f"SELECT count() FROM {db}.behavior_events_local FINAL WHERE user_id LIKE 'chc-%'"
    sent = _send(clustered, "a", users=60, per_user=5)
    run_sinks(clustered, ["events"], idle_exit=3.0)
    assert _count(clustered, total) == sent
    shard_counts = [_count(_on(clustered, cluster, i), local) for i in range(len(cluster.nodes))]
    assert shard_counts[0] == shard_counts[1] and shard_counts[2] == shard_counts[3]  # replicas agree
    assert shard_counts[0] > 0 and shard_counts[2] > 0 and shard_counts[0] + shard_counts[2] == sent  # both shards

    killed = cluster.kill(1)  # shard 1's second replica
    print(f"\n[cluster] SIGKILLed s1r2 (pid {killed})")
    sent += _send(clustered, "b", users=60, per_user=5)
    run_sinks(clustered, ["events"], idle_exit=3.0)
    assert _count(clustered, total) == sent  # every event once, through the shard's live replica

    cluster.restart(1)
    back = _on(clustered, cluster, 1)
    assert wait_for(lambda: _count(back, local) == _count(_on(clustered, cluster, 0), local), 60)


def test_a_replica_that_lost_its_disk_is_rebuilt_from_its_peer(clustered: Settings, cluster: ClickHouseCluster) -> None:
    """The runbook's replica disk loss (deploy/SCALING.md): s2r2 SIGKILLed and its data directory deleted; started
    again empty with its peer's table definitions and the force_restore_data flag, it fetches every part from s2r1
    and then follows new writes."""
    db = clustered.clickhouse_database
    migrate(connect(clustered), db, cluster_for(clustered.clickhouse_cluster))  # done already, unless run alone
    local = f"SELECT count() FROM {db}.behavior_events_local FINAL WHERE user_id LIKE 'chc-%'"
    _send(clustered, "g", users=40, per_user=3)
    run_sinks(clustered, ["events"], idle_exit=3.0)
    peer, lost = _on(clustered, cluster, 2), _on(clustered, cluster, 3)
    assert _count(peer, local) > 0
    killed = cluster.kill(3)
    shutil.rmtree(cluster.nodes[3].workdir / "data")
    print(f"\n[cluster] SIGKILLed s2r2 (pid {killed}) and deleted its data directory")
    cluster.rebuild_lost_replica(3)
    cluster.restart(3)
    assert wait_for(lambda: _count(lost, local) == _count(peer, local), 60), (_count(lost, local), _count(peer, local))
    _send(clustered, "h", users=40, per_user=3)
    run_sinks(clustered, ["events"], idle_exit=3.0)
    assert wait_for(lambda: _count(lost, local) == _count(peer, local), 60)  # and it follows new writes


def test_a_replica_killed_mid_insert_with_parts_zookeeper_never_heard_of_starts_again(
    clustered: Settings, cluster: ClickHouseCluster
) -> None:
    """Seen once in a clean clone's cluster chaos run: s2r2, SIGKILLed while a Distributed insert wrote to it early in
    the run, refused to start again (18.16: "the local set of parts doesn't look like the set of parts in
    ZooKeeper", more unknown rows than half of its own). Here a part written but never committed to ZooKeeper is
    made by copying one of its parts under a block number ZooKeeper never gave out; ``restart`` starts it again
    with force_restore_data, the unknown part is detached and the replica holds what its peer holds."""
    db = clustered.clickhouse_database
    migrate(connect(clustered), db, cluster_for(clustered.clickhouse_cluster))
    local = f"SELECT count() FROM {db}.behavior_events_local FINAL WHERE user_id LIKE 'chc-%'"
    _send(clustered, "u", users=40, per_user=3)
    run_sinks(clustered, ["events"], idle_exit=3.0)
    peer, node = _on(clustered, cluster, 2), _on(clustered, cluster, 3)
    assert wait_for(lambda: _count(node, local) == _count(peer, local) > 0, 60)
    cluster.kill(3)
    parts = cluster.nodes[3].workdir / "data" / "data" / db / "behavior_events_local"
    known = sorted(p for p in parts.iterdir() if p.is_dir() and p.name[0].isdigit() and p.name.count("_") == 3)
    assert known, list(parts.iterdir())
    for i, part in enumerate(known * 2):  # twice the known rows unknown: over 18.16's ratio of wrong parts (0.5)
        partition = part.name.split("_")[0]
        shutil.copytree(part, parts / f"{partition}_{900_000 + i}_{900_000 + i}_0")
    before = cluster.forced_restores.get(3, 0)
    cluster.restart(3)
    assert cluster.forced_restores.get(3, 0) == before + 1  # it refused once, as in the chaos run
    assert wait_for(lambda: _count(node, local) == _count(peer, local), 60), (_count(node, local), _count(peer, local))


def test_while_zookeeper_is_lost_inserts_wait_and_once_it_is_back_nothing_is_missing(
    clustered: Settings, cluster: ClickHouseCluster, tmp_path: Path
) -> None:
    """The runbook's ZooKeeper loss (deploy/SCALING.md): ZooKeeper SIGKILLed while a sink process runs; the
    replicated tables refuse inserts (reads go on), the sink retries without committing; ZooKeeper started again,
    every event is stored once."""
    db = clustered.clickhouse_database
    migrate(connect(clustered), db, cluster_for(clustered.clickhouse_cluster))  # done already, unless run alone
    total = f"SELECT count() FROM {db}.behavior_events FINAL WHERE user_id LIKE 'chc-%'"
    before = _count(clustered, total)
    log = tmp_path / "sink.log"
    with log.open("wb") as out:
        sink = subprocess.Popen([sys.executable, "-m", "engage.cli", "sink", "events"], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **settings_env(clustered)},
                                cwd=PROJECT_ROOT)  # fmt: skip
    # Every DDL worker done with its scan of the queue first: a node restarted by the test before was still in its
    # start-up scan when ZooKeeper went, in two clean clones, and 18.16 stopped its DDL worker for good (next test).
    check_ddl_workers(connect(clustered), cluster.name)
    since = cluster.error_log_sizes()
    try:
        killed = server.kill(cluster.zookeeper, "zookeeper")
        print(f"\n[cluster] SIGKILLed ZooKeeper (pid {killed})")
        sent = _send(clustered, "z", users=40, per_user=3)
        time.sleep(8)  # the sink's inserts are refused meanwhile
        during = _count(clustered, total)  # reads go on without ZooKeeper
        server.start(cluster.zookeeper)
        assert wait_for(lambda: _count(clustered, total) == before + sent, 120), (during, log.read_text()[-3000:])
        assert sink.poll() is None, log.read_text()[-3000:]  # the sink kept running throughout
        assert during == before  # nothing stored while ZooKeeper was away
        assert "failed (Code: 242." in log.read_text()  # TABLE_IS_READ_ONLY, retried
    finally:
        sink.terminate()
        sink.wait(30)
    _answered_by_every_node(clustered, cluster, since)  # the runbook's check after a ZooKeeper loss


def test_a_node_that_executes_no_on_cluster_statement_is_named_and_a_restart_brings_it_back(
    clustered: Settings, cluster: ClickHouseCluster
) -> None:
    """An ON CLUSTER statement waits for every node's DDL worker. 18.16 stops a node's worker for good (the server
    goes on serving) when a ZooKeeper session loss interrupts the worker's start-up scan of the queue: seen in two
    clean clones, s2r2 restarted 0.2 s before the test above SIGKILLed ZooKeeper, and every later ON CLUSTER
    statement waited for it until the client's socket timed out. First a node simply down: the check names it
    within its timeout (and the session's ``distributed_ddl_task_timeout`` arrived as sent: the driver encoded
    signed settings wrongly for 18.16, and -23 meant "wait for ever"). Then three tries of the failure itself, s2r2
    restarted and ZooKeeper SIGKILLed at once: after each, the check names exactly the nodes whose error log says
    their worker stopped, and once they are restarted every node answers."""
    setting = "SELECT value FROM system.settings WHERE name = 'distributed_ddl_task_timeout'"
    assert connect(clustered).execute(setting) == [(str(DDL_TASK_TIMEOUT_S),)]
    down = cluster.nodes[3]
    server.stop(down)
    with pytest.raises(DDLNotAnswered) as named:
        check_ddl_workers(connect(clustered), cluster.name, timeout=3)
    assert named.value.hosts == [f"{down.host}:{down.tcp_port}"]
    argv = [sys.executable, "-m", "engage.cli", "db", "check-ddl", "--timeout", "3"]
    env = {**os.environ, **settings_env(clustered)}
    said = subprocess.run(argv, text=True, capture_output=True, env=env, cwd=PROJECT_ROOT, timeout=120)
    assert said.returncode == 1 and f"{down.host}:{down.tcp_port}" in said.stdout, said.stdout + said.stderr
    cluster.restart(3)
    check_ddl_workers(connect(clustered), cluster.name)  # it executed the task it missed, and this one

    stopped = 0
    for _ in range(3):
        since = cluster.error_log_sizes()
        cluster.stop_and_restart(3)
        server.kill(cluster.zookeeper, "zookeeper")
        time.sleep(3)
        server.start(cluster.zookeeper)
        stopped += len(_answered_by_every_node(clustered, cluster, since))
    print(f"\n[cluster] DDL workers stopped by the three ZooKeeper losses: {stopped}")
    said = subprocess.run(argv, text=True, capture_output=True, env=env, cwd=PROJECT_ROOT, timeout=120)
    assert said.returncode == 0 and "every node executed" in said.stdout, said.stdout + said.stderr


def _answered_by_every_node(s: Settings, cluster: ClickHouseCluster, since: dict[int, int]) -> list[int]:
    """The runbook's check after a ZooKeeper loss (deploy/SCALING.md): an ON CLUSTER statement every node must
    execute; the nodes it names must be exactly those whose error log (since ``since``) says their DDL worker
    stopped, and once they are restarted every node answers. Returns the nodes restarted. Then waits until no
    replicated table is read-only any more, so what follows can insert."""
    assert wait_for(lambda: all(node.ready() for node in cluster.nodes), 60)  # every node reads ZooKeeper again
    restarted = []
    try:
        check_ddl_workers(connect(s), cluster.name, timeout=20)
    except DDLNotAnswered as exc:
        restarted = cluster.stopped_ddl_workers(since)
        nodes = [cluster.nodes[i] for i in restarted]
        assert exc.hosts == sorted(f"{n.host}:{n.tcp_port}" for n in nodes), (str(exc), restarted)
        for i in restarted:
            cluster.stop_and_restart(i)
        check_ddl_workers(connect(s), cluster.name, timeout=20)
    readonly = "SELECT count() FROM system.replicas WHERE is_readonly"
    assert wait_for(lambda: all(_count(_on(s, cluster, i), readonly) == 0 for i in range(len(cluster.nodes))), 60)
    return restarted


def test_a_third_shard_gets_its_share_once_the_warehouse_is_copied_into_the_grown_layout(
    clustered: Settings, cluster: ClickHouseCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The runbook's "Adding a shard" (deploy/SCALING.md): new replicas started, every node's remote_servers
    rewritten (reloaded without a restart), `engage db copy --to` a new database on the grown cluster; the same
    rows and daily aggregates there, and the new shard holding its students' share; then the sinks pointed at the
    new database store what came since, there only."""
    db = clustered.clickhouse_database
    sent = _send(clustered, "c", users=90, per_user=3)
    run_sinks(clustered, ["events"], idle_exit=3.0)
    rows = "SELECT count() FROM {db}.behavior_events FINAL WHERE user_id LIKE 'chc-%'"
    daily = "SELECT sum(n) FROM (SELECT user_id, day, uniqExactMerge(events) AS n FROM {db}.user_daily_activity " \
            "WHERE user_id LIKE 'chc-%' GROUP BY user_id, day)"  # fmt: skip
    before = _count(clustered, rows.format(db=db))
    assert before >= sent and _count(clustered, daily.format(db=db)) == before

    grown = cluster.grown(tmp_path_factory.mktemp("ch-grown"))
    new = grown.nodes[len(cluster.nodes) :]
    try:
        grown.rewrite()
        grown.up()
        shards = "SELECT uniqExact(shard_num) FROM system.clusters WHERE cluster = %(c)s"
        assert wait_for(lambda: connect(clustered).execute(shards, {"c": cluster.name}) == [(3,)], 30)

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            env = {**os.environ, **settings_env(clustered)}
            argv = [sys.executable, "-m", "engage.cli", "db", *args]
            return subprocess.run(argv, text=True, capture_output=True, env=env, cwd=PROJECT_ROOT, timeout=300)

        made = cli("new-nodes")  # the current database's tables, empty, on the new shard: reads span it now
        assert made.returncode == 0, made.stdout + made.stderr
        assert _count(clustered, rows.format(db=db)) == before
        target = f"{db}_v2"
        copied = cli("copy", "--to", target)
        assert copied.returncode == 0, copied.stdout + copied.stderr
        assert f"{db}.behavior_events -> {target}.behavior_events" in copied.stdout
        moved = clustered.model_copy(update={"clickhouse_database": target})
        assert _count(moved, rows.format(db=target)) == before
        assert _count(moved, daily.format(db=target)) == before  # rebuilt by the views from the copied rows
        local = f"SELECT count() FROM {target}.behavior_events_local FINAL WHERE user_id LIKE 'chc-%'"
        third = [_count(moved.model_copy(update={"clickhouse_port": n.tcp_port}), local) for n in new]
        assert third[0] == third[1] > 0  # the new shard's replicas hold its share, and agree

        # Step 4: the sinks (stopped during the copy) now write to the new database, from where they stopped.
        later = _send(clustered, "f", users=30, per_user=2)
        run_sinks(moved, ["events"], idle_exit=3.0)
        assert _count(moved, rows.format(db=target)) == before + later
        assert _count(clustered, rows.format(db=db)) == before  # the old database got none of them
    finally:
        for node in new:
            server.stop(node)


def test_a_password_is_rotated_on_every_node_and_in_remote_servers_without_a_restart(
    clustered: Settings, cluster: ClickHouseCluster
) -> None:
    """The runbook's rotation on a cluster (deploy/SCALING.md): every node's users.xml gains the next user, every
    node's remote_servers reaches the replicas as it, the sinks move to it, the old user is removed. Distributed
    inserts and reads across both shards then work as the new user alone; no node was restarted. (Last in the
    module: it also writes back the two-shard layout the previous test grew.)"""
    db = clustered.clickhouse_database
    migrate(connect(clustered), db, cluster_for(clustered.clickhouse_cluster))  # done already, unless run alone
    total = f"SELECT count() FROM {db}.behavior_events FINAL WHERE user_id LIKE 'chc-%'"
    pids = [read_pid(node.pid_file) for node in cluster.nodes]
    rotated = cluster.rotated("engage_b", "next secret")
    nxt = clustered.model_copy(update={"clickhouse_user": "engage_b", "clickhouse_password": SecretStr("next secret")})

    def refused(s: Settings) -> bool:
        try:
            check_connection(s)
            return False
        except ClickHouseUnavailable:
            return True

    def on_every_node(s: Settings, want_refused: bool) -> bool:
        return all(refused(_on(s, cluster, i)) == want_refused for i in range(len(cluster.nodes)))

    assert on_every_node(nxt, want_refused=True)
    time.sleep(1.1)  # a server notices a file's change by its mtime in whole seconds
    for node in cluster.nodes:
        node.write_users(("engage_b", "next secret"))  # 1. both users on every node
    assert wait_for(lambda: on_every_node(nxt, want_refused=False), 30)
    for node in rotated.nodes:
        node.write_config()  # 2. remote_servers reaches the replicas as the new user
    layout = "SELECT uniqExact(shard_num), groupUniqArray(user) FROM system.clusters WHERE cluster = %(c)s"
    reloaded = [(2, ["engage_b"])]  # two shards again (the previous test grew three), replicas reached as engage_b
    assert wait_for(lambda: all(connect(_on(nxt, cluster, i)).execute(layout, {"c": cluster.name}) == reloaded
                                for i in range(len(cluster.nodes))), 30)  # fmt: skip
    before = _count(clustered, total)
    sent = _send(clustered, "d", users=40, per_user=2)
    run_sinks(nxt, ["events"], idle_exit=3.0)  # 3. the components moved
    assert _count(nxt, total) == before + sent
    time.sleep(1.1)
    for node in rotated.nodes:
        node.write_users()  # 4. the old user removed
    assert wait_for(lambda: on_every_node(clustered, want_refused=True), 30)

    # Distributed inserts (synchronous: on both shards before they return) and reads, as the new user alone:
    # the nodes reach each other with the rotated remote_servers.
    sent += _send(clustered, "e", users=40, per_user=2)
    assert wait_for(lambda: _run_sinks_ok(nxt), 60)
    assert _count(nxt, total) == before + sent
    shards = [_count(_on(nxt, cluster, i), total.replace("behavior_events FINAL", "behavior_events_local FINAL"))
              for i in (0, 2)]  # fmt: skip
    assert all(n > 0 for n in shards) and sum(shards) == before + sent
    assert [read_pid(node.pid_file) for node in cluster.nodes] == pids  # reloaded, never restarted


def _run_sinks_ok(s: Settings) -> bool:
    """The sinks stored everything (a remote_servers reload still in flight refuses an insert: tried again)."""
    try:
        run_sinks(s, ["events"], idle_exit=3.0)
        return True
    except Exception as exc:
        print(f"[cluster] sinks refused, trying again: {exc}")
        return False
