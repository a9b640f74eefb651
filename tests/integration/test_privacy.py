"""Erasing a student everywhere, on the real servers: worker state, the changelog, every warehouse table.

The worker erases its state and only sends the request on; the sinks service (``engage sink all``) deletes the
warehouse rows and publishes the report the CLI prints and ``GET /v1/erasures/{id}`` answers from."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.infra import Infra
from deploy.process import free_port
from engage.children import child, wait_for_sinks
from kafka_io.admin import group_lag
from kafka_io.client import kafka_conf
from schemas.messages import DeadLetter
from schemas.privacy import ErasureReport
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import migrate
from sinks.erasure import user_tables
from sinks.runner import sink_group
from streams.erasure import erase_everywhere
from tests.integration.helpers import read_topic
from tests.integration.test_worker import _send, _settings, _simulated, _unique_counts
from tests.integration.workers import wait_for, workers

pytestmark = pytest.mark.integration


def _rows(client: object, database: str, user_id: str) -> dict[str, int]:
    return {
        t: client.execute(f"SELECT count() FROM {database}.{t} WHERE user_id = '{user_id}'")[0][0]  # type: ignore[attr-defined]
        for t in user_tables()
    }


def _changelog(s: Settings) -> dict[bytes, bytes | None]:
    """The worker table's changelog: the last value per key (None: a tombstone)."""
    from confluent_kafka import Consumer

    consumer = Consumer(kafka_conf(s.kafka, {"group.id": f"t-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"}))  # fmt: skip
    consumer.subscribe([f"{s.topic_prefix}-worker-user-state-changelog"])
    last: dict[bytes, bytes | None] = {}
    idle = 0
    while idle < 6:
        batch = consumer.consume(1000, timeout=0.5)
        idle = 0 if batch else idle + 1
        for msg in batch:
            if msg.error() is None:
                last[msg.key() or b""] = msg.value()
    consumer.close()
    return last


