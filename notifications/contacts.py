"""The contacts of the partitions this process owns, read from the compacted ``contacts`` topic.

Co-partitioning. Contacts and intervention requests are both keyed by user id and produced by this repo's
``kafka_io.producer.EventProducer`` (the worker's outputs, ``engage contacts import``, and the contacts this
service publishes back), whose partitioner is librdkafka's ``murmur2_random``: Kafka's Java default, the same
hash for the same key on topics with the same partition count. So the student of a request in partition ``p`` of
the interventions topic has their contact in partition ``p`` of the contacts topic, and the process owning one
owns the other (``tests/integration/test_notify_service.py`` checks a student's two partitions agree).

Reading. On assignment a partition is read to its end (``load``); afterwards whatever arrived since is taken in
without waiting (``drain``) before each batch of requests, and a request for a student not (yet) known reads the
partition to its current end once more before the student is declared unknown (``get``): a contact imported just
before the request is found. A tombstone (null value) removes the contact (an erased student).

Changes. A ``ContactChange`` (an unsubscribe link, a provider's report) and the changes a delivery reports
(retired push tokens, channels the student left at the provider) are folded into the contact
(``processors.notify.dispatch.changed_contact``) and the full new ``Contact`` is published to the contacts topic
(``update``): the topic stays the one place a contact is read from, and the platform's next full record replaces
it as usual.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from kafka_io.client import Kafka
from kafka_io.producer import EventProducer
from notifications.ledger import Out, Outbox, reader, watermarks
from processors.notify.dispatch import changed_contact
from schemas.contacts import Contact
from schemas.events import Channel
from schemas.messages import DeadLetter, kept_raw

log = logging.getLogger(__name__)

CONTACTS_KNOWN = Gauge("engage_notify_contacts", "Contacts held by this notification process")
CONTACT_UPDATES = Counter(
    "engage_notify_contact_updates_total", "Contacts changed and published back, by cause", ["cause"]
)


class ContactBook:
    def __init__(self, bootstrap: Kafka, topic: str, outbox: Outbox) -> None:
        self.topic = topic
        self.outbox = outbox
        self._consumer: Consumer = reader(bootstrap, "contacts")
        self._contacts: dict[str, tuple[int, Contact]] = {}  # user -> (partition, contact)
        self._next: dict[int, int] = {}  # partition -> next offset to read
        self.refused: list[DeadLetter] = []  # unreadable contacts, for the service to write to the dead letters

    # ---- ownership
    def load(self, partition: int) -> int:
        """Read ``partition`` from its beginning to its end; returns how many contacts it holds."""
        self.drop(partition)
        low, _ = watermarks(self._consumer, self.topic, partition)
        self._next[partition] = low
        self._assign()
        self._catch_up(partition)
        return sum(1 for p, _ in self._contacts.values() if p == partition)

    def drop(self, partition: int) -> None:
        if partition in self._next:
            del self._next[partition]
            self._contacts = {u: pc for u, pc in self._contacts.items() if pc[0] != partition}
            self._assign()
        CONTACTS_KNOWN.set(len(self._contacts))

    def close(self) -> None:
        self._consumer.close()

    def _assign(self) -> None:
        self._consumer.assign([TopicPartition(self.topic, p, o) for p, o in sorted(self._next.items())])

    # ---- reading
    def drain(self) -> int:
        """Take in whatever arrived on the owned partitions, without waiting."""
        if not self._next:
            return 0
        messages = self._consumer.consume(num_messages=10_000, timeout=0)
        for msg in messages:
            self._take(msg)
        return len(messages)

    def _catch_up(self, partition: int, timeout: float = 30.0) -> None:
        _, high = watermarks(self._consumer, self.topic, partition)
        deadline = time.monotonic() + timeout
        while self._next.get(partition, high) < high:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.topic}[{partition}] not read to offset {high} within {timeout:.0f} s")
            for msg in self._consumer.consume(num_messages=10_000, timeout=0.5):
                self._take(msg)

    def _take(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("reading %s: %s", self.topic, err)
            return
        partition, offset = msg.partition() or 0, msg.offset() or 0
        if partition not in self._next:
            return  # dropped meanwhile
        self._next[partition] = offset + 1
        value, key = msg.value(), (msg.key() or b"").decode("utf-8", "replace")
        if value is None:
            self._contacts.pop(key, None)
        else:
            try:
                contact = Contact.model_validate_json(value)
            except ValidationError as exc:
                self.refused.append(self._refusal(value, f"invalid contact for key {key!r}: {exc}", partition, offset))
                return
            self._contacts[contact.user_id] = (partition, contact)
        CONTACTS_KNOWN.set(len(self._contacts))

    def _refusal(self, value: bytes, reason: str, partition: int, offset: int) -> DeadLetter:
        log.error("%s[%d]@%d refused: %s", self.topic, partition, offset, reason)
        return DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=datetime.now(UTC),
            source="notify:contacts",
            reason=reason,
            raw=kept_raw(value.decode("utf-8", "replace")),
            original_topic=self.topic,
            original_partition=partition,
            original_offset=offset,
        )

    def get(self, user_id: str, partition: int) -> Contact | None:
        """The student's contact; an unknown one is looked for once more up to the partition's current end."""
        found = self._contacts.get(user_id)
        if found is None and partition in self._next:
            self._catch_up(partition)
            found = self._contacts.get(user_id)
        return found[1] if found is not None else None

    def __len__(self) -> int:
        return len(self._contacts)

    # ---- changes
    def encode(self, contact: Contact) -> Out:
        """The contact as written to its topic: keyed by user id, on the partition the key hashes to."""
        return Out(self.topic, contact.user_id.encode(), contact.model_dump_json().encode())

    async def update(
        self,
        user_id: str,
        partition: int,
        *,
        unsubscribe: Collection[Channel] = (),
        retire_tokens: Collection[str] = (),
        cause: str,
    ) -> Contact | None:
        """Fold the change into the student's contact and publish it (acknowledged) if it changed anything.
        Returns the new contact (the same one if nothing changed), or None for an unknown student."""
        contact = self.get(user_id, partition)
        if contact is None:
            return None
        new = changed_contact(contact, unsubscribe, retire_tokens)
        if new is contact:
            return contact
        await self.outbox.send([self.encode(new)])
        self._contacts[user_id] = (partition, new)
        CONTACT_UPDATES.labels(cause).inc()
        return new


# -- importing contacts (``engage contacts import``) ---------------------------------------------------------------


def parse_contacts_jsonl(text: str) -> tuple[list[Contact], list[str]]:
    """The contacts of a JSON-lines text (one ``Contact`` per line, blank lines ignored) and, for every line that
    is not one, ``line N: what is wrong``."""
    contacts: list[Contact] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            contacts.append(Contact.model_validate_json(line))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(line)'}: {e['msg']}" for e in exc.errors()[:5]
            )
            errors.append(f"line {number}: {problems}")
    return contacts, errors


def publish_contacts(producer: EventProducer, topic: str, contacts: Collection[Contact], timeout: float = 60.0) -> int:
    """Write the contacts keyed by user id (the partition the key hashes to, as the requests'); returns how many
    Kafka did not acknowledge (0: all stored)."""
    for contact in contacts:
        producer.send_encoded(contact.user_id.encode(), contact.model_dump_json().encode(), topic=topic)
    remaining = producer.flush(timeout)
    return remaining + producer.stats.failed
