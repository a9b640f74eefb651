"""Run one or more sinks in one process, each in its own thread, until SIGTERM (or idle, for tests)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from engage.settings import Settings
from schemas.topics import catalogue
from sinks.base import BatchingSink
from sinks.behavior_events import BehaviorEventsSink
from sinks.contract_sinks import SPECS, ContractSink
from sinks.runner import RunnerStats, SinkRunner
from streams.producer import EventProducer

SINK_NAMES = ("events", *SPECS)


@dataclass(frozen=True)
class Batching:
    rows: int
    seconds: float


# Per table: the events table gets the big inserts; the engine's own topics are 10-100x quieter, so they wait
# longer to gather rows (fewer, larger parts) but never more than a few seconds, so dashboards stay fresh.
BATCHING: dict[str, Batching] = {
    "events": Batching(100_000, 1.0),
    "risk-updates": Batching(50_000, 2.0),
    "interventions": Batching(10_000, 2.0),
    "outcomes": Batching(10_000, 2.0),
    "milestones": Batching(10_000, 2.0),
    "dead-letters": Batching(10_000, 2.0),
}


def batching_for(settings: Settings, name: str) -> Batching:
    default = BATCHING[name]
    return Batching(
        settings.sink_batch_rows if settings.sink_batch_rows is not None else default.rows,
        settings.sink_batch_seconds if settings.sink_batch_seconds is not None else default.seconds,
    )


def build_runners(settings: Settings, names: Sequence[str], dead_letters: EventProducer) -> list[SinkRunner]:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    runners = []
    for name in names:
        sink: BatchingSink
        if name == "events":
            sink, topic = BehaviorEventsSink(settings), topics.events.name
        elif name in SPECS:
            sink, topic = ContractSink(settings, SPECS[name]), SPECS[name].topic(topics)
        else:
            raise ValueError(f"unknown sink {name!r}; known: {', '.join(SINK_NAMES)}")
        batching = batching_for(settings, name)
        runners.append(
            SinkRunner(
                sink,
                bootstrap=settings.kafka_bootstrap,
                topic=topic,
                # A dead letter that cannot be stored is logged, not dead-lettered again (no loop).
                dead_letters=None if name == "dead-letters" else dead_letters,
                batch_rows=batching.rows,
                batch_seconds=batching.seconds,
            )
        )
    return runners


def run_sinks(settings: Settings, names: Sequence[str], idle_exit: float | None = None) -> dict[str, RunnerStats]:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    dead = EventProducer(settings.kafka_bootstrap, topics, source="sink")
    runners = build_runners(settings, names, dead)
    results: dict[str, RunnerStats] = {}

    def stop(*_: object) -> None:
        for r in runners:
            r.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    threads = [
        threading.Thread(target=lambda r=r: results.__setitem__(r.sink.name, r.run(idle_exit_seconds=idle_exit)))
        for r in runners
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dead.close()
    return results
