"""The admin login cookie: a signed, expiring claim that a server or admin key was shown at the login form.

Signed like every dashboards token (``dashboards.signing``: HMAC-SHA256 under the one dashboards secret) with
the audience ``admin-session``, so a student's link never opens an admin page and a cookie never opens a student
page. The cookie holds the key's public id, its app and role, never the key itself: a stolen cookie ends at its
expiry, and ``auth.py`` also refuses it once the key is revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dashboards.signing import TokenError, TokenExpired, load_secret, sign
from dashboards.signing import verify as verify_token

__all__ = ["COOKIE", "Session", "SessionError", "SessionExpired", "SessionInvalid", "issue", "load_secret", "verify"]

COOKIE = "engage_session"
AUDIENCE = "admin-session"


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


def issue(key_id: str, app_id: str, role: str, secret: bytes, now: datetime, hours: float) -> tuple[str, Session]:
    """A cookie value for a key that was just checked, and the session it stands for."""
    expires = datetime.fromtimestamp(int((now + timedelta(hours=hours)).timestamp()), now.tzinfo)
    token = sign({"aud": AUDIENCE, "kid": key_id, "app": app_id, "role": role}, secret, expires)
    return token, Session(key_id, app_id, role, expires)


def verify(token: str, secret: bytes, now: datetime) -> Session:
    """The session a cookie stands for; ``SessionInvalid`` if it was not made with ``secret``, was changed or is
    another kind of token, ``SessionExpired`` once its time is over."""
    try:
        claims = verify_token(token, secret, now)
    except TokenExpired as exc:
        ended = exc.expired_at.astimezone(UTC)
        raise SessionExpired(f"the session ended at {ended:%Y-%m-%d %H:%M} UTC; log in again") from None
    except TokenError:
        raise SessionInvalid("the session cookie is not one this server signed; log in again") from None
    if claims.get("aud") != AUDIENCE:
        raise SessionInvalid("that is not a session cookie (a student link?); log in again")
    try:
        return Session(str(claims["kid"]), str(claims["app"]), str(claims["role"]),
                       datetime.fromtimestamp(int(claims["exp"]), now.tzinfo))  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise SessionInvalid(f"the session cookie cannot be read ({exc}); log in again") from None
