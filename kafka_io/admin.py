"""Kafka administration: create the catalogue's topics idempotently, read how far a consumer group got, and
open a reader of a whole topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource  # as above
from confluent_kafka.admin._metadata import ClusterMetadata  # where it is defined (``admin`` re-exports it implicitly)
from confluent_kafka.admin._resource import ResourceType  # the same
from confluent_kafka.admin._scram import (  # the same
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from confluent_kafka.cimpl import NewTopic  # where it is defined and typed (``admin`` re-exports it implicitly)

from kafka_io.client import Kafka, kafka_conf
from schemas.topics import TopicSpec


@dataclass(frozen=True)
class Replication:
    """How many brokers hold each partition, and how many of them must have a write before Kafka acknowledges it
    (with ``acks=all``, which every producer here uses): a deployment's choice, not a contract's, so it comes from
    the settings (``kafka_replication_factor``, ``kafka_min_insync_replicas``), not from ``schemas.topics``."""

    factor: int = 1
    min_insync: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.min_insync <= self.factor:
            raise ValueError(
                f"min.insync.replicas {self.min_insync} must be between 1 and the replication factor {self.factor}"
            )

    def config(self) -> dict[str, str]:
        return {"min.insync.replicas": str(self.min_insync)}


class KafkaUnavailable(RuntimeError):
    """Kafka could not be reached or refused this client (the message says which and what to check)."""


# librdkafka errors that waiting will not cure: wrong credentials, a certificate that does not verify.
_FATAL_AT_START = {KafkaError._AUTHENTICATION, KafkaError._SSL}


def connect_admin(kafka: Kafka, timeout: float = 30.0) -> tuple[AdminClient, ClusterMetadata]:
    """An admin client that has read the cluster's metadata; ``KafkaUnavailable`` at once on wrong credentials or
    TLS (librdkafka would otherwise retry them until the timeout), or when no broker answers within ``timeout``.

    Every component calls this at start (through ``ensure_topics`` or ``check_kafka``), so a wrong password
    is a clear error there, not a process that hangs."""
    errors: list[KafkaError] = []
    # Quiet: the errors reach error_cb and the exception; librdkafka would log each retry (every 50-100 ms).
    admin = AdminClient(kafka_conf(kafka, {"error_cb": errors.append, "log_level": 0}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            return admin, admin.list_topics(timeout=min(0.5, max(0.1, deadline - time.monotonic())))
        except KafkaException as exc:
            errors.append(exc.args[0])
        admin.poll(0)  # serves error_cb: the authentication and TLS errors arrive there
        fatal = [e for e in errors if e.code() in _FATAL_AT_START]
        if fatal:
            raise KafkaUnavailable(
                f"Kafka at {kafka} refused this client: {fatal[-1].str()} (check ENGAGE_KAFKA_SECURITY_PROTOCOL, "
                "ENGAGE_KAFKA_SASL_MECHANISM, ENGAGE_KAFKA_SASL_USERNAME, ENGAGE_KAFKA_SASL_PASSWORD and "
                "ENGAGE_KAFKA_SSL_CA_FILE)"
            )
        if time.monotonic() >= deadline:
            last = errors[-1].str() if errors else "no answer"
            raise KafkaUnavailable(f"Kafka at {kafka} did not answer in {timeout:.0f} s: {last}")


def check_kafka(kafka: Kafka, timeout: float = 30.0) -> None:
    """Raise ``KafkaUnavailable`` unless ``kafka`` answers this client (see ``connect_admin``)."""
    connect_admin(kafka, timeout)


# A request whose answer was lost with the connection it went out on. Seen on a fresh 3-broker cluster: librdkafka
# 2.16 dropped the bootstrap broker's handle once it learnt the brokers' ids, and the CreateTopics request in flight
# on it failed with _DESTROY_BROKER (a clean clone's cluster chaos run). Asked again, a topic that was created after
# all answers TOPIC_ALREADY_EXISTS.
LOST_ANSWERS = frozenset({KafkaError._DESTROY_BROKER, KafkaError._TRANSPORT, KafkaError._TIMED_OUT})
CREATE_ATTEMPTS = 3


class TopicsRefused(RuntimeError):
    """Kafka refused to create a topic as configured (the message says why and which setting to change)."""


def new_topics(specs: Iterable[TopicSpec], existing: set[str], replication: Replication) -> list[NewTopic]:
    """The topics of ``specs`` not in ``existing``, as ``create_topics`` takes them."""
    return [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=replication.factor,
            config={**s.config(), **replication.config()},
        )
        for s in specs
        if s.name not in existing
    ]


def ensure_topics(
    kafka: Kafka, specs: Iterable[TopicSpec], timeout: float = 30.0, replication: Replication | None = None
) -> list[str]:
    """Create missing topics (with ``replication``, default one copy); return the names that were created now,
    once every partition of theirs has a leader (a created topic's partitions get theirs a moment later: a
    request in between is refused). Existing topics are left as they are."""
    replication = replication or Replication()
    admin, cluster = connect_admin(kafka, timeout)
    new = new_topics(specs, set(cluster.topics), replication)
    if not new:
        return []
    created: list[str] = []
    retried: set[str] = set()
    for attempt in range(1, CREATE_ATTEMPTS + 1):
        again = []
        for name, future in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                code = exc.args[0].code()
                if code == KafkaError.INVALID_REPLICATION_FACTOR:
                    raise TopicsRefused(
                        f"Kafka at {kafka} refused topic {name!r} with replication factor {replication.factor}: it "
                        f"has {len(cluster.brokers)} broker(s) (ENGAGE_KAFKA_REPLICATION_FACTOR, at most the number "
                        f"of brokers): {exc.args[0].str()}"
                    ) from exc
                if code == KafkaError.TOPIC_ALREADY_EXISTS:
                    if name in retried:  # the lost answer's request had created it
                        created.append(name)
                elif code in LOST_ANSWERS and attempt < CREATE_ATTEMPTS:
                    again.append(name)
                else:
                    raise
        if not again:
            break
        retried.update(again)
        new = [t for t in new if t.topic in again]
        time.sleep(0.5)
    _wait_for_leaders(admin, created, timeout)
    return created


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(names)
    while waiting:
        topics = admin.list_topics(timeout=timeout).topics
        waiting = {
            n
            for n in waiting
            if n not in topics or not topics[n].partitions or any(p.leader < 0 for p in topics[n].partitions.values())
        }
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout:.0f} s: {sorted(waiting)}")
        time.sleep(0.05)


def delete_topics(kafka: Kafka, names: Iterable[str], timeout: float = 30.0) -> None:
    admin = AdminClient(kafka_conf(kafka))
    for future in admin.delete_topics(list(names), operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise


def _committed(consumer: Consumer, parts: list[TopicPartition], timeout: float = 30.0) -> list[TopicPartition]:
    """Committed offsets, waiting out a coordinator that is still loading (a fresh or restarted broker)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return list(consumer.committed(parts, timeout=10))
        except KafkaException as exc:
            transient = exc.args[0].retriable() or "coordinator" in str(exc).lower()
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


