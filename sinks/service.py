"""Run one or more sinks in one process, each in its own thread, until SIGTERM (or idle, for tests).

Besides the table sinks (``SINK_NAMES``) the service runs the warehouse half of erasures (``erasures``,
``sinks.erasure``): it deletes what the table sinks stored, so it is not one of the sinks it waits for."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from config.settings import Settings
from kafka_io.admin import check_kafka
from kafka_io.producer import EventProducer
from schemas.topics import catalogue
from sinks.base import BatchingSink
from sinks.behavior_events import BehaviorEventsSink
from sinks.clickhouse.client import check_connection
from sinks.contract_sinks import SPECS, ContractSink
from sinks.positions import ERASURES, source_of
from sinks.runner import RunnerStats, SinkRunner

log = logging.getLogger(__name__)


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
    "xp-awards": Batching(50_000, 2.0),  # about one award per active event: the busiest after events
    "level-ups": Batching(10_000, 2.0),
    "achievements": Batching(10_000, 2.0),
    "celebrations": Batching(10_000, 2.0),
    "leaderboard-snapshots": Batching(10_000, 2.0),
    "league-results": Batching(10_000, 5.0),  # a burst once a week (a result per student who played), else quiet
    "exposures": Batching(10_000, 2.0),  # one per message an experiment shaped
    "profiles": Batching(50_000, 5.0),  # one per student and local day: a quiet topic, larger parts
    "bandit-outcomes": Batching(10_000, 5.0),  # one per bandit-chosen intervention, a week after it: quiet
    ERASURES: Batching(1, 0.0),  # rare, each carried out on its own, as soon as it comes
}


def batching_for(settings: Settings, name: str) -> Batching:
    default = BATCHING[name]
    if name == ERASURES:
        return default  # the overrides are about table inserts
    return Batching(
        settings.sink_batch_rows if settings.sink_batch_rows is not None else default.rows,
        settings.sink_batch_seconds if settings.sink_batch_seconds is not None else default.seconds,
    )


def _sink(settings: Settings, name: str, producer: EventProducer) -> BatchingSink:
    if name == "events":
        return BehaviorEventsSink(settings)
    if name == ERASURES:
        from sinks.erasure import ErasureSink

        return ErasureSink(settings, producer)
    return ContractSink(settings, SPECS[name])


def build_runners(
    settings: Settings,
    names: Sequence[str],
    dead_letters: EventProducer,
    runner_class: type[SinkRunner] = SinkRunner,
) -> list[SinkRunner]:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    runners = []
    for name in names:
        _, topic = source_of(topics, name)
        sink = _sink(settings, name, dead_letters)
        batching = batching_for(settings, name)
        runners.append(
            runner_class(
                sink,
                bootstrap=settings.kafka,
                topic=topic,
                # A dead letter that cannot be stored is logged, not dead-lettered again (no loop).
                dead_letters=None if name == "dead-letters" else dead_letters,
                batch_rows=batching.rows,
                batch_seconds=batching.seconds,
                # An erasure waits for the worker, the sinks and ClickHouse (up to 3 x 120 s) while the next
                # request is held: the consumer must not be taken for dead meanwhile.
                consumer_config={"max.poll.interval.ms": 900_000} if name == ERASURES else None,
            )
        )
    return runners


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """Serve the sinks' Prometheus metrics on ``bind_host``:``sink_metrics_port`` in a daemon thread; the server
    (``shutdown()`` stops it), or None when the port is 0.

    A port already in use (a second sink process on this machine) is logged, not fatal: the sinks run anyway."""
    if not settings.sink_metrics_port:
        return None
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(settings.sink_metrics_port, addr=settings.bind_host)
    except OSError as exc:
        log.warning("sink metrics not served on %s:%d: %s", settings.bind_host, settings.sink_metrics_port, exc)
        return None
    return server


def run_sinks(
    settings: Settings,
    names: Sequence[str],
    idle_exit: float | None = None,
    runner_class: type[SinkRunner] = SinkRunner,
) -> dict[str, RunnerStats]:
    check_connection(settings)  # wrong credentials: a clear error now, not at the first insert
    check_kafka(settings.kafka)  # the same for Kafka's (librdkafka would retry them without end)
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    dead = EventProducer(settings.kafka, topics, source="sink")
    runners = build_runners(settings, names, dead, runner_class)
    results: dict[str, RunnerStats] = {}

    def stop(*_: object) -> None:
        for r in runners:
            r.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    failed: list[str] = []

    def run_one(r: SinkRunner) -> None:
        # A sink whose thread dies must take the process down (to be restarted), not leave it half alive.
        try:
            results[r.sink.name] = r.run(idle_exit_seconds=idle_exit)
        except Exception:
            log.exception("sink %s stopped on an error; stopping every sink of this process", r.sink.name)
            failed.append(r.sink.name)
            stop()

    threads = [threading.Thread(target=run_one, args=(r,), name=f"sink-{r.sink.name}") for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dead.close()
    if failed:
        raise RuntimeError(f"sinks failed: {', '.join(failed)} (see the log)")
    return results
