"""The chaos suite's short form: the same harness as `make chaos`, fewer students and seconds.

A correct pipeline must come out with every record delivered once, and every intervention request owed by the end
sent once (or dead-lettered) by the notification processes SIGKILLed mid-stream; a sink that commits before
inserting (rows lost) and a worker that emits each output twice under two ids (outputs doubled) must be caught:
the verifier can fail both ways. (Those two run without notifiers: the notify case adds nothing to them.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from config.settings import Settings
from engage.chaos.harness import VERDICT_FAILED, VERDICT_OK, ChaosConfig, run_chaos
from engage.chaos.verify import OUTPUTS

# A run streams for 40 s, waits for everything to catch up and checks every student: minutes, not seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def _short(tmp_path: Path, settings: Settings, **kw: object) -> ChaosConfig:
    return ChaosConfig(
        students=200,
        days=14,
        seconds=40.0,
        kills=4,
        seed=7,
        run_dir=tmp_path / "chaos",
        cache_dir=settings.cache_dir,
        **kw,  # type: ignore[arg-type]
    )


def test_every_record_is_delivered_once_through_kills_and_server_restarts(tmp_path: Path, settings: Settings) -> None:
    console = Console(record=True, width=150)
    report = run_chaos(_short(tmp_path, settings), console)
    out = console.export_text()
    actions = {(run.fault.action, run.fault.target.split("-")[0]) for run in report.faults}
    assert {("SIGKILL", "worker"), ("SIGTERM", "worker"), ("SIGKILL", "sink"), ("SIGTERM", "sink")} <= actions
    assert {("restart-kafka", "kafka"), ("restart-clickhouse", "clickhouse")} <= actions
    assert ("SIGKILL", "notify") in actions
    assert report.verdict is not None
    assert report.delivered, out[-4000:]
    assert VERDICT_OK in out
    assert report.feed.sent_twice > 0  # duplicates were sent, and still counted once
    assert report.verdict.totals["event rows (FINAL)"] == len(report.feed.accepted_ids)
    # The notify case ran and had something to prove: requests were owed and reached the providers.
    assert report.notify is not None and report.notify.delivered, out[-4000:]
    assert report.notify.check.sent_once > 0, report.notify.lines()
    assert report.notify.crashes >= 1
    assert "notify: every owed request sent once or dead-lettered" in out


def test_a_sink_that_commits_before_inserting_is_caught(tmp_path: Path, settings: Settings) -> None:
    console = Console(record=True, width=150)
    report = run_chaos(_short(tmp_path, settings, broken_sink=True, notifiers=0), console)
    out = console.export_text()
    assert not report.delivered
    assert VERDICT_FAILED in out and VERDICT_OK not in out
    assert report.verdict is not None
    # What this bug does is lose rows: a row missing, not merely any difference.
    lost = [d for d in report.verdict.differences if d.check.startswith("clickhouse") and d.missing]
    assert lost, out[-4000:]


def test_a_worker_that_emits_each_output_twice_under_two_ids_is_caught(tmp_path: Path, settings: Settings) -> None:
    console = Console(record=True, width=150)
    report = run_chaos(_short(tmp_path, settings, double_emitting_worker=True, notifiers=0), console)
    out = console.export_text()
    assert not report.delivered
    assert VERDICT_FAILED in out and VERDICT_OK not in out
    assert report.verdict is not None
    doubled = {d.check for d in report.verdict.differences if d.doubled}
    # Each output emitted twice under two ids, found on Kafka for every kind of output.
    assert {output.checks[3] for output in OUTPUTS} <= doubled, out[-4000:]


def test_on_three_brokers_and_a_clickhouse_cluster_a_broker_and_a_replica_killed_lose_nothing(
    tmp_path: Path, settings: Settings
) -> None:
    """#27's multi-node run, short: RF 3 / min ISR 2 over SCRAM and TLS, 2 shards x 2 replicas with ZooKeeper; a
    broker and a replica SIGKILLed mid-stream and restarted, workers and sinks killed; every event once in the
    Distributed tables (FINAL), every student's state exact. (`make cluster-chaos` is the long form.)"""
    console = Console(record=True, width=150)
    report = run_chaos(_short(tmp_path, settings, clusters=True, notifiers=0), console)
    out = console.export_text()
    effects = {run.fault.target: run.effect for run in report.faults if run.fault.target in ("kafka", "clickhouse")}
    assert "SIGKILLed broker 2 of 3" in effects["kafka"], effects
    assert "SIGKILLed replica s2r2 of 4" in effects["clickhouse"], effects
    assert all("ready" in effect for effect in effects.values()), effects  # both came back during the run
    assert report.verdict is not None
    assert report.delivered, out[-4000:]
    assert VERDICT_OK in out
    assert report.verdict.totals["event rows (FINAL)"] == len(report.feed.accepted_ids)