def test_a_student_is_erased_from_state_changelog_and_warehouse(infra: Infra, settings: Settings, tmp_path: Path):
    s = _settings(settings, tmp_path, clickhouse_database=f"privacy_{uuid.uuid4().hex[:8]}", sink_batch_seconds=0.3,
                  sink_metrics_port=0)  # fmt: skip
    client = connect(s)
    migrate(client, s.clickhouse_database)
    events = _simulated(students=6, days=10, seed=5)
    expected = _unique_counts(events)
    gone, kept = sorted(expected)[:2]
    # The student also appears in a dead letter (a refused input naming them), which must go too.
    letter = DeadLetter(dead_letter_id=f"d-{gone}", received_at=datetime.now(UTC), source="collector",
                        reason="test", raw=orjson.dumps({"user_id": gone, "event_type": "nope"}).decode())  # fmt: skip
    from kafka_io.producer import EventProducer
    from schemas.topics import catalogue

    topics = catalogue(s.topic_prefix, s.event_partitions)
    with EventProducer(s.kafka, topics) as producer:
        producer.send_dead_letter(letter)
    _send(s, events)
    env = settings_env(s)
    with (
        workers(s, [free_port()], tmp_path) as (worker,),
        child([sys.executable, "-m", "engage.cli", "sink", "all"], tmp_path / "sinks.log", env),
    ):
        assert wait_for(lambda: worker.engagement(gone).status_code == 200, timeout=90)
        assert wait_for(lambda: _rows(client, s.clickhouse_database, gone)["risk_updates"] > 0, timeout=60)
        wait_for_sinks(s, timeout=60)
        # The record in the changelog first (a worker writes changed records at its commits), so that what follows
        # shows the erasure reaching it, not a record that was never written.
        assert wait_for(lambda: _changelog(s).get(gone.encode()) is not None, timeout=60)
        before = _rows(client, s.clickhouse_database, gone)
        assert all(before[t] > 0 for t in ("behavior_events", "risk_updates", "user_daily_activity",
                                           "user_daily_signals"))  # fmt: skip

        # The CLI, as an operator runs it (a separate process with the same settings).
        done = subprocess.run([sys.executable, "-m", "engage.cli", "privacy", "delete", gone], env={**env},
                              cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "nothing of the student is left" in done.stdout
        cli_erasure = done.stdout.split(":")[0].strip()

        assert worker.engagement(gone).status_code == 404
        assert worker.engagement(kept).json()["signals"]["events_total"] == expected[kept]
        assert set(_rows(client, s.clickhouse_database, gone).values()) == {0}
        assert client.execute(f"SELECT count() FROM {s.clickhouse_database}.dead_letters WHERE raw LIKE '%{gone}%'"
                              ) == [(0,)]  # fmt: skip
        kept_events = client.execute(
            f"SELECT count() FROM {s.clickhouse_database}.behavior_events FINAL WHERE user_id = '{kept}'"
        )
        assert kept_events == [(expected[kept],)], "another student's rows were touched"

        # A second erasure of the same student finds nothing anywhere and still completes.
        again = erase_everywhere(s, gone, "test", timeout=60)
        assert not again.worker_had_state and again.complete and not any(again.rows_deleted.values())

        # The changelog (compacted) ends with a tombstone for the student's key.
        last = _changelog(s)
        assert gone.encode() in last and last[gone.encode()] is None, "no tombstone for the erased student"
        assert last[kept.encode()] is not None

        # The API call: admin keys only; answered at once, complete in the background.
        third = sorted(expected)[2]
        url = f"{worker.url}/v1/users/{third}"
        for role_key in (s.write_keys[0], s.server_keys[0]):
            bearer = {"Authorization": f"Bearer {role_key.partition(':')[2]}"}
            assert httpx.delete(url, headers=bearer, timeout=10).status_code == 403
        admin = {"Authorization": f"Bearer {s.admin_keys[0].partition(':')[2]}"}
        accepted = httpx.delete(url, headers=admin, timeout=30)
        assert accepted.status_code == 202, accepted.text
        status_url = f"{worker.url}/v1/erasures/{accepted.json()['erasure_id']}"
        assert wait_for(lambda: httpx.get(status_url, headers=admin).json()["status"] != "in_progress", timeout=120)
        assert httpx.get(status_url, headers=admin).json()["status"] == "complete"
        assert worker.engagement(third).status_code == 404
        assert set(_rows(client, s.clickhouse_database, third).values()) == {0}
        unknown = httpx.get(f"{worker.url}/v1/erasures/erasure-never-asked", headers=admin, timeout=30)
        assert unknown.status_code == 404

        # The warehouse half was the sinks service's (the worker only sent the request): it logged each erasure,
        # and its consumer of the erasure requests committed all three.
        sinks_log = (tmp_path / "sinks.log").read_text()
        for erasure_id in (cli_erasure, again.erasure_id, accepted.json()["erasure_id"]):
            assert f"erasure {erasure_id}: complete" in sinks_log, sinks_log[-2000:]
        assert group_lag(s.kafka, sink_group("erasures"), topics.erasure_requests.name) == 0

        # New events after the erasure start a new, empty record.
        _send(s, [e for e in events if e["user_id"] == gone][:3])
        assert wait_for(lambda: worker.engagement(gone).status_code == 200, timeout=60)
        assert worker.engagement(gone).json()["signals"]["events_total"] == 3

    confirmations = read_topic(s.kafka, topics.erasures.name, expect=3, timeout=10)
    assert [c["found"] for c in confirmations] == [True, False, True]
    assert all(gone not in orjson.dumps(c).decode() for c in confirmations), "the audit trail names the student"
    reports = read_topic(s.kafka, topics.erasure_reports.name, expect=3, timeout=10)
    assert [ErasureReport.model_validate(r).complete for r in reports] == [True, True, True]
    assert [r["worker_had_state"] for r in reports] == [True, False, True]
    assert all(u not in orjson.dumps(r).decode() for r in reports for u in (gone, third)), "a report names them"
