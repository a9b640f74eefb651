"""Kafka beyond one broker (#27): a bootstrap list, and topics and changelogs created with the replication the
settings ask for (RF and min.insync.replicas come from the deployment; partitions and retention from the contract,
``schemas.topics``)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.settings import Settings
from kafka_io.admin import Replication, new_topics
from schemas.topics import catalogue


def test_new_topics_carry_the_replication_and_keep_the_contracts_config() -> None:
    specs = catalogue("t", 4).all()
    made = new_topics(specs, existing={specs[0].name}, replication=Replication(3, 2))
    assert [t.topic for t in made] == [s.name for s in specs[1:]], "existing topics are left as they are"
    for topic, spec in zip(made, specs[1:], strict=True):
        assert topic.replication_factor == 3 and topic.num_partitions == spec.partitions
        assert topic.config == {**spec.config(), "min.insync.replicas": "2"}


def test_the_default_is_one_copy_as_before() -> None:
    (topic,) = new_topics(catalogue("t", 4).all()[:1], set(), Replication())
    assert topic.replication_factor == 1 and topic.config["min.insync.replicas"] == "1"


def test_settings_give_the_replication_and_refuse_an_insync_count_above_it() -> None:
    assert Replication(
        *Settings(kafka_replication_factor=3, kafka_min_insync_replicas=2).kafka_replication
    ) == Replication(3, 2)
    with pytest.raises(ValidationError, match=r"kafka_min_insync_replicas \(3\) must be at most"):
        Settings(kafka_replication_factor=2, kafka_min_insync_replicas=3)
    with pytest.raises(ValueError, match="between 1 and the replication factor"):
        Replication(1, 2)


def test_a_bootstrap_list_reaches_every_client_and_faust_reads_each_broker() -> None:
    import faust

    s = Settings(kafka_bootstrap_servers="k1:9092,k2:9092,k3:9092")
    assert s.kafka.bootstrap == "k1:9092,k2:9092,k3:9092"
    assert Settings(kafka_host="h", kafka_port=1).kafka.bootstrap == "h:1"  # unset: the local broker
    app = faust.App("bootstrap-list-test", broker=f"kafka://{s.kafka}", web_enabled=False)
    assert [(u.scheme, u.host, u.port) for u in app.conf.broker] == [("kafka", f"k{i}", 9092) for i in (1, 2, 3)]
