"""Signed, expiring dashboard tokens: round trip, expiry, every kind of tampering, and the secret file."""

from __future__ import annotations

import base64
import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dashboards.signing import TokenError, TokenExpired, TokenInvalid, load_secret, sign, verify

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SECRET = bytes(range(32))


def test_a_token_carries_its_payload_until_it_expires() -> None:
    token = sign({"sub": "ann", "aud": "student"}, SECRET, NOW + timedelta(hours=1))
    assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe as it is
    assert verify(token, SECRET, NOW) == {"sub": "ann", "aud": "student", "exp": int(NOW.timestamp()) + 3600}
    assert verify(token, SECRET, NOW + timedelta(minutes=59, seconds=59))["sub"] == "ann"
    with pytest.raises(TokenExpired, match="expired at 2026-12-05T13:00"):
        verify(token, SECRET, NOW + timedelta(hours=1))


def _edit_payload(token: str, **changes: object) -> str:
    text, _, signature = token.partition(".")
    body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    edited = base64.urlsafe_b64encode(json.dumps({**body, **changes}).encode()).rstrip(b"=").decode()
    return f"{edited}.{signature}"


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda t: _edit_payload(t, sub="bob"), "altered or was not issued"),
        (lambda t: _edit_payload(t, exp=2_000_000_000), "altered or was not issued"),  # a longer life is refused
        (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "altered or was not issued"),
        (lambda t: t.partition(".")[0], "incomplete"),
        (lambda t: "." + t.partition(".")[2], "incomplete"),
        (lambda t: t + "!", "not valid base64url"),
        (lambda t: "é" + t, "characters a signed link never has"),
        (lambda t: "", "incomplete"),
    ],
)
def test_tampered_tokens_are_invalid_with_a_reason(mangle: object, message: str) -> None:
    token = sign({"sub": "ann"}, SECRET, NOW + timedelta(hours=1))
    with pytest.raises(TokenInvalid, match=message):
        verify(mangle(token), SECRET, NOW)  # type: ignore[operator]


def test_a_token_from_another_secret_is_invalid_and_errors_share_a_base() -> None:
    token = sign({"sub": "ann"}, bytes(32), NOW + timedelta(hours=1))
    with pytest.raises(TokenInvalid) as caught:
        verify(token, SECRET, NOW)
    assert isinstance(caught.value, TokenError) and issubclass(TokenExpired, TokenError)


def test_signing_refuses_a_naive_expiry_or_an_exp_in_the_payload() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sign({"sub": "ann"}, SECRET, datetime(2026, 12, 5, 13, 0))
    with pytest.raises(ValueError, match="'exp'"):
        sign({"sub": "ann", "exp": 1}, SECRET, NOW)


def test_the_secret_is_created_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dashboards.key"
    first = load_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(path) == first  # read, not replaced
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind
    assert load_secret(tmp_path / "other.key") != first


def test_a_bad_secret_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    short, garbage = tmp_path / "short.key", tmp_path / "garbage.key"
    short.write_text("ab" * 16)
    garbage.write_text("not hex at all")
    with pytest.raises(ValueError, match="at least 32 bytes, not 16"):
        load_secret(short)
    with pytest.raises(ValueError, match="must be hex"):
        load_secret(garbage)
