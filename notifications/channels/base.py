"""The provider contract every channel follows, kept small (like a sink contract): a name, whether a student can be
reached on it, and ``send`` - one message to one address - that either returns a ``Delivery`` (the provider
accepted the message) or raises one of three typed errors:

``Retryable``      the provider could not take it now: timeouts, refused connections, 429, 5xx, SMTP 4xx. Carries
                   ``retry_after`` (seconds) when the provider said how long to wait (``Retry-After``).
``Permanent``      this message to this address will never go: an invalid e-mail address or phone number, a
                   recipient the provider refuses (SMTP 5xx on RCPT, Twilio 21211/21614), a student who replied STOP
                   (``unsubscribe=True``: the owner of the contact should record it). Not retried; the next channel
                   is tried. ``Misconfigured`` is the kind of ``Permanent`` that is the provider's or our setup's
                   fault, not the student's (401, bad credentials, bad sender): it also counts against the
                   provider's circuit breaker.
``RetireToken``    a push token is dead (FCM UNREGISTERED, INVALID_ARGUMENT on the token, SENDER_ID_MISMATCH): drop
                   it from the student's contact, and try their next device.

Channels do no retrying and keep no breaker: ``notifications.resilience`` wraps every provider with both, the
same way for all of them. A channel never changes a contact; what should change comes back in the outcome.

Pure helpers beside the contract: ``unreachable`` (why a student cannot be reached on a channel: no address, not
verified, unsubscribed) and ``recipients`` (the addresses to try, in order), used by every channel's
``available_for`` and by the channel choice; ``parse_retry_after`` (both forms of the header) and ``mask`` (an
address as it may appear in a reason: enough to recognise, not enough to use).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

from processors.notify.templates import RenderedMessage
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName

# -- errors ---------------------------------------------------------------------------------------------------


class ChannelError(Exception):
    """A send that did not reach the provider's acceptance; ``reason`` says why in words (it ends in dead letters)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Retryable(ChannelError):
    """Try again later: the provider was unreachable, slow, overloaded or rate limiting."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Permanent(ChannelError):
    """This message will never go to this address; ``unsubscribe``: the student opted out at the provider."""

    def __init__(self, reason: str, *, unsubscribe: bool = False) -> None:
        super().__init__(reason)
        self.unsubscribe = unsubscribe


class Misconfigured(Permanent):
    """Permanent, and the fault is the provider's setup or ours (credentials, sender), not the student's address:
    every send would fail the same way, so it counts against the provider's circuit breaker."""


class RetireToken(ChannelError):
    """The push token is no longer valid for us: remove it from the student's contact."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token = token


# -- what goes in and what comes out ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered message for one channel and one address (``to``: an e-mail address, an E.164 number, a device
    token, or the user id for the in-app inbox). ``parts`` are the template's parts for the channel
    (``processors.notify.templates.CHANNEL_PARTS``)."""

    intervention_id: str
    user_id: str
    channel: ChannelName
    to: str
    parts: Mapping[str, str]
    locale: str = "en"
    action_url: str | None = None
    unsubscribe_url: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)  # extra key/values (push data payload, in-app)
    open_pixel_url: str | None = None  # e-mail: an invisible image whose fetch reports the open (tracking)

    @property
    def key(self) -> str:
        """Idempotency key of the send: one intervention, one channel (whatever the address)."""
        return f"{self.intervention_id}/{self.channel.value}"

    def part(self, name: str) -> str:
        try:
            return self.parts[name]
        except KeyError:
            raise Permanent(f"the message has no {name!r} part for {self.channel.value}") from None

    def addressed_to(self, to: str) -> Message:
        return dataclasses.replace(self, to=to)

    @classmethod
    def from_rendered(
        cls,
        rendered: RenderedMessage,
        *,
        intervention_id: str,
        user_id: str,
        to: str,
        action_url: str | None = None,
        unsubscribe_url: str | None = None,
        data: Mapping[str, str] | None = None,
        open_pixel_url: str | None = None,
    ) -> Message:
        return cls(
            intervention_id=intervention_id,
            user_id=user_id,
            channel=rendered.channel,
            to=to,
            parts=dict(rendered.parts),
            locale=rendered.locale,
            action_url=action_url,
            unsubscribe_url=unsubscribe_url,
            data=dict(data or {}),
            open_pixel_url=open_pixel_url,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """The provider accepted the message. ``provider_id``: its id there (Message-ID, FCM message name, Twilio SID,
    inbox item id)."""

    channel: ChannelName
    provider: str
    provider_id: str
    to: str
    detail: str = ""


# -- the contract -----------------------------------------------------------------------------------------------


class Channel(Protocol):
    """A delivery channel over one provider. ``provider`` names the provider (``smtp``, ``fcm``, ``twilio``,
    ``inbox``): breakers and metrics are per provider."""

    name: ChannelName
    provider: str

    def available_for(self, contact: Contact) -> bool:
        """Whether the student can be reached here at all (an address, verified, not unsubscribed)."""
        ...

    async def send(self, message: Message) -> Delivery:
        """Hand one message to the provider; raise ``Retryable``, ``Permanent`` or ``RetireToken`` otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections (HTTP clients)."""
        ...


# -- pure helpers -----------------------------------------------------------------------------------------------


def unreachable(channel: ChannelName, contact: Contact) -> str | None:
    """Why the student cannot be reached on ``channel`` (None: they can)."""
    if channel in contact.unsubscribed:
        return f"unsubscribed from {channel.value}"
    if channel is ChannelName.email and not contact.email:
        return "no e-mail address"
    if channel is ChannelName.email and not contact.email_verified:
        return "e-mail address not verified"
    if channel is ChannelName.push and not contact.push_tokens:
        return "no device token"
    if channel is ChannelName.sms and not contact.phone:
        return "no phone number"
    return None


def recipients(channel: ChannelName, contact: Contact) -> list[str]:
    """The addresses to try on ``channel``, in order (push: the newest device first); [] when unreachable."""
    if unreachable(channel, contact) is not None:
        return []
    if channel is ChannelName.email:
        return [contact.email] if contact.email else []
    if channel is ChannelName.push:
        return contact.tokens_newest_first()
    if channel is ChannelName.sms:
        return [contact.phone] if contact.phone else []
    return [contact.user_id]  # in-app: the inbox is the student's


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds (``"120"``) or an HTTP date; None if absent or garbage."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def mask(address: str) -> str:
    """An address as it may appear in a reason or a log: ``j***@example.org``, ``+4915*****678``, ``dJx3…``."""
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if address.startswith("+") and len(address) > 8:
        return address[:5] + "*" * (len(address) - 8) + address[-3:]
    if len(address) > 8:
        return address[:4] + "…"
    return "***"


def scrub(text: str, address: str) -> str:
    """``text`` (a provider's error message) with ``address`` masked wherever it appears."""
    return text.replace(address, mask(address)) if address else text
