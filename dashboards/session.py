"""The admin login cookie: a signed, expiring claim that a server or admin key was shown at the login form.

The cookie holds the key's public id, its app and role and the expiry, as URL-safe base64 JSON, followed by an
HMAC-SHA256 of that text under the dashboards' secret (``load_secret``: 32 random bytes in a 0600 file). Never
the key itself: a stolen cookie ends at its expiry, and ``app.py`` also refuses it once the key is revoked.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

COOKIE = "engage_session"
SECRET_BYTES = 32


class SessionError(ValueError):
    """A cookie that does not let its holder in; the message says why, in words a person can act on."""


class SessionExpired(SessionError):
    pass


class SessionInvalid(SessionError):
    pass


@dataclass(frozen=True)
class Session:
    key_id: str
    app_id: str
    role: str
    expires_at: datetime


def load_secret(path: Path) -> bytes:
    """The signing secret; made (32 random bytes, owner-only) on first use. A short file is refused, not used."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it between our read and our create
            return load_secret(path)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(SECRET_BYTES))
        data = path.read_bytes()
    if len(data) < SECRET_BYTES:
        raise ValueError(f"{path} holds {len(data)} bytes; a dashboards secret needs {SECRET_BYTES} random bytes")
    return data


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(body: str, secret: bytes) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def issue(key_id: str, app_id: str, role: str, secret: bytes, now: datetime, hours: float) -> tuple[str, Session]:
    """A cookie value for a key that was just checked, and the session it stands for."""
    expires = now + timedelta(hours=hours)
    exp = int(expires.timestamp())
    claims = {"kid": key_id, "app": app_id, "role": role, "exp": exp}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    session = Session(key_id, app_id, role, datetime.fromtimestamp(exp, now.tzinfo))
    return f"{body}.{_mac(body, secret)}", session


def verify(token: str, secret: bytes, now: datetime) -> Session:
    """The session a cookie stands for; ``SessionInvalid`` if it was not made with ``secret`` or was changed,
    ``SessionExpired`` once its time is over."""
    body, sep, mac = token.partition(".")
    if not sep or not hmac.compare_digest(mac, _mac(body, secret)):
        raise SessionInvalid("the session cookie is not one this server signed; log in again")
    try:
        claims = json.loads(_unb64(body))
        session = Session(
            str(claims["kid"]),
            str(claims["app"]),
            str(claims["role"]),
            datetime.fromtimestamp(int(claims["exp"]), now.tzinfo),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SessionInvalid(f"the session cookie cannot be read ({exc}); log in again") from None
    if session.expires_at <= now:
        raise SessionExpired(f"the session ended at {session.expires_at:%Y-%m-%d %H:%M} UTC; log in again")
    return session
