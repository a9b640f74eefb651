"""The record table's keys: students by id, and one position entry per events partition.

No student id can start with the position prefix (``schemas.events.Identifier`` starts with a letter or digit),
and the worker refuses a batch whose id does (``core.decoding``).
"""

from __future__ import annotations

POSITION_KEY_PREFIX = "#position:"
POSITION_KEY_PREFIX_BYTES = POSITION_KEY_PREFIX.encode()


def position_key(partition: int) -> bytes:
    return f"{POSITION_KEY_PREFIX}{partition}".encode()


def is_student_key(key: bytes) -> bool:
    return not key.startswith(POSITION_KEY_PREFIX_BYTES)
