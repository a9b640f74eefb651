"""Signed, expiring tokens for the dashboards (student links, the admin session cookie), on the standard library.

A token is ``<payload>.<signature>``: the payload is the JSON object given plus ``exp`` (Unix seconds), base64url
without padding; the signature is HMAC-SHA256 over a purpose prefix and the payload text, compared in constant
time. The payload is signed, not encrypted: put nothing secret in it (a student id is fine, the link is theirs).

The secret is 32 random bytes kept hex-encoded in a file only its owner can read, created on first use, so the
demo and tests need no configuration and no secret is ever hard-coded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

SECRET_BYTES = 32
_PURPOSE = b"engage-dashboards-v1."


class TokenError(ValueError):
    """A token that must not be honoured; the message says why, in words a person can act on."""


class TokenInvalid(TokenError):
    """Malformed, tampered with, or signed with another secret."""


class TokenExpired(TokenError):
    """Genuine but past its expiry time (``expired_at``)."""

    def __init__(self, message: str, expired_at: datetime) -> None:
        super().__init__(message)
        self.expired_at = expired_at


def load_secret(path: Path) -> bytes:
    """The secret in ``path``; created (0600, written whole, then linked into place so no reader sees half of it
    and a process racing us keeps one secret) if it is not there yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".dashboards-key-")  # mkstemp creates it 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(SECRET_BYTES))
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            os.unlink(tmp)
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"{path}: the dashboards secret must be hex text") from None
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"{path}: the dashboards secret must have at least {SECRET_BYTES} bytes, not {len(secret)}")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, _PURPOSE + payload.encode("ascii"), hashlib.sha256).digest()


def sign(payload: dict[str, Any], secret: bytes, expires_at: datetime) -> str:
    """A URL-safe token carrying ``payload`` until ``expires_at`` (aware)."""
    if expires_at.utcoffset() is None:
        raise ValueError("expires_at must be timezone-aware")
    if "exp" in payload:
        raise ValueError("the payload may not have an 'exp' key: the expiry is given as expires_at")
    body = json.dumps({**payload, "exp": int(expires_at.timestamp())}, separators=(",", ":"), sort_keys=True)
    text = _b64(body.encode())
    return f"{text}.{_b64(_mac(secret, text))}"


def verify(token: str, secret: bytes, now: datetime) -> dict[str, Any]:
    """The payload (with ``exp``) of a token signed with ``secret`` that has not expired at ``now``.

    The signature is checked before anything in the payload is believed, so an edited expiry is "invalid"."""
    text, dot, signature = token.partition(".")
    if not dot or not text or not signature:
        raise TokenInvalid("this link is incomplete: it should have two parts separated by a dot")
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise TokenInvalid("this link's signature is not valid base64url") from None
    try:
        expected = _mac(secret, text)
    except UnicodeEncodeError:
        raise TokenInvalid("this link contains characters a signed link never has") from None
    if not hmac.compare_digest(given, expected):
        raise TokenInvalid("this link has been altered or was not issued by this server")
    try:
        payload: Any = json.loads(_unb64(text))
    except (binascii.Error, ValueError):
        raise TokenInvalid("this link's contents cannot be read") from None
    if not isinstance(payload, dict):
        raise TokenInvalid("this link's contents are not a signed object")
    exp = payload.get("exp")
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise TokenInvalid("this link has no expiry time")
    if now.timestamp() >= exp:
        expired = datetime.fromtimestamp(exp, now.tzinfo)
        raise TokenExpired(f"this link expired at {expired.isoformat(timespec='minutes')}; ask for a new one", expired)
    return {str(k): v for k, v in payload.items()}
