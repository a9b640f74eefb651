"""``ensure_topics`` asks again for topics whose CreateTopics answer was lost with its connection (a clean clone's
cluster chaos run: librdkafka dropped the bootstrap broker's handle, _DESTROY_BROKER). The admin client here is a
stand-in that answers as that run's broker did; the real path runs in the cluster tests."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from kafka_io import admin
from schemas.topics import catalogue


def _answer(code: int | None) -> Future[None]:
    future: Future[None] = Future()
    if code is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(KafkaError(code)))
    return future


class _Admin:
    """Answers each CreateTopics call from a script: a list of {topic: error code or None} per call."""

    def __init__(self, script: list[dict[str, int | None]]) -> None:
        self.script = script
        self.asked: list[list[str]] = []

    def create_topics(self, topics: list[Any], operation_timeout: float) -> dict[str, Future[None]]:
        names = [t.topic for t in topics]
        self.asked.append(names)
        answers = self.script[len(self.asked) - 1]
        return {n: _answer(answers.get(n)) for n in names}


def _run(monkeypatch: pytest.MonkeyPatch, script: list[dict[str, int | None]]) -> tuple[list[str], _Admin]:
    fake = _Admin(script)
    monkeypatch.setattr(admin, "connect_admin", lambda kafka, timeout: (fake, SimpleNamespace(topics={}, brokers={})))
    monkeypatch.setattr(admin, "_wait_for_leaders", lambda a, names, timeout: None)
    monkeypatch.setattr(admin.time, "sleep", lambda s: None)
    specs = [catalogue("t", 2).events, catalogue("t", 2).risk_updates]
    return admin.ensure_topics("127.0.0.1:1", specs), fake


def test_a_lost_answer_is_asked_again_and_a_topic_it_had_created_counts_as_created(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events, risk = catalogue("t", 2).events.name, catalogue("t", 2).risk_updates.name
    created, fake = _run(
        monkeypatch,
        [{risk: KafkaError._DESTROY_BROKER}, {risk: KafkaError.TOPIC_ALREADY_EXISTS}],
    )
    assert fake.asked == [[events, risk], [risk]]
    assert sorted(created) == sorted([events, risk])  # waited for leaders too


def test_a_lost_answer_every_time_is_raised_after_the_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    risk = catalogue("t", 2).risk_updates.name
    lost = {risk: KafkaError._DESTROY_BROKER}
    with pytest.raises(KafkaException):
        _run(monkeypatch, [lost] * admin.CREATE_ATTEMPTS)


def test_other_refusals_are_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    risk = catalogue("t", 2).risk_updates.name
    with pytest.raises(KafkaException):
        _run(monkeypatch, [{risk: KafkaError.POLICY_VIOLATION}])
