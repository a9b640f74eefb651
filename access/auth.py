"""API keys and what each role may do. Keys are kept only as SHA-256 hashes, looked up by digest.

Roles: ``write`` keys (shipped inside web/mobile apps, so treat them as public) may only track events;
``server`` keys may also read engagement data and act; ``admin`` keys may do everything.

``KeyStore`` is the fixed set of keys from the settings; ``access.keys`` adds the persistent registry (created,
rotated, revoked and expiring keys) and ``KeyRing``, the lookup the collector and the workers use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    write = "write"
    server = "server"
    admin = "admin"


GRANTS: dict[Role, frozenset[str]] = {
    Role.write: frozenset({"track"}),
    Role.server: frozenset({"track", "read", "act"}),
    Role.admin: frozenset({"track", "read", "act", "admin"}),
}


@dataclass(frozen=True)
class Principal:
    app_id: str
    role: Role
    key_id: str = field(default="", compare=False)  # public id of the key (``access.keys``), for logs and audits

    def may(self, action: str) -> bool:
        return action in GRANTS[self.role]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (the scheme in any case), None without one.

    The one parser for the collector and the worker API, so both read a header the same way.
    """
    if authorization is None or not authorization.lower().startswith("bearer "):
        return None
    return authorization[7:].strip()


def parse_pair(pair: str) -> tuple[str, str]:
    """Split an "app_id:key" entry of the settings (only the first ':' separates); never echoes the key."""
    app_id, sep, key = pair.partition(":")
    if not sep or not app_id or not key:
        raise ValueError("keys are configured as 'app_id:key' with both parts non-empty")
    if len(key) < 8:
        raise ValueError(f"key for {app_id!r} is too short (at least 8 characters)")
    return app_id, key


class KeyStore:
    """Look up who a presented key belongs to; unknown keys get ``None``."""

    def __init__(self) -> None:
        self._by_hash: dict[str, Principal] = {}

    def add(self, app_id: str, key: str, role: Role) -> None:
        if len(key) < 8:
            raise ValueError(f"key for {app_id!r} is too short (at least 8 characters)")
        self._by_hash[hash_key(key)] = Principal(app_id, role)

    @classmethod
    def from_pairs(cls, pairs: Iterable[str], role: Role) -> KeyStore:
        """Build from "app_id:key" strings (the settings' format)."""
        store = cls()
        store.extend(pairs, role)
        return store

    def extend(self, pairs: Iterable[str], role: Role) -> None:
        for pair in pairs:
            self.add(*parse_pair(pair), role)

    def lookup(self, presented: str | None) -> Principal | None:
        if not presented:
            return None
        # Lookup by digest: timing differences can at most reveal a hash prefix, never the key.
        return self._by_hash.get(hash_key(presented))
