"""The engine's per-user job written with Quix Streams, the best-known Python alternative, for the benchmark.

It runs in a venv of its own (``engage.bench.peer.venv``: Quix Streams pins an older confluent-kafka than the
engine) with the repository on ``PYTHONPATH``, and does for every message of the events topic exactly what
our worker does for a student's batch: fold the events into the student's record (signals, streaks, dedupe)
kept in Quix's RocksDB state, re-score with the same model and policy, and emit the risk update; for a
``PartitionBatch`` message, that for every student in it, with one model call. The only
differences are the framework and the design around the domain calls, which is what the benchmark compares.

Usage: python -m engage.bench.peer.quix_app IN_TOPIC OUT_TOPIC BOOTSTRAP GROUP STATE_DIR IDLE_SECONDS
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from models.base import RiskModel
from models.heuristic import HeuristicModel
from processors.pipeline import ScoreRequest, UserRecord, ingest, rescore
from processors.policy import PolicyConfig, policy_from_file


def _newest(events: list[dict[str, Any]], field: str) -> datetime | None:
    times = [datetime.fromisoformat(e[field]) for e in events if isinstance(e.get(field), str)]
    return max(times) if times else None


def fold_and_score(value: bytes, state: Any, model: RiskModel, policy: PolicyConfig) -> list[bytes]:
    """The peer's whole work for one message: fold each student's batch into their record (``state``: Quix's
    per-key store, ``get``/``set``), re-score them in one model call, and return the risk updates to emit.
    A function of its own so that the bench's comparison can be tested on exactly what the peer computes."""
    message = orjson.loads(value)
    # An EventBatch (one student, keyed by them) or a PartitionBatch (the students of one partition, keyed
    # by the partition): state is kept per student id under the message's key either way.
    batches = message.get("batches", [message])
    records, requests = [], []
    now = datetime.now(UTC)
    for one in batches:
        user, events = one["user_id"], one["events"]
        stored = state.get(user)  # Quix keeps state values as JSON (orjson) itself: a dict, not our bytes
        record = UserRecord.from_dict(stored) if stored else UserRecord.load(None, user)
        ingest(record, user, events)
        newest = _newest(events, "event_time")
        records.append(record)
        requests.append(ScoreRequest(user, newest or now, "events", newest, _newest(events, "received_at")))
    outcomes = rescore(records, requests, model, policy, now)  # one model call per message, as ours per gather
    for record, request in zip(records, requests, strict=True):
        state.set(request.user_id, record.to_dict())
    return [outcome.update.model_dump_json().encode() for outcome in outcomes]


def main(in_topic: str, out_topic: str, bootstrap: str, group: str, state_dir: str, idle_seconds: float) -> None:
    from quixstreams import Application  # type: ignore[import-not-found,unused-ignore]

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        processing_guarantee="at-least-once",
    )
    source = app.topic(in_topic, key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(out_topic, key_serializer="bytes", value_serializer="bytes")
    model, policy = HeuristicModel(), policy_from_file()

    def process(value: bytes, state: Any) -> list[bytes]:
        return fold_and_score(value, state, model, policy)

    app.dataframe(source).apply(process, stateful=True, expand=True).to_topic(sink)
    app.run(timeout=idle_seconds)


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], a[4], float(a[5]))
