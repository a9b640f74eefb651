"""Session fixtures: the real Kafka and ClickHouse servers, started by the same code as `make up`.

Each test session gets its own directory, free ports and a unique topic prefix and database, and stops
both servers by PID at the end. Unit tests never touch these fixtures.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT, Settings
from deploy.infra import Infra
from deploy.process import free_ports
from kafka_io.admin import ensure_topics
from schemas.topics import catalogue


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    run = tmp_path_factory.mktemp("engage-run")
    kafka, controller, clickhouse, clickhouse_http, collector = free_ports(5)
    return Settings(
        run_dir=run,
        cache_dir=Path(os.environ.get("ENGAGE_CACHE_DIR", PROJECT_ROOT / ".cache")),
        kafka_port=kafka,
        kafka_controller_port=controller,
        clickhouse_port=clickhouse,
        clickhouse_http_port=clickhouse_http,
        clickhouse_database=f"engage_test_{uuid.uuid4().hex[:8]}",
        topic_prefix=f"test-{uuid.uuid4().hex[:8]}",
        collector_port=collector,
        kafka_heap="768m",
        sink_batch_seconds=0.3,
    )


@pytest.fixture(scope="session")
def infra(settings: Settings) -> Iterator[Infra]:
    infra = Infra.from_settings(settings)
    try:
        for started in infra.up():
            print(f"\n[infra] {started.name} ready in {started.seconds_to_ready:.2f} s (pid {started.pid})")
        ensure_topics(settings.kafka, catalogue(settings.topic_prefix, settings.event_partitions).all())
        yield infra
    finally:
        infra.down()
