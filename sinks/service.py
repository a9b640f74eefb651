"""Run one or more sinks in one process, each in its own thread, until SIGTERM (or idle, for tests)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence

from engage.settings import Settings
from schemas.topics import catalogue
from sinks.base import BatchingSink
from sinks.behavior_events import BehaviorEventsSink
from sinks.contract_sinks import SPECS, ContractSink
from sinks.runner import RunnerStats, SinkRunner
from streams.producer import EventProducer

SINK_NAMES = ("events", *SPECS)


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
        runners.append(
            SinkRunner(
                sink,
                bootstrap=settings.kafka_bootstrap,
                topic=topic,
                # A dead letter that cannot be stored is logged, not dead-lettered again (no loop).
                dead_letters=None if name == "dead-letters" else dead_letters,
                batch_rows=settings.sink_batch_rows,
                batch_seconds=settings.sink_batch_seconds,
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
