"""`make up` / `make down` / `make status`: both local servers, configured from the settings object.

The test suite's session fixtures call the same functions with their own temporary settings. Both servers
go through the one start/stop/status of ``deploy.server``.
"""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from deploy import server
from deploy.clickhouse_server import ClickHouseServer
from deploy.kafka_server import KafkaServer
from deploy.process import Started


@dataclass(frozen=True)
class Infra:
    kafka: KafkaServer
    clickhouse: ClickHouseServer

    @classmethod
    def from_settings(cls, s: Settings) -> Infra:
        return cls(
            kafka=KafkaServer(
                workdir=s.run_dir / "kafka",
                cache_dir=s.cache_dir,
                version=s.kafka_version,
                host=s.kafka_host,
                port=s.kafka_port,
                controller_port=s.kafka_controller_port,
                heap=s.kafka_heap,
                default_partitions=s.event_partitions,
            ),
            clickhouse=ClickHouseServer(
                workdir=s.run_dir / "clickhouse",
                host=s.clickhouse_host,
                tcp_port=s.clickhouse_port,
                http_port=s.clickhouse_http_port,
                user=s.clickhouse_user,
                password=s.clickhouse_password.get_secret_value(),
            ),
        )

    def up(self) -> list[Started]:
        return [server.start(self.clickhouse), server.start(self.kafka)]

    def down(self) -> dict[str, bool]:
        return {"kafka": server.stop(self.kafka), "clickhouse": server.stop(self.clickhouse)}

    def status(self) -> dict[str, str]:
        return {"kafka": server.status(self.kafka), "clickhouse": server.status(self.clickhouse)}
