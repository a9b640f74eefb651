"""The processors benchmark's baseline: the straightforward Faust design, one event per message.

Same job as the real worker — fold the event into the student's state, take a signal snapshot, score it with
the heuristic, send a risk update — but the obvious way: default Faust settings, ``async for`` one event at a
time, one table write (changelog message) and one output message per event.
Run: python -m engage.bench.naive_worker TOPIC OUT_TOPIC BOOTSTRAP WEB_PORT DATADIR
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from models.heuristic import HeuristicModel
from processors.signals import apply_events, snapshot
from processors.state import UserState


def create_app(topic: str, out_topic: str, bootstrap: str, web_port: int, datadir: str) -> faust.App:
    app = faust.App(
        f"naive-{topic}",
        broker=f"kafka://{bootstrap}",
        web_host="127.0.0.1",
        web_port=web_port,
        web_bind="127.0.0.1",
        datadir=datadir,
        store="memory://",
        consumer_auto_offset_reset="earliest",
        topic_partitions=4,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes)
    out = app.topic(out_topic, key_type=bytes, value_type=bytes)
    states = app.Table("naive-state", default=None, key_type=bytes, value_type=bytes, partitions=4)
    model = HeuristicModel()

    @app.agent(source)
    async def process(stream: Any) -> None:
        async for value in stream:
            message = orjson.loads(value)
            user = message["user_id"]
            key = user.encode()
            raw = states.get(key)
            state = UserState.from_dict(orjson.loads(raw)) if raw else None
            result = apply_events(state, user, message["events"])
            states[key] = orjson.dumps(result.state.to_dict())
            assessment = model.score(snapshot(result.state, datetime.now(UTC)))
            update = {"user_id": user, "received_at": message["events"][-1].get("received_at"),
                      "risk_7d": assessment.risk_7d, "tier": assessment.tier}  # fmt: skip
            await out.send(key=key, value=orjson.dumps(update))

    return app


if __name__ == "__main__":
    topic, out_topic, bootstrap, port, datadir = sys.argv[1:6]
    naive = create_app(topic, out_topic, bootstrap, int(port), datadir)
    runner = faust.Worker(naive, loglevel="warning", quiet=True)
    runner.spinner = None  # as in the real worker: the spinner turns on DEBUG records everywhere
    runner.execute_from_commandline()
