"""A deliberately broken worker, for proving the chaos verifier sees doubled outputs: it emits each twice.

`engage chaos --double-emitting-worker` runs this instead of `engage worker` (with the same arguments). Every
risk update, intervention and milestone goes out once as it should and once more under a fresh id: the classic
bug of ids that are not derived from what they name (a retry then becomes a second output that no reader can
drop). A correct verifier must report them counted twice. Never used outside chaos and the tests that prove a
check can fail.
"""

from __future__ import annotations

import uuid

import orjson

from kafka_io.producer import DeliveryCallback, EventProducer


class EmitsTwice(EventProducer):
    """The worker's output producer, sending each output a second time under a new id."""

    def send_encoded(
        self,
        key: bytes,
        value: bytes | None,
        callback: DeliveryCallback | None = None,
        topic: str | None = None,
        partition: int = -1,
        timestamp: int = 0,
    ) -> None:
        super().send_encoded(key, value, callback, topic, partition, timestamp)
        ids = {
            self.topics.risk_updates.name: "update_id",
            self.topics.interventions.name: "intervention_id",
            self.topics.streak_milestones.name: "milestone_id",
            self.topics.achievements.name: "unlock_id",
        }
        id_field = ids.get(topic or "")
        if topic == self.topics.xp_awards.name and value is not None:  # an award's id is made of its source
            doc = orjson.loads(value)
            doc["awards"] = [[rule, f"{source}:{uuid.uuid4().hex[:8]}", *rest] for rule, source, *rest in doc["awards"]]
            super().send_encoded(key, orjson.dumps(doc), None, topic, partition)
        elif id_field is not None and value is not None:
            doc = orjson.loads(value)
            doc[id_field] = f"{doc[id_field]}:{uuid.uuid4().hex[:8]}"
            super().send_encoded(key, orjson.dumps(doc), None, topic, partition)


def main() -> None:
    """``python -m engage.chaos.broken_worker worker --loglevel info``: the CLI's arguments, this producer."""
    import streams.worker.app as worker_app
    from engage.cli import main as cli

    worker_app.EventProducer = EmitsTwice  # type: ignore[attr-defined]  # the worker builds its producer by this name
    cli()


if __name__ == "__main__":
    main()
