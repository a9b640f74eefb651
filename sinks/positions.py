"""The sinks by name, the topic each reads, and how far each has stored: what ``engage sink`` runs, and what an
erasure or a test waits on (a sink has stored a message once its consumer group committed past it)."""

from __future__ import annotations

from collections.abc import Sequence

from config.settings import Settings
from kafka_io.admin import group_positions
from schemas.topics import TopicCatalogue, catalogue
from sinks.behavior_events import BehaviorEventsSink
from sinks.contract_sinks import SPECS
from sinks.runner import sink_group

SINK_NAMES = ("events", *SPECS)  # the sinks that store a topic in a table
ERASURES = "erasures"
SERVICE_NAMES = (*SINK_NAMES, ERASURES)  # what ``engage sink all`` runs


def source_of(topics: TopicCatalogue, name: str) -> tuple[str, str]:
    """(sink name, topic it reads) for a sink name given on the command line."""
    if name == "events":
        return BehaviorEventsSink.name, topics.events.name
    if name in SPECS:
        return SPECS[name].name, SPECS[name].topic(topics)
    if name == ERASURES:
        return ERASURES, topics.erasure_requests.name
    raise ValueError(f"unknown sink {name!r}; known: {', '.join(SERVICE_NAMES)}")


def sink_positions(settings: Settings, names: Sequence[str] = SINK_NAMES) -> dict[str, dict[int, tuple[int, int]]]:
    """Per sink and partition of its topic: (offset committed, i.e. stored, or the log start if none; log end)."""
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    out: dict[str, dict[int, tuple[int, int]]] = {}
    for name in names:
        sink_name, topic = source_of(topics, name)
        out[name] = group_positions(settings.kafka, sink_group(sink_name), topic)
    return out


def sink_lag(settings: Settings, names: Sequence[str] = SINK_NAMES) -> dict[str, int]:
    """Messages each sink's consumer group has not committed yet (0 = everything stored), by sink name."""
    return {
        name: sum(high - done for done, high in parts.values())
        for name, parts in sink_positions(settings, names).items()
    }
