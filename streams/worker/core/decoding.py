"""One events message as students' batches: what is accepted, and what is refused with the reason.

A message is an ``EventBatch`` (one student) or a ``PartitionBatch`` (many, all of the message's partition), or
an erasure request (``schemas.privacy``). Garbage throughout is refused whole (one dead letter); a few bad
students in a good ``PartitionBatch`` are refused each, and the rest is folded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from kafka_io.producer import key_partition
from streams.worker.core.table_keys import POSITION_KEY_PREFIX

# A PartitionBatch with more refused batches than this is refused whole, in one dead letter (not one per item).
MAX_LETTERS_PER_MESSAGE = 10


@dataclass(slots=True)
class Decoded:
    accepted: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (user id, their batch)
    refused: list[tuple[bytes, str]] = field(default_factory=list)  # (what to keep of it, reason): dead letters


def decode_message(value: bytes, partition: int, partitions: int) -> Decoded:
    """The students' batches of one message of ``partition`` (of ``partitions``), checked."""
    try:
        message = orjson.loads(value)
        packed = isinstance(message, dict) and "batches" in message  # a PartitionBatch (schemas.messages)
        batches = message["batches"] if packed else [message]
        if not isinstance(batches, list):
            raise TypeError(f"batches must be a list, not {type(batches).__name__}")
    except (orjson.JSONDecodeError, TypeError) as exc:
        return Decoded(refused=[(value, f"not an EventBatch or PartitionBatch: {exc!r}")])
    decoded = Decoded()
    problems: list[tuple[Any, Exception]] = []
    for one in batches:
        try:
            decoded.accepted.append((batch_user(one, packed, partition, partitions), one))
        except (KeyError, TypeError, ValueError) as exc:
            problems.append((one, exc))
    if problems and (not packed or len(problems) > MAX_LETTERS_PER_MESSAGE):
        # Not an event batch at all (or not one in many): one letter for the whole message, nothing of it
        # folded, rather than a letter per item of a message that is garbage throughout.
        what = f"{len(problems)} of {len(batches)} batches refused, the first: " if packed else ""
        return Decoded(refused=[(value, f"not an EventBatch or PartitionBatch: {what}{problems[0][1]!r}")])
    for one, problem in problems:  # a few bad students in a good message: a letter each, the rest folded
        decoded.refused.append((orjson.dumps(one), f"not an EventBatch of a PartitionBatch: {problem!r}"))
    return decoded


def batch_user(one: Any, packed: bool, partition: int, partitions: int) -> str:
    """The user id of one student's batch (an ``EventBatch``, or an erasure request), checked; raises KeyError,
    TypeError or ValueError naming the problem. In a ``PartitionBatch`` the student must belong in the message's
    partition: their state lives with its owner."""
    user_id = one["user_id"]
    if not isinstance(user_id, str) or not user_id:
        raise TypeError(f"user_id must be a non-empty string, not {type(user_id).__name__}")
    if user_id.startswith(POSITION_KEY_PREFIX):
        raise TypeError(f"user_id must not start with {POSITION_KEY_PREFIX!r} (reserved)")
    if packed and (home := key_partition(user_id.encode(), partitions)) != partition:
        raise ValueError(f"user {user_id!r} belongs in partition {home} (by key), not {partition}")
    if "erase" not in one and not isinstance(one["events"], list):
        raise TypeError(f"events must be a list, not {type(one['events']).__name__}")
    return user_id
