"""Asking one broker for more copies than it can hold is refused with an error that says so (#27)."""

from __future__ import annotations

import uuid

import pytest

from config.settings import Settings
from deploy.infra import Infra
from kafka_io.admin import Replication, TopicsRefused, ensure_topics
from schemas.topics import catalogue

pytestmark = pytest.mark.integration


def test_a_replication_factor_above_the_brokers_is_refused_naming_the_setting(settings: Settings, infra: Infra) -> None:
    specs = catalogue(f"rf-{uuid.uuid4().hex[:6]}", 2).all()[:2]
    with pytest.raises(TopicsRefused) as refused:
        ensure_topics(settings.kafka, specs, replication=Replication(3, 2))
    message = str(refused.value)
    assert "replication factor 3" in message and "1 broker(s)" in message
    assert "ENGAGE_KAFKA_REPLICATION_FACTOR" in message
    # one copy, as a single broker holds it: created
    assert set(ensure_topics(settings.kafka, specs, replication=Replication(1, 1))) == {s.name for s in specs}
