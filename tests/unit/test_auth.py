"""API keys, roles and grants (access.auth)."""

from __future__ import annotations

import hashlib

import pytest

from access.auth import GRANTS, KeyStore, Principal, Role, bearer_key, hash_key

ACTIONS = ("track", "read", "act", "admin")
ALLOWED = {
    Role.write: {"track"},
    Role.server: {"track", "read", "act"},
    Role.admin: {"track", "read", "act", "admin"},
}


# ------------------------------------------------------------------------------------------------------
# Roles and grants
# ------------------------------------------------------------------------------------------------------


def test_every_role_has_grants():
    assert set(GRANTS) == set(Role)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", ACTIONS)
def test_principal_may_exactly_what_its_role_grants(role, action):
    assert Principal("app", role).may(action) is (action in ALLOWED[role])


@pytest.mark.parametrize("role", list(Role))
def test_unknown_actions_are_refused_for_every_role(role):
    assert not Principal("app", role).may("delete")
    assert not Principal("app", role).may("")
    assert not Principal("app", role).may("TRACK")


def test_write_keys_may_only_track():
    assert GRANTS[Role.write] == frozenset({"track"})


def test_server_keys_may_not_administer():
    assert "admin" not in GRANTS[Role.server]
    assert GRANTS[Role.server] < GRANTS[Role.admin]


def test_roles_parse_from_their_config_names():
    assert [Role(name) for name in ("write", "server", "admin")] == [Role.write, Role.server, Role.admin]
    with pytest.raises(ValueError):
        Role("root")


# ------------------------------------------------------------------------------------------------------
# Lookup
# ------------------------------------------------------------------------------------------------------


def test_lookup_finds_the_principal_of_a_key():
    store = KeyStore.from_pairs(["web:wk_web_12345", "mobile:wk_mobile_123"], Role.write)
    assert store.lookup("wk_web_12345") == Principal("web", Role.write)
    assert store.lookup("wk_mobile_123") == Principal("mobile", Role.write)


def test_extend_adds_keys_with_their_own_role():
    store = KeyStore.from_pairs(["web:wk_web_12345"], Role.write)
    store.extend(["backend:sk_backend_1"], Role.server)
    store.extend(["ops:ak_ops_12345"], Role.admin)
    assert store.lookup("wk_web_12345") == Principal("web", Role.write)
    assert store.lookup("sk_backend_1") == Principal("backend", Role.server)
    assert store.lookup("ak_ops_12345") == Principal("ops", Role.admin)
    assert not store.lookup("wk_web_12345").may("read")
    assert store.lookup("ak_ops_12345").may("admin")


def test_only_the_first_colon_separates_app_and_key():
    store = KeyStore.from_pairs(["app:part:with:colons"], Role.server)
    assert store.lookup("part:with:colons") == Principal("app", Role.server)
    assert store.lookup("with:colons") is None


@pytest.mark.parametrize("presented", [None, "", "unknown-key-123", "wk_web_1234", "wk_web_123456", " wk_web_12345"])
def test_unknown_missing_or_near_miss_keys_find_nobody(presented):
    store = KeyStore.from_pairs(["web:wk_web_12345"], Role.admin)
    assert store.lookup(presented) is None


def test_an_empty_store_finds_nobody():
    assert KeyStore().lookup("anything-at-all") is None


# ------------------------------------------------------------------------------------------------------
# Keys are kept hashed
# ------------------------------------------------------------------------------------------------------


def test_hash_key_is_sha256_hex():
    assert hash_key("wk_web_12345") == hashlib.sha256(b"wk_web_12345").hexdigest()
    assert hash_key("a-key-one") != hash_key("a-key-two")


def test_plain_keys_are_not_kept_in_the_store():
    key = "sk_very_secret_key_value"
    store = KeyStore.from_pairs([f"backend:{key}"], Role.server)
    assert key not in repr(store)
    assert key not in repr(vars(store))
    assert key not in str(vars(store))
    assert hash_key(key) in repr(vars(store))
    assert store.lookup(key) == Principal("backend", Role.server)


# ------------------------------------------------------------------------------------------------------
# Parsing errors
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["nocolonkeyatall", ":key-without-app", "app-without-key:", ""])
def test_malformed_entries_are_refused(entry):
    with pytest.raises(ValueError, match="app_id:key"):
        KeyStore.from_pairs([entry], Role.write)


def test_malformed_entry_is_refused_by_extend_too():
    store = KeyStore.from_pairs(["web:wk_web_12345"], Role.write)
    with pytest.raises(ValueError, match="app_id:key"):
        store.extend(["sk_forgot_the_app_id"], Role.server)


def test_parse_error_does_not_echo_a_key():
    # An entry without ':' is most likely a bare key: it must not end up in logs via the error message.
    with pytest.raises(ValueError) as info:
        KeyStore.from_pairs(["sk_bare_secret_value"], Role.server)
    assert "sk_bare_secret_value" not in str(info.value)


@pytest.mark.parametrize("key", ["Q", "1234567", "Zq9_x"])
def test_keys_shorter_than_8_characters_are_refused(key):
    with pytest.raises(ValueError, match="too short") as info:
        KeyStore.from_pairs([f"web:{key}"], Role.write)
    assert "'web'" in str(info.value)
    assert key not in str(info.value).replace("'web'", "")


def test_a_key_of_exactly_8_characters_is_accepted():
    store = KeyStore.from_pairs(["web:12345678"], Role.write)
    assert store.lookup("12345678") == Principal("web", Role.write)


def test_add_refuses_short_keys_directly():
    store = KeyStore()
    with pytest.raises(ValueError, match="too short"):
        store.add("web", "1234567", Role.write)
    assert store.lookup("1234567") is None


# ------------------------------------------------------------------------------------------------------
# The Authorization header (collector and worker API)
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Bearer wk_abc123456", "wk_abc123456"),
        ("bearer wk_abc123456", "wk_abc123456"),
        ("BEARER   wk_abc123456  ", "wk_abc123456"),
        ("Bearer ", ""),
        ("Basic d2s6YWJj", None),
        ("Bearerwk_abc123456", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_key_reads_the_authorization_header(header, key):
    assert bearer_key(header) == key
