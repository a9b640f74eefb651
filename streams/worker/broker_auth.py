"""The worker's Kafka credentials for Faust (aiokafka), from the same ``KafkaClient`` every other client uses."""

from __future__ import annotations

import ssl

import faust
from faust.types.auth import CredentialsT

from kafka_io.client import KafkaClient


def tls_context(kafka: KafkaClient) -> ssl.SSLContext:
    """Verifies the brokers' certificates and host names against ``ca_file`` (or the system's CAs)."""
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=kafka.ca_file or None)


def faust_credentials(kafka: KafkaClient) -> CredentialsT | None:
    """Faust's ``broker_credentials`` for ``kafka``'s security protocol (None: plaintext)."""
    if kafka.sasl:
        return faust.SASLCredentials(
            username=kafka.username,
            password=kafka.password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=tls_context(kafka) if kafka.tls else None,  # SASL_SSL with a context, else SASL_PLAINTEXT
        )
    if kafka.tls:
        return faust.SSLCredentials(tls_context(kafka))
    return None
