"""Tracking tokens and the URLs that carry them (pure: no I/O; the clock and the secrets are passed in).

A token is what the tracking endpoints (``streams.collector.tracking``) need to turn a hit into an event and an
outcome: which intervention, which student, which channel, until when, and for a click where to send the
student. It is encrypted and authenticated (AES-256-GCM), so a URL shows nothing of the student (no user id in
clear, as the issue asks) and a changed byte is refused, not misread.

Layout (then base64url without padding)::

    key id (1 byte) | nonce (12 bytes, random) | ciphertext of the claims + GCM tag (16 bytes)

- One key per purpose (open, click, unsubscribe, status), derived from the secret with HKDF-SHA256: a token
  minted for the pixel does not open the unsubscribe endpoint, and the purpose is also bound as associated data.
- Rotation: ``TokenKeys`` takes several secrets, the first mints, all verify. The key id byte (from a hash of
  the secret) picks the secret without trying each; two secrets sharing a byte are both tried.
- Claims are a compact JSON array (intervention id, user id, channel, expiry in Unix seconds, click target):
  about 200 characters of URL for uuid ids.
- Verification raises ``BadToken`` (not base64, too short, wrong key, tampered, wrong purpose, a target that is
  not http(s)) -> 400, or ``ExpiredToken`` (authentic but past its expiry) -> 410; expiry is checked only after
  the token proved authentic, so garbage can never earn a 410.

``TrackingLinks`` makes the URLs a message carries (the notification service's ``LinkMaker``): the action link
(a click through ``/t/c/{token}`` to the platform's page for this intervention), the unsubscribe link
(``/t/u/{token}``), the preferences page (the platform's, not signed: the student is logged in there), the
e-mail open pixel (``/t/o/{token}``) and the SMS delivery callback given to Twilio
(``/v1/webhooks/twilio/status/{token}``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from processors.notify.context import Links
from schemas.events import Channel as ChannelName
from schemas.interventions import InterventionRequest

NONCE_BYTES = 12
TAG_BYTES = 16
MAX_TOKEN_CHARS = 4096  # a URL path segment browsers and proxies all pass
MIN_SECRET_BYTES = 16


class Purpose(StrEnum):
    """What a token is for; each has its own key and its own endpoint."""

    open = "open"
    click = "click"
    unsubscribe = "unsubscribe"
    status = "status"


# Where each purpose's token goes, relative to the tracking base URL (the collector's public address).
PATHS: dict[Purpose, str] = {
    Purpose.open: "/t/o/",
    Purpose.click: "/t/c/",
    Purpose.unsubscribe: "/t/u/",
    Purpose.status: "/v1/webhooks/twilio/status/",
}


class TokenError(ValueError):
    """A token that cannot be honoured; ``status`` is the HTTP answer for it."""

    status = 400


class BadToken(TokenError):
    """Not one of our tokens: malformed, tampered with, made with another key or for another purpose."""


class ExpiredToken(TokenError):
    """One of our tokens, past its expiry (``claims`` says whose, for logs and metrics)."""

    status = 410

    def __init__(self, claims: Claims) -> None:
        super().__init__(f"this {claims.purpose.value} link expired on {claims.expires_at.date().isoformat()}")
        self.claims = claims


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    purpose: Purpose
    intervention_id: str
    user_id: str
    channel: ChannelName
    expires_at: datetime
    target: str | None = None  # click: where to send the student


def _key_id(secret: bytes) -> int:
    return hashlib.sha256(b"engage/tracking/key-id\x00" + secret).digest()[0]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or len(text) > MAX_TOKEN_CHARS:
        raise BadToken("the link's token is empty or too long")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise BadToken("the link's token is not valid base64url") from None


def _web_target(target: str) -> bool:
    parts = urlsplit(target)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def redirect_allowed(target: str, hosts: Sequence[str]) -> bool:
    """Whether a click may go to ``target``: any http(s) URL a valid token holds, or, when ``hosts`` is set, only
    those hosts (defence in depth should the secret leak: the collector never redirects elsewhere)."""
    if not _web_target(target):
        return False
    return not hosts or (urlsplit(target).hostname or "").lower() in {h.lower() for h in hosts}


class TokenKeys:
    """The AES-GCM keys of every secret (the first mints, all verify), one per purpose."""

    def __init__(self, secrets: Sequence[bytes]) -> None:
        if not secrets:
            raise ValueError("tracking needs at least one secret")
        for secret in secrets:
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"a tracking secret must have at least {MIN_SECRET_BYTES} bytes")
        self._keys: list[tuple[int, dict[Purpose, AESGCM]]] = [
            (_key_id(secret), {p: AESGCM(self._derive(secret, p)) for p in Purpose}) for secret in secrets
        ]

    @staticmethod
    def _derive(secret: bytes, purpose: Purpose) -> bytes:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"engage/tracking/v1/{purpose}".encode())
        return hkdf.derive(secret)

    def seal(self, purpose: Purpose, plaintext: bytes, nonce: bytes) -> bytes:
        key_id, ciphers = self._keys[0]
        header = bytes([key_id])
        return header + nonce + ciphers[purpose].encrypt(nonce, plaintext, header + purpose.encode())

    def open(self, purpose: Purpose, token: bytes) -> bytes:
        if len(token) < 1 + NONCE_BYTES + TAG_BYTES:
            raise BadToken("the link's token is too short")
        key_id, nonce, sealed = token[0], token[1 : 1 + NONCE_BYTES], token[1 + NONCE_BYTES :]
        for candidate_id, ciphers in self._keys:
            if candidate_id != key_id:
                continue
            try:
                return ciphers[purpose].decrypt(nonce, sealed, token[:1] + purpose.encode())
            except InvalidTag:
                continue
        raise BadToken(f"the link's token is not a valid {purpose.value} token (altered, or made with another key)")


def _random_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


class TokenCodec:
    """Mints and verifies tokens with ``keys``; ``nonce`` gives 12 random bytes (replaceable in tests)."""

    def __init__(self, keys: TokenKeys, nonce: Callable[[], bytes] = _random_nonce) -> None:
        self.keys = keys
        self._nonce = nonce

    def mint(self, claims: Claims) -> str:
        if claims.purpose is Purpose.click and (claims.target is None or not _web_target(claims.target)):
            raise ValueError(f"a click token needs an http(s) target, not {claims.target!r}")
        body: list[Any] = [
            claims.intervention_id,
            claims.user_id,
            claims.channel.value,
            int(claims.expires_at.timestamp()),
        ]
        if claims.target is not None:
            body.append(claims.target)
        return _b64(self.keys.seal(claims.purpose, orjson.dumps(body), self._nonce()))

    def verify(self, purpose: Purpose, token: str, now: datetime) -> Claims:
        """The token's claims; ``BadToken`` or ``ExpiredToken`` otherwise (see the module docstring)."""
        plain = self.keys.open(purpose, _unb64(token))
        try:
            body = orjson.loads(plain)
            intervention_id, user_id, channel, expires = body[:4]
            target = body[4] if len(body) > 4 else None
            claims = Claims(
                purpose=purpose,
                intervention_id=str(intervention_id),
                user_id=str(user_id),
                channel=ChannelName(channel),
                expires_at=datetime.fromtimestamp(int(expires), UTC),
                target=None if target is None else str(target),
            )
        except (orjson.JSONDecodeError, ValueError, TypeError, IndexError):
            raise BadToken("the link's token does not hold what a tracking token holds") from None
        if purpose is Purpose.click and (claims.target is None or not _web_target(claims.target)):
            raise BadToken("the link's token has no web address to go to")
        if claims.expires_at <= now:
            raise ExpiredToken(claims)
        return claims


