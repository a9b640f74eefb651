"""The admin session cookie: signed, expiring, refused when changed; the secret file is made owner-only."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboards import session as s
from dashboards import signing

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)


def test_secret_is_made_once_owner_only_and_a_short_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dash.key"
    first = s.load_secret(path)
    assert len(first) == 32 and s.load_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    short = tmp_path / "short.key"
    short.write_text("ab" * 8)
    with pytest.raises(ValueError, match="at least 32 bytes, not 8"):
        s.load_secret(short)


def test_a_cookie_verifies_until_it_expires() -> None:
    secret = b"k" * 32
    token, made = s.issue("cfg_1", "demo-admin", "admin", secret, NOW, 12)
    got = s.verify(token, secret, NOW + timedelta(hours=11, minutes=59))
    assert got == made and (got.key_id, got.app_id, got.role) == ("cfg_1", "demo-admin", "admin")
    with pytest.raises(s.SessionExpired, match="the session ended at 2026-11-12 22:00 UTC"):
        s.verify(token, secret, NOW + timedelta(hours=12))


@pytest.mark.parametrize("change", ["other secret", "payload", "mac", "no dot", "garbage payload", "student link"])
def test_a_changed_or_foreign_cookie_is_invalid(change: str) -> None:
    secret = b"k" * 32
    token, _ = s.issue("cfg_1", "demo-admin", "server", secret, NOW, 12)
    body, mac = token.split(".")
    forged = {
        "other secret": s.issue("cfg_1", "demo-admin", "server", b"o" * 32, NOW, 12)[0],
        "payload": signing._b64(signing._unb64(body).replace(b"server", b"admin")) + "." + mac,
        "mac": body + "." + mac[::-1],
        "no dot": body + mac,
        # genuine tokens of another kind: no audience, or a student's link
        "garbage payload": signing.sign({}, secret, NOW + timedelta(hours=1)),
        "student link": signing.sign({"sub": "u1", "aud": "student"}, secret, NOW + timedelta(hours=1)),
    }[change]
    with pytest.raises(s.SessionInvalid):
        s.verify(forged, secret, NOW)
