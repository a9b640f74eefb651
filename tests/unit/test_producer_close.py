"""Closing an EventProducer releases librdkafka's handle: nothing keeps reconnecting to a broker that is gone, a
message still undelivered fails to its sender, and sending afterwards is a clear error (no broker needed)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from kafka_io.producer import EventProducer
from schemas.topics import catalogue


def test_close_fails_what_is_undelivered_releases_the_handle_and_is_idempotent() -> None:
    reports: list[KafkaError | None] = []
    producer = EventProducer("127.0.0.1:1", catalogue("unit-test", 1), source="unit-close", config={"log_level": 0},
                             on_delivery=lambda err, _msg: reports.append(err))  # fmt: skip
    producer.send_encoded(b"k", b"v")
    assert producer.close(timeout=0.2) == 1  # nothing can deliver it
    assert len(reports) == 1 and reports[0] is not None  # its sender was told
    assert producer._poller is not None and not producer._poller.is_alive()
    assert producer.close() == 0  # closing again is harmless
    with pytest.raises(RuntimeError, match="closed"):
        producer.send_encoded(b"k", b"v")
