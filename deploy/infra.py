"""`make up` / `make down` / `make status`: both local servers, configured from the settings object.

The test suite's session fixtures call the same functions with their own temporary settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from deploy import clickhouse_server, kafka_server
from deploy.process import Started


@dataclass(frozen=True)
class Infra:
    kafka: kafka_server.KafkaConfig
    clickhouse: clickhouse_server.ClickHouseConfig

    @classmethod
    def from_settings(cls, s: Settings) -> Infra:
        return cls(
            kafka=kafka_server.KafkaConfig(
                workdir=s.run_dir / "kafka",
                cache_dir=s.cache_dir,
                version=s.kafka_version,
                host=s.kafka_host,
                port=s.kafka_port,
                controller_port=s.kafka_controller_port,
                heap=s.kafka_heap,
                default_partitions=s.event_partitions,
            ),
            clickhouse=clickhouse_server.ClickHouseConfig(
                workdir=s.run_dir / "clickhouse",
                host=s.clickhouse_host,
                tcp_port=s.clickhouse_port,
                http_port=s.clickhouse_http_port,
            ),
        )

    def up(self) -> list[Started]:
        return [clickhouse_server.start(self.clickhouse), kafka_server.start(self.kafka)]

    def down(self) -> dict[str, bool]:
        return {"kafka": kafka_server.stop(self.kafka), "clickhouse": clickhouse_server.stop(self.clickhouse)}

    def status(self) -> dict[str, str]:
        return {
            "kafka": kafka_server.status(self.kafka),
            "clickhouse": clickhouse_server.status(self.clickhouse),
        }
