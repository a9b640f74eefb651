"""The API key registry (access.keys): hashes only on disk, rotation with grace, revocation, expiry, reloads."""

from __future__ import annotations

import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from access.auth import Principal, Role, hash_key
from access.keys import KeyRecord, KeyRegistry, KeyRing, configured_keys, read_registry
from config.settings import Settings
from engage import cli

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Wall clock (for expiry) and monotonic clock (for the reload interval), moved by hand."""

    def __init__(self) -> None:
        self.wall = T0
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        run_dir=tmp_path,
        write_keys=["demo-web:wk_demo_web_key"],
        server_keys=["demo-backend:sk_demo_backend_key"],
        admin_keys=["demo-admin:ak_demo_admin_key"],
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


def ring(settings: Settings, clock: Clock, check_seconds: float = 1.0) -> KeyRing:
    return KeyRing(
        settings.key_registry,
        configured_keys(settings),
        check_seconds=check_seconds,
        clock=lambda: clock.wall,
        monotonic=lambda: clock.mono,
    )


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("engage_auth_refused_total", {"reason": reason}) or 0.0


# ------------------------------------------------------------------------------------------------------
# Creating keys: the secret is returned once, only its digest is stored
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "prefix"), [(Role.write, "wk_"), (Role.server, "sk_"), (Role.admin, "ak_")])
def test_a_created_key_is_found_with_its_app_role_and_id(settings: Settings, clock: Clock, role: Role, prefix: str):
    issued = KeyRegistry.from_settings(settings).create("backend", role, now=T0)
    record, secret = issued
    assert record.key_id.startswith(prefix) and len(record.key_id) == len(prefix) + 8
    assert secret.startswith(record.key_id + "_") and len(secret) >= len(record.key_id) + 1 + 43  # 32 random bytes
    assert record.sha256 == hash_key(secret)
    assert (record.app_id, record.role, record.created_at) == ("backend", role, T0)
    principal = ring(settings, clock).lookup(secret)
    assert principal == Principal("backend", role)
    assert principal is not None and principal.key_id == record.key_id


def test_the_registry_file_holds_the_digest_never_the_secret(settings: Settings):
    registry = KeyRegistry.from_settings(settings)
    secrets = [registry.create(f"app-{i}", role, now=T0).secret for i, role in enumerate(Role)]
    rotated, _ = registry.rotate(registry.all()[-1].key_id, 60, now=T0)
    secrets.append(rotated.secret)
    text = settings.key_registry.read_text()
    for secret in secrets:
        assert secret not in text
        assert secret.split("_", 2)[2] not in text  # nor the random part alone
        assert hash_key(secret) in text
    # the settings' plain keys never reach the file either, even once a settings key is revoked
    registry.revoke(next(r.key_id for r in registry.all() if r.app_id == "demo-backend"), now=T0)
    assert "sk_demo_backend_key" not in settings.key_registry.read_text()
    assert stat.S_IMODE(settings.key_registry.stat().st_mode) == 0o600


def test_secrets_are_random_and_ids_unique(settings: Settings):
    registry = KeyRegistry.from_settings(settings)
    issued = [registry.create("web", Role.write, now=T0) for _ in range(20)]
    assert len({i.secret for i in issued}) == 20
    assert len({i.record.key_id for i in issued}) == 20
    assert [r.key_id for r in read_registry(settings.key_registry)] == [i.record.key_id for i in issued]


@pytest.mark.parametrize("app_id", ["", " web", "web app", "a/b", "x" * 65])
def test_create_refuses_odd_app_ids(settings: Settings, app_id: str):
    with pytest.raises(ValueError, match="app id"):
        KeyRegistry.from_settings(settings).create(app_id, Role.write, now=T0)
    assert not settings.key_registry.exists()


def test_public_view_and_listing_never_carry_the_digest(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    issued = registry.create("web", Role.write, now=T0)
    shown = json.dumps([r.public(T0) for r in ring(settings, clock).records()])
    assert issued.secret not in shown and issued.record.sha256 not in shown
    assert hash_key("wk_demo_web_key") not in shown
    assert issued.record.key_id in shown and '"state": "active"' in shown


# ------------------------------------------------------------------------------------------------------
# Unknown keys, settings keys
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("presented", [None, "", "wk_00000000_unknown-secret-value", "sk_demo_backend_ke"])
def test_unknown_or_missing_keys_find_nobody(settings: Settings, clock: Clock, presented: str | None):
    KeyRegistry.from_settings(settings).create("web", Role.write, now=T0)
    reason = "missing" if not presented else "unknown"
    before = refused(reason)
    assert ring(settings, clock).lookup(presented) is None
    assert refused(reason) == before + 1


def test_a_near_miss_of_a_created_key_is_refused(settings: Settings, clock: Clock):
    secret = KeyRegistry.from_settings(settings).create("web", Role.write, now=T0).secret
    keys = ring(settings, clock)
    assert keys.lookup(secret[:-1]) is None
    assert keys.lookup(secret + "x") is None
    assert keys.lookup(" " + secret) is None


def test_unknown_key_ids_are_refused_by_every_operation(settings: Settings):
    registry = KeyRegistry.from_settings(settings)
    with pytest.raises(KeyError, match="no key with id"):
        registry.revoke("sk_00000000", now=T0)
    with pytest.raises(KeyError, match="no key with id"):
        registry.rotate("sk_00000000", 60, now=T0)
    with pytest.raises(KeyError, match="no key with id"):
        registry.find("sk_00000000")


def test_settings_keys_work_without_a_registry_file(settings: Settings, clock: Clock):
    keys = ring(settings, clock)
    assert not settings.key_registry.exists()
    assert keys.lookup("wk_demo_web_key") == Principal("demo-web", Role.write)
    assert keys.lookup("sk_demo_backend_key") == Principal("demo-backend", Role.server)
    assert keys.lookup("ak_demo_admin_key") == Principal("demo-admin", Role.admin)
    assert {r.key_id[:4] for r in keys.records()} == {"cfg_"}


# ------------------------------------------------------------------------------------------------------
# Revocation, seen without a restart
# ------------------------------------------------------------------------------------------------------


def test_a_revoked_key_is_refused_once_the_ring_looks_again(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    issued = registry.create("backend", Role.server, now=T0)
    keys = ring(settings, clock, check_seconds=1.0)
    assert keys.lookup(issued.secret) is not None
    clock.advance(2)
    registry.revoke(issued.record.key_id, now=clock.wall)
    before = refused("revoked")
    clock.advance(1.0)  # the next look at the file
    assert keys.lookup(issued.secret) is None
    assert refused("revoked") == before + 1
    assert registry.find(issued.record.key_id).state(clock.wall) == "revoked"
    with pytest.raises(ValueError, match="already revoked"):
        registry.revoke(issued.record.key_id, now=clock.wall)
    with pytest.raises(ValueError, match="revoked"):
        registry.rotate(issued.record.key_id, 60, now=clock.wall)


def test_the_file_is_looked_at_no_more_than_every_check_seconds(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    issued = registry.create("backend", Role.server, now=T0)
    keys = ring(settings, clock, check_seconds=5.0)
    registry.revoke(issued.record.key_id, now=T0)
    assert keys.lookup(issued.secret) is not None  # the file was looked at less than 5 s ago
    clock.advance(4.9)
    assert keys.lookup(issued.secret) is not None
    clock.advance(0.2)
    assert keys.lookup(issued.secret) is None


def test_other_keys_keep_working_when_one_is_revoked(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    kept = registry.create("web", Role.write, now=T0)
    gone = registry.create("web", Role.write, now=T0)
    registry.revoke(gone.record.key_id, now=T0)
    keys = ring(settings, clock)
    assert keys.lookup(kept.secret) == Principal("web", Role.write)
    assert keys.lookup(gone.secret) is None
    assert keys.lookup("wk_demo_web_key") == Principal("demo-web", Role.write)


def test_a_settings_key_can_be_revoked_by_its_cfg_id(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    (demo,) = [r for r in registry.all() if r.app_id == "demo-backend"]
    assert demo.key_id == f"cfg_{hash_key('sk_demo_backend_key')[:8]}" and demo.source == "settings"
    keys = ring(settings, clock)
    assert keys.lookup("sk_demo_backend_key") is not None
    registry.revoke(demo.key_id, now=clock.wall)
    clock.advance(1)
    assert keys.lookup("sk_demo_backend_key") is None
    # a fresh process (restart) still refuses it: the settings list does not bring it back
    assert ring(settings, clock).lookup("sk_demo_backend_key") is None
    assert ring(settings, clock).lookup("wk_demo_web_key") is not None


# ------------------------------------------------------------------------------------------------------
# Rotation with a grace period
# ------------------------------------------------------------------------------------------------------


def test_rotation_gives_a_new_key_and_the_old_works_until_the_grace_ends(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    old = registry.create("backend", Role.server, now=T0)
    keys = ring(settings, clock)
    new, retired = registry.rotate(old.record.key_id, 30, now=clock.wall)
    assert (new.record.app_id, new.record.role) == ("backend", Role.server)
    assert new.record.key_id != old.record.key_id and new.secret != old.secret
    assert retired.replaced_by == new.record.key_id and retired.expires_at == T0 + timedelta(seconds=30)

    clock.advance(1)
    assert keys.lookup(new.secret) == Principal("backend", Role.server)
    assert keys.lookup(old.secret) == Principal("backend", Role.server)  # during the grace
    assert registry.find(old.record.key_id).state(clock.wall) == "rotating"
    clock.advance(28.9)
    assert keys.lookup(old.secret) is not None
    before = refused("expired")
    clock.advance(0.2)  # grace over
    assert keys.lookup(old.secret) is None
    assert refused("expired") == before + 1
    assert keys.lookup(new.secret) is not None
    with pytest.raises(ValueError, match="expired"):
        registry.rotate(old.record.key_id, 30, now=clock.wall)


def test_a_zero_grace_stops_the_old_key_at_once(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    old = registry.create("web", Role.write, now=T0)
    new, _ = registry.rotate(old.record.key_id, 0, now=T0)
    keys = ring(settings, clock)
    assert keys.lookup(old.secret) is None
    assert keys.lookup(new.secret) == Principal("web", Role.write)


def test_a_key_is_rotated_once_and_the_grace_never_outlives_its_expiry(settings: Settings):
    registry = KeyRegistry.from_settings(settings)
    old = registry.create("web", Role.write, expires_at=T0 + timedelta(seconds=10), now=T0)
    _, retired = registry.rotate(old.record.key_id, 3600, now=T0)
    assert retired.expires_at == T0 + timedelta(seconds=10)
    with pytest.raises(ValueError, match="already rotated"):
        registry.rotate(old.record.key_id, 60, now=T0)
    with pytest.raises(ValueError, match="negative"):
        registry.rotate(retired.replaced_by or "", -1, now=T0)


def test_a_settings_key_can_be_rotated(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    demo = next(r for r in registry.all() if r.app_id == "demo-web")
    new, _ = registry.rotate(demo.key_id, 10, now=clock.wall)
    keys = ring(settings, clock)
    assert keys.lookup("wk_demo_web_key") is not None
    assert keys.lookup(new.secret) == Principal("demo-web", Role.write)
    clock.advance(11)
    assert keys.lookup("wk_demo_web_key") is None


# ------------------------------------------------------------------------------------------------------
# Expiry
# ------------------------------------------------------------------------------------------------------


def test_a_key_stops_at_its_expiry(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    issued = registry.create("web", Role.write, expires_at=T0 + timedelta(days=1), now=T0)
    keys = ring(settings, clock)
    assert keys.lookup(issued.secret) is not None
    clock.advance(86_399)
    assert keys.lookup(issued.secret) is not None
    clock.advance(1)
    assert keys.lookup(issued.secret) is None
    assert registry.find(issued.record.key_id).state(clock.wall) == "expired"


def test_an_expiry_in_the_past_is_refused(settings: Settings):
    with pytest.raises(ValueError, match="future"):
        KeyRegistry.from_settings(settings).create("web", Role.write, expires_at=T0, now=T0)


# ------------------------------------------------------------------------------------------------------
# The file: format, broken files, concurrent writers
# ------------------------------------------------------------------------------------------------------


def test_records_round_trip_through_json(settings: Settings):
    record = KeyRecord("sk_0123abcd", "backend", Role.server, hash_key("x" * 40), "registry", T0, T0, T0, "sk_1")
    assert KeyRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"format": 2, "keys": []}', '{"format": 1, "keys": [{"key_id": "x"}]}']
)
def test_a_broken_registry_stops_a_service_from_starting(settings: Settings, clock: Clock, content: str):
    settings.key_registry.write_text(content)
    with pytest.raises(ValueError, match="cannot be read"):
        ring(settings, clock)


def test_a_registry_broken_later_keeps_the_previous_keys(settings: Settings, clock: Clock):
    registry = KeyRegistry.from_settings(settings)
    kept = registry.create("web", Role.write, now=T0)
    revoked = registry.create("web", Role.write, now=T0)
    registry.revoke(revoked.record.key_id, now=T0)
    keys = ring(settings, clock)
    settings.key_registry.write_text("{ half a file")
    failed = REGISTRY.get_sample_value("engage_auth_registry_reloads_total", {"outcome": "failed"}) or 0.0
    clock.advance(1)
    assert keys.lookup(kept.secret) is not None
    assert keys.lookup(revoked.secret) is None  # a broken file does not bring a revoked key back
    assert REGISTRY.get_sample_value("engage_auth_registry_reloads_total", {"outcome": "failed"}) == failed + 1


def test_concurrent_writers_lose_nothing(settings: Settings):
    def create(n: int) -> None:
        registry = KeyRegistry.from_settings(settings)  # one registry object each, like separate CLI runs
        for _ in range(n):
            registry.create("web", Role.write)

    threads = [threading.Thread(target=create, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(read_registry(settings.key_registry)) == 40


# ------------------------------------------------------------------------------------------------------
# The CLI: secrets printed once, never listed
# ------------------------------------------------------------------------------------------------------


def test_cli_create_list_rotate_revoke(settings: Settings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cli, "get_settings", lambda: settings)
    runner = CliRunner()

    created = runner.invoke(cli.app, ["keys", "create", "--app", "backend", "--role", "server"])
    assert created.exit_code == 0, created.output
    secret = next(line.split()[1] for line in created.output.splitlines() if line.startswith("secret"))
    key_id = created.output.split()[1].rstrip(":")
    assert secret.startswith(key_id + "_")
    assert KeyRegistry.from_settings(settings).find(key_id).sha256 == hash_key(secret)

    listed = runner.invoke(cli.app, ["keys", "list"])
    assert listed.exit_code == 0, listed.output
    assert key_id in listed.output and "cfg_" in listed.output
    assert secret not in listed.output and hash_key(secret) not in listed.output
    assert hash_key(secret)[:16] not in listed.output

    rotated = runner.invoke(cli.app, ["keys", "rotate", key_id, "--grace-seconds", "60"])
    assert rotated.exit_code == 0, rotated.output
    new_secret = next(line.split()[1] for line in rotated.output.splitlines() if line.startswith("secret"))
    assert new_secret != secret and "keeps working until" in rotated.output

    revoked = runner.invoke(cli.app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert secret not in revoked.output

    assert secret not in runner.invoke(cli.app, ["keys", "list"]).output
    assert new_secret not in runner.invoke(cli.app, ["keys", "list"]).output

    unknown = runner.invoke(cli.app, ["keys", "revoke", "sk_00000000"])
    assert unknown.exit_code == 1 and "no key with id" in unknown.output
    bad_role = runner.invoke(cli.app, ["keys", "create", "--app", "x", "--role", "root"])
    assert bad_role.exit_code != 0