class LinkMaker(Protocol):
    """What the notification service asks for the URLs of one message."""

    def links(self, request: InterventionRequest, channel: ChannelName) -> Links: ...

    def open_pixel(self, request: InterventionRequest, channel: ChannelName) -> str | None: ...

    def status_callback(self, request: InterventionRequest, channel: ChannelName) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """Where links point and how long they work."""

    base_url: str  # the collector's public address: where the tracking endpoints are
    action_url: str  # the platform's page for an intervention; {channel} and {intervention_type} are filled in
    preferences_url: str
    link_ttl: timedelta = timedelta(days=60)  # opens and clicks
    unsubscribe_ttl: timedelta = timedelta(days=400)  # an unsubscribe link must keep working long after the send
    status_ttl: timedelta = timedelta(days=7)  # Twilio reports within hours


def _utc_now() -> datetime:
    return datetime.now(UTC)


class TrackingLinks:
    """``LinkMaker`` with signed, encrypted tokens (``TokenCodec``)."""

    def __init__(self, codec: TokenCodec, policy: LinkPolicy, clock: Callable[[], datetime] = _utc_now) -> None:
        if not _web_target(policy.base_url):
            raise ValueError(f"the tracking base URL must be http(s)://host..., not {policy.base_url!r}")
        self.codec = codec
        self.policy = policy
        self.clock = clock
        self._base = policy.base_url.rstrip("/")

    def action_target(self, request: InterventionRequest, channel: ChannelName) -> str:
        """The platform URL a click on this message leads to (no ids in it: the intervention id may name the
        student)."""
        return self.policy.action_url.replace("{channel}", channel.value).replace(
            "{intervention_type}", request.intervention_type.value
        )

    def url(
        self, purpose: Purpose, request: InterventionRequest, channel: ChannelName, target: str | None = None
    ) -> str:
        ttl = {
            Purpose.unsubscribe: self.policy.unsubscribe_ttl,
            Purpose.status: self.policy.status_ttl,
        }.get(purpose, self.policy.link_ttl)
        claims = Claims(purpose, request.intervention_id, request.user_id, channel, self.clock() + ttl, target)
        return f"{self._base}{PATHS[purpose]}{self.codec.mint(claims)}"

    def links(self, request: InterventionRequest, channel: ChannelName) -> Links:
        return Links(
            action=self.url(Purpose.click, request, channel, self.action_target(request, channel)),
            unsubscribe=self.url(Purpose.unsubscribe, request, channel),
            preferences=self.policy.preferences_url,
        )

    def open_pixel(self, request: InterventionRequest, channel: ChannelName) -> str | None:
        return self.url(Purpose.open, request, channel) if channel is ChannelName.email else None

    def status_callback(self, request: InterventionRequest, channel: ChannelName) -> str | None:
        return self.url(Purpose.status, request, channel) if channel is ChannelName.sms else None

    def callback_url(self, token: str) -> str:
        """The full URL Twilio was given for ``token`` (what its signature covers)."""
        return f"{self._base}{PATHS[Purpose.status]}{token}"
