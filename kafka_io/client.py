"""How every client reaches Kafka: the bootstrap list and the security (TLS, SASL/SCRAM), in one place.

Each confluent-kafka producer, consumer and admin client is configured by ``kafka_conf`` and the Faust worker by
the same ``KafkaClient`` (``streams.worker.app``), so a cluster that requires SCRAM over TLS is one set of settings
(``Settings.kafka``), not a change in every component. A plain ``"host:port,..."`` string still works where no
security is needed (tests, tools on loopback).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]


class KafkaConfigError(ValueError):
    """The Kafka client settings contradict each other (named in the message)."""


@dataclass(frozen=True, slots=True)
class KafkaClient:
    """Where Kafka is and how to authenticate; ``str()`` is the bootstrap list (no secret in logs)."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""  # CA certificate(s) that signed the brokers' certificates ('': the system's store)

    def __post_init__(self) -> None:
        if not self.bootstrap.strip():
            raise KafkaConfigError("kafka bootstrap servers are empty")
        if self.sasl and not (self.username and self.password):
            raise KafkaConfigError(
                f"security protocol {self.security_protocol} needs a SASL username and password "
                "(ENGAGE_KAFKA_SASL_USERNAME, ENGAGE_KAFKA_SASL_PASSWORD)"
            )
        if self.ca_file and not self.tls:
            raise KafkaConfigError(
                f"a CA file is set ({self.ca_file}) but security protocol {self.security_protocol} uses no TLS "
                "(SSL or SASL_SSL)"
            )

    def __str__(self) -> str:
        return self.bootstrap

    @property
    def sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def servers(self) -> list[str]:
        """The bootstrap list as ``host:port`` items."""
        return [s.strip() for s in self.bootstrap.split(",") if s.strip()]

    def conf(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """librdkafka configuration: the connection and security, then ``extra`` (client-specific keys)."""
        conf: dict[str, Any] = {"bootstrap.servers": ",".join(self.servers)}
        if self.security_protocol != "PLAINTEXT":
            conf["security.protocol"] = self.security_protocol
        if self.sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.username
            conf["sasl.password"] = self.password
        if self.tls and self.ca_file:
            conf["ssl.ca.location"] = self.ca_file
        conf.update(extra or {})
        return conf


Kafka = KafkaClient | str  # a plain string: bootstrap servers, no security


def kafka_client(kafka: Kafka) -> KafkaClient:
    return kafka if isinstance(kafka, KafkaClient) else KafkaClient(kafka)


def kafka_conf(kafka: Kafka, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The librdkafka configuration of a client of ``kafka`` (the only place that writes ``bootstrap.servers``)."""
    return kafka_client(kafka).conf(extra)
