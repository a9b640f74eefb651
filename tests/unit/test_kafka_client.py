"""One description of how clients reach Kafka (``kafka_io.client``): what librdkafka is given for each security
protocol, contradictory settings refused naming them, and no client configured anywhere else (#27)."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings
from kafka_io.client import KafkaClient, KafkaConfigError, kafka_conf


def test_plaintext_is_the_bootstrap_list_alone() -> None:
    assert kafka_conf("k1:9092, k2:9092", {"group.id": "g"}) == {
        "bootstrap.servers": "k1:9092,k2:9092",
        "group.id": "g",
    }


def test_scram_over_tls_reaches_librdkafka_and_stays_out_of_the_repr() -> None:
    s = Settings(kafka_bootstrap_servers="k1:9093,k2:9093", kafka_security_protocol="SASL_SSL",
                 kafka_sasl_username="engage", kafka_sasl_password=SecretStr("s3cret"),
                 kafka_ssl_ca_file="/etc/engage/ca.pem")  # fmt: skip
    assert s.kafka.conf({"acks": "all"}) == {
        "bootstrap.servers": "k1:9093,k2:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "engage",
        "sasl.password": "s3cret",
        "ssl.ca.location": "/etc/engage/ca.pem",
        "acks": "all",
    }
    assert "s3cret" not in repr(s.kafka) and str(s.kafka) == "k1:9093,k2:9093"
    tls_only = KafkaClient("k:9093", "SSL", ca_file="/ca.pem").conf()
    assert tls_only == {"bootstrap.servers": "k:9093", "security.protocol": "SSL", "ssl.ca.location": "/ca.pem"}


def test_contradictory_settings_are_refused_naming_them() -> None:
    with pytest.raises(KafkaConfigError, match="SASL_SSL needs a SASL username and password"):
        _ = Settings(kafka_security_protocol="SASL_SSL").kafka
    with pytest.raises(KafkaConfigError, match="uses no TLS"):
        KafkaClient("h:1", "SASL_PLAINTEXT", username="u", password="p", ca_file="/ca.pem")
    with pytest.raises(KafkaConfigError, match="empty"):
        KafkaClient(" ")


def test_no_client_is_configured_outside_kafka_io_client() -> None:
    """Every producer, consumer and admin client gets its connection from ``kafka_conf`` (so from the security
    settings): a literal ``bootstrap.servers`` elsewhere would be a client that ignores them. The local broker's
    own readiness probe (plaintext, its own listener) is the one exception."""
    allowed = {PROJECT_ROOT / "kafka_io" / "client.py", PROJECT_ROOT / "deploy" / "kafka_server.py"}
    offenders = []
    for path in PROJECT_ROOT.rglob("*.py"):
        inside = path.relative_to(PROJECT_ROOT).parts
        if (
            any(part.startswith(".") or part == "node_modules" for part in inside)
            or path in allowed
            or path == PROJECT_ROOT / "tests" / "unit" / "test_kafka_client.py"
        ):
            continue
        if re.search(r"[\"']bootstrap\.servers[\"']", path.read_text()):
            offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []
