"""The API key registry: keys created, rotated, revoked and expiring while the services run.

The registry is one JSON file (``settings.key_registry``, default ``run_dir/keys.json``). Per key it holds
only public facts and a digest: the key id (``wk_``/``sk_``/``ak_`` and 8 hex digits, the first part of the
key itself), the app, the role, when it was created, when it expires (optional), when it was revoked and,
after a rotation, the id of its successor. The secret is shown once by ``engage keys create`` / ``rotate``
and never written anywhere.

**Why plain SHA-256 and not a salted, slow hash** (bcrypt, scrypt, argon2): those protect *low-entropy*
secrets such as passwords from being guessed back out of a stolen digest. A key made here carries 32 random
bytes (256 bits) after its id: it cannot be enumerated, so one unsalted SHA-256 is as strong as any key
derivation function, and every request costs one digest and one dict lookup (the usual practice for API
tokens). Keys typed into the settings by hand (``write_keys``, ``server_keys``, ``admin_keys``: the demo
and development keys) should be just as long and random; they keep working unless the registry revokes them.

The collector and the workers hold a ``KeyRing``: the settings' keys overlaid by the registry, re-read when
the file changes (looked at no more than every ``key_registry_check_seconds``), so a revoked key is refused
within seconds and without a restart. Expiry and a rotation's grace are checked against the clock at each
lookup. Writers (the CLI) take a lock, write a new file and rename it over the old one, so a reader sees the
old registry or the new one, never half of it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

from prometheus_client import Counter

from access.auth import Principal, Role, hash_key, parse_pair

log = logging.getLogger(__name__)

FORMAT = 1
PREFIX: dict[Role, str] = {Role.write: "wk", Role.server: "sk", Role.admin: "ak"}
CONFIGURED_PREFIX = "cfg"  # ids of the settings' keys: cfg_ and the first 8 hex digits of the digest
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# Labels are bounded sets: never a key, a key id or a user.
REFUSED = Counter("engage_auth_refused_total", "Requests refused for their key, by reason", ["reason"])
RELOADS = Counter("engage_auth_registry_reloads_total", "Key registry (re)loads by outcome", ["outcome"])
for _reason in ("missing", "unknown", "revoked", "expired"):
    REFUSED.labels(_reason)
for _outcome in ("ok", "failed"):
    RELOADS.labels(_outcome)

State = Literal["active", "rotating", "revoked", "expired"]


def _now() -> datetime:
    return datetime.now(UTC)


def _time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no UTC offset")
    return parsed.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


@dataclass(frozen=True)
class KeyRecord:
    """One key as the registry knows it: its digest and public facts, never the key."""

    key_id: str
    app_id: str
    role: Role
    sha256: str
    source: Literal["registry", "settings"] = "registry"
    created_at: datetime | None = None  # None for keys from the settings
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    replaced_by: str | None = None  # rotated: the successor's key id (this key then works until expires_at)

    def state(self, now: datetime) -> State:
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "rotating" if self.replaced_by is not None else "active"

    def usable(self, now: datetime) -> bool:
        return self.state(now) in ("active", "rotating")

    @property
    def principal(self) -> Principal:
        return Principal(self.app_id, self.role, self.key_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "app_id": self.app_id,
            "role": self.role.value,
            "sha256": self.sha256,
            "source": self.source,
            "created_at": _iso(self.created_at),
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "replaced_by": self.replaced_by,
        }

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> KeyRecord:
        digest = str(item["sha256"])
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"key {item.get('key_id')!r}: sha256 is not 64 hex digits")
        source = item.get("source", "registry")
        if source not in ("registry", "settings"):
            raise ValueError(f"key {item.get('key_id')!r}: unknown source {source!r}")
        return cls(
            key_id=str(item["key_id"]),
            app_id=str(item["app_id"]),
            role=Role(item["role"]),
            sha256=digest,
            source=source,
            created_at=_time(item.get("created_at")),
            expires_at=_time(item.get("expires_at")),
            revoked_at=_time(item.get("revoked_at")),
            replaced_by=item.get("replaced_by"),
        )

    def public(self, now: datetime) -> dict[str, Any]:
        """What may be shown to an operator or an admin key: everything but the digest."""
        shown = self.to_json()
        del shown["sha256"]
        shown["state"] = self.state(now)
        return shown


class Issued(NamedTuple):
    """A new key: its record and the secret, which exists only in this value (shown once, then gone)."""

    record: KeyRecord
    secret: str


class KeySettings(Protocol):
    """What keys need of the settings (``config.settings.Settings`` has it): this floor imports no config."""

    @property
    def write_keys(self) -> list[str]: ...
    @property
    def server_keys(self) -> list[str]: ...
    @property
    def admin_keys(self) -> list[str]: ...
    @property
    def key_registry(self) -> Path: ...
    @property
    def key_registry_check_seconds(self) -> float: ...


def configured_keys(settings: KeySettings) -> list[KeyRecord]:
    """The settings' "app_id:key" entries as records (the demo and development keys)."""
    records: list[KeyRecord] = []
    for role, pairs in (
        (Role.write, settings.write_keys),
        (Role.server, settings.server_keys),
        (Role.admin, settings.admin_keys),
    ):
        for pair in pairs:
            app_id, key = parse_pair(pair)
            digest = hash_key(key)
            records.append(KeyRecord(f"{CONFIGURED_PREFIX}_{digest[:8]}", app_id, role, digest, source="settings"))
    return records


def read_registry(path: Path) -> list[KeyRecord]:
    """The records stored in the registry file; none when there is no file yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("keys"), list):
        raise ValueError(f"{path} is not a key registry (format {FORMAT})")
    return [KeyRecord.from_json(item) for item in data["keys"]]


def _write_registry(path: Path, records: Iterable[KeyRecord]) -> None:
    """Write a new file (owner-only) and rename it over the old one: readers never see half a registry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"format": FORMAT, "keys": [r.to_json() for r in records]}, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(body)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def _merge(configured: Iterable[KeyRecord], stored: Iterable[KeyRecord]) -> dict[str, KeyRecord]:
    """By digest: the settings' keys, overlaid by what the registry says (a settings key revoked or rotated)."""
    by_hash = {r.sha256: r for r in configured}
    by_hash.update((r.sha256, r) for r in stored)
    return by_hash


class KeyRegistry:
    """Create, rotate and revoke keys in the registry file (the CLI's side; services read it via ``KeyRing``)."""

    def __init__(self, path: Path, configured: Iterable[KeyRecord] = ()) -> None:
        self.path = path
        self.configured = list(configured)

    @classmethod
    def from_settings(cls, settings: KeySettings) -> KeyRegistry:
        return cls(settings.key_registry, configured_keys(settings))

    def all(self) -> list[KeyRecord]:
        """Every key the services know: the settings' and the registry's, oldest first (settings' keys first)."""
        merged = _merge(self.configured, read_registry(self.path)).values()
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(merged, key=lambda r: (r.created_at or epoch, r.app_id, r.role.value, r.key_id))

    def find(self, key_id: str) -> KeyRecord:
        for record in self.all():
            if record.key_id == key_id:
                return record
        raise KeyError(f"no key with id {key_id!r} (see `engage keys list`)")

    def create(
        self, app_id: str, role: Role, *, expires_at: datetime | None = None, now: datetime | None = None
    ) -> Issued:
        if not _APP_ID.match(app_id):
            raise ValueError("app id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
        now = now or _now()
        if expires_at is not None and expires_at <= now:
            raise ValueError("expires_at must be in the future")
        with self._locked():
            stored = read_registry(self.path)
            issued = self._issue(app_id, role, stored, now, expires_at)
            _write_registry(self.path, [*stored, issued.record])
        return issued

    def rotate(self, key_id: str, grace_seconds: float, *, now: datetime | None = None) -> tuple[Issued, KeyRecord]:
        """A new key for the same app and role; the old one keeps working ``grace_seconds`` more, then stops.

        Returns the new key and the old key's updated record."""
        if grace_seconds < 0:
            raise ValueError("the grace period cannot be negative")
        now = now or _now()
        with self._locked():
            stored = read_registry(self.path)
            old = self._find(key_id, stored)
            if not old.usable(now):
                raise ValueError(f"key {key_id} is {old.state(now)}; create a new key instead")
            if old.replaced_by is not None:
                raise ValueError(f"key {key_id} was already rotated to {old.replaced_by}; rotate that one")
            issued = self._issue(old.app_id, old.role, stored, now, None)
            until = now + timedelta(seconds=grace_seconds)
            if old.expires_at is not None:
                until = min(until, old.expires_at)
            retired = replace(old, expires_at=until, replaced_by=issued.record.key_id)
            _write_registry(self.path, [*_replacing(stored, retired), issued.record])
        return issued, retired

    def revoke(self, key_id: str, *, now: datetime | None = None) -> KeyRecord:
        """Refused from now on (services notice within ``key_registry_check_seconds``)."""
        now = now or _now()
        with self._locked():
            stored = read_registry(self.path)
            old = self._find(key_id, stored)
            if old.state(now) == "revoked":
                raise ValueError(f"key {key_id} is already revoked")
            revoked = replace(old, revoked_at=now)
            _write_registry(self.path, _replacing(stored, revoked))
        return revoked

    def _find(self, key_id: str, stored: list[KeyRecord]) -> KeyRecord:
        for record in _merge(self.configured, stored).values():
            if record.key_id == key_id:
                return record
        raise KeyError(f"no key with id {key_id!r} (see `engage keys list`)")

    def _issue(
        self, app_id: str, role: Role, stored: list[KeyRecord], now: datetime, expires_at: datetime | None
    ) -> Issued:
        taken = {r.key_id for r in _merge(self.configured, stored).values()}
        while True:
            key_id = f"{PREFIX[role]}_{secrets.token_hex(4)}"
            if key_id not in taken:
                break
        secret = f"{key_id}_{secrets.token_urlsafe(32)}"
        return Issued(KeyRecord(key_id, app_id, role, hash_key(secret), created_at=now, expires_at=expires_at), secret)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (two `engage keys` at once must not lose each other's change)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(f"{self.path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


def _replacing(stored: list[KeyRecord], record: KeyRecord) -> list[KeyRecord]:
    """The stored records with ``record`` in place of the one with its digest (appended if it was not stored:
    a settings key gets its first registry entry when it is revoked or rotated)."""
    out = [record if r.sha256 == record.sha256 else r for r in stored]
    if not any(r.sha256 == record.sha256 for r in stored):
        out.append(record)
    return out


class KeyRing:
    """Who a presented key belongs to, for the collector and the workers: the settings' keys and the registry,
    re-read when the file changes (at most every ``check_seconds``); unknown, revoked and expired keys get
    ``None``. A registry that cannot be read at start is an error; later, the previous keys stay in force."""

    def __init__(
        self,
        path: Path,
        configured: Iterable[KeyRecord] = (),
        *,
        check_seconds: float = 1.0,
        clock: Callable[[], datetime] = _now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._configured = list(configured)
        self._check_seconds = check_seconds
        self._clock = clock
        self._monotonic = monotonic
        self._by_hash = _merge(self._configured, ())
        self._stamp: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self._warned: dict[str, float] = {}
        self._reload(initial=True)
        self._next_check = monotonic() + check_seconds

    @classmethod
    def from_settings(cls, settings: KeySettings) -> KeyRing:
        return cls(settings.key_registry, configured_keys(settings), check_seconds=settings.key_registry_check_seconds)

    def lookup(self, presented: str | None) -> Principal | None:
        if not presented:
            REFUSED.labels("missing").inc()
            return None
        self.refresh()
        # Lookup by digest: timing differences can at most reveal a digest prefix, never the key.
        record = self._by_hash.get(hash_key(presented))
        if record is None:
            REFUSED.labels("unknown").inc()
            return None
        state = record.state(self._clock())
        if state in ("revoked", "expired"):
            REFUSED.labels(state).inc()
            self._warn(record, state)
            return None
        return record.principal

    def records(self) -> list[KeyRecord]:
        """Every key currently known (for an admin's listing; the caller shows ``public()`` only)."""
        self.refresh()
        return sorted(self._by_hash.values(), key=lambda r: (r.app_id, r.role.value, r.key_id))

    def refresh(self) -> bool:
        """Re-read the registry if it changed and the last look is ``check_seconds`` old; True if re-read."""
        now = self._monotonic()
        if now < self._next_check:
            return False
        self._next_check = now + self._check_seconds
        return self._reload(initial=False)

    def _reload(self, initial: bool) -> bool:
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp and not initial:
            return False
        try:
            stored = read_registry(self.path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            RELOADS.labels("failed").inc()
            if initial:
                raise ValueError(f"key registry {self.path} cannot be read: {exc}") from exc
            log.error("key registry %s cannot be read, the previous keys stay in force: %s", self.path, exc)
            self._stamp = stamp  # not again every second for the same broken file
            return False
        self._by_hash = _merge(self._configured, stored)
        self._stamp = stamp
        RELOADS.labels("ok").inc()
        log.info("key registry %s: %d keys in force", self.path, len(self._by_hash))
        return True

    def _warn(self, record: KeyRecord, state: str) -> None:
        """Log a refused revoked or expired key by its public id, at most once a minute per key."""
        now = self._monotonic()
        if now - self._warned.get(record.key_id, -1e9) >= 60.0:
            self._warned[record.key_id] = now
            log.warning("refused %s key %s (app %s, role %s)", state, record.key_id, record.app_id, record.role.value)