_NO_LEADER_YET = frozenset(
    {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART}
)


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float = 30.0) -> tuple[int, int]:
    """A partition's (log start, log end), waiting out a leader that is still being elected or loaded (a topic
    created a moment ago answers NOT_LEADER_FOR_PARTITION for a while)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return low, high
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _NO_LEADER_YET) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def group_positions(kafka: Kafka, group: str, topic: str) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic``: (offset ``group`` committed, or the log start if none; log end)."""
    consumer = Consumer(kafka_conf(kafka, {"group.id": group}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        committed = {tp.partition: tp.offset for tp in _committed(consumer, parts)}
        positions = {}
        for tp in parts:
            low, high = _watermarks(consumer, tp)
            done = committed.get(tp.partition, -1)
            positions[tp.partition] = (done if done >= 0 else low, high)
        return positions
    finally:
        consumer.close()


def group_lag(kafka: Kafka, group: str, topic: str) -> int:
    """Messages of ``topic`` that ``group`` has not committed yet (0 = it has processed everything)."""
    return sum(high - done for done, high in group_positions(kafka, group, topic).values())


def group_assigned_partitions(kafka: Kafka, group: str, topic: str, timeout: float = 10.0) -> int:
    """How many partitions of ``topic`` the members of ``group`` hold between them right now."""
    admin = AdminClient(kafka_conf(kafka))
    description = admin.describe_consumer_groups([group], request_timeout=timeout)[group].result(timeout)
    return sum(
        1
        for member in description.members
        for tp in (member.assignment.topic_partitions if member.assignment else [])
        if tp.topic == topic
    )


def whole_topic_reader(kafka: Kafka, topic: str, name: str, timeout: float = 30.0) -> Consumer:
    """A consumer assigned every partition of ``topic`` from its beginning, in no consumer group (it never
    commits): for state every process needs whole (the course calendars, the bandit's outcomes), not a share."""
    consumer = Consumer(
        kafka_conf(
            kafka,
            {
                "group.id": f"{name}-{uuid.uuid4().hex[:8]}",  # required by the client; nothing is ever committed
                "enable.auto.commit": False,
            },
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        partitions = sorted(meta.partitions) if meta is not None and meta.partitions else [0]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    except BaseException:
        consumer.close()
        raise
    return consumer


_SCRAM = (ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512)


def set_scram_password(kafka: Kafka, user: str, password: str, iterations: int = 8192) -> None:
    """Create ``user`` or change its password, for both SCRAM mechanisms (the brokers keep the salted credentials
    in the cluster's metadata, so it holds on every broker at once). Connections open already stay open: SCRAM
    is checked when a client connects."""
    if not password:
        raise ValueError(f"an empty SCRAM password for {user!r}")
    admin, _ = connect_admin(kafka)
    for m in _SCRAM:  # one request each: Kafka refuses a request that alters one user twice
        upsert: list[UserScramCredentialAlteration] = [
            UserScramCredentialUpsertion(user, ScramCredentialInfo(m, iterations), password.encode())
        ]
        for future in admin.alter_user_scram_credentials(upsert).values():
            future.result()


def delete_scram_user(kafka: Kafka, user: str) -> None:
    """Remove ``user``'s SCRAM credentials (both mechanisms): it can no longer connect."""
    admin, _ = connect_admin(kafka)
    known = set(scram_users(kafka).get(user, []))
    deletions: list[UserScramCredentialAlteration] = [
        UserScramCredentialDeletion(user, m) for m in _SCRAM if m.name.replace("_", "-") in known
    ]
    if not deletions:
        raise KeyError(f"Kafka has no SCRAM user {user!r}")
    for deletion in deletions:  # one request each, as above
        for future in admin.alter_user_scram_credentials([deletion]).values():
            future.result()


def scram_users(kafka: Kafka) -> dict[str, list[str]]:
    """Every SCRAM user and its mechanisms (never a secret: Kafka returns salted credentials to nobody)."""
    admin, _ = connect_admin(kafka)
    described = admin.describe_user_scram_credentials()  # every user: one future for all of them
    assert not isinstance(described, dict)
    return {
        user: sorted(i.mechanism.name.replace("_", "-") for i in d.scram_credential_infos)
        for user, d in described.result().items()
    }


def set_listener_keystore(kafka: Kafka, broker: int, listener: str, location: str) -> None:
    """Make ``broker``'s ``listener`` serve the key and certificate in the keystore file at ``location`` (on the
    broker's machine), without a restart: Kafka reloads it at once and new connections get the new certificate
    (those open keep theirs). Kafka refuses a keystore whose certificate has another subject or other alternative
    names, or that its keystore password does not open."""
    admin, _ = connect_admin(kafka)
    entry = ConfigEntry(
        f"listener.name.{listener.lower()}.ssl.keystore.location", location, incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ResourceType.BROKER, str(broker), incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()
