"""Small helpers for integration tests: a real uvicorn collector in a thread, reading topics, queries."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import uvicorn
from confluent_kafka import Consumer, KafkaError, TopicPartition

from config.settings import Settings
from kafka_io.client import Kafka, kafka_conf
from streams.collector.app import create_app


@contextmanager
def running_collector(settings: Settings) -> Iterator[str]:
    """Serve the collector with uvicorn on its configured loopback port; yield its base URL."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=settings.collector_port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{settings.collector_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    else:
        raise RuntimeError("collector did not become ready")
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def read_topic(bootstrap: Kafka, topic: str, *, expect: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Read a topic from the beginning until ``expect`` messages were seen or ``timeout`` passed."""
    consumer = Consumer(
        kafka_conf(
            bootstrap,
            {
                "group.id": f"test-reader-{time.monotonic_ns()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(msg.error())
            out.append(orjson.loads(msg.value()))
    finally:
        consumer.close()
    return out


def read_to_end(bootstrap: Kafka, topic: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every message on ``topic``: its end offsets are taken first and each partition is read exactly up to them.

    Not "for a while": what a test judges ("at most once") must be all there is. So call it only once whatever
    writes the topic is done (the producer flushed, the worker stopped or its outputs acknowledged): an output
    still in flight is past the end offsets taken here. ``timeout`` only bounds a broker that does not answer;
    messages below the end offsets that cannot be read are an error, not a shorter list."""
    consumer = Consumer(kafka_conf(bootstrap, {"group.id": f"test-reader-{time.monotonic_ns()}",
                         "enable.auto.commit": False}))  # fmt: skip
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
        left = {p: (low, high) for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _) in left.items()])
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while left:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{topic}: partitions {sorted(left)} not read to their end offsets")
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise RuntimeError(msg.error())
            partition = msg.partition()
            if partition not in left or msg.offset() >= left[partition][1]:
                continue  # written after the end offsets were taken
            out.append(orjson.loads(msg.value()))
            if msg.offset() + 1 >= left[partition][1]:
                del left[partition]
        return out
    finally:
        consumer.close()
