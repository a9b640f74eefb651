"""How a student can be reached: addresses per channel, their own channel order and what they unsubscribed from.

One ``Contact`` per student, kept by whoever delivers notifications (keyed by user id). Addresses are taken as
the platform gives them and checked where they are used: an e-mail address or a phone number that is not
valid ends that send as a permanent failure with the reason (a dead letter), instead of refusing the whole
contact and with it every other channel. A channel is usable for a student only if they have an address on it
and did not unsubscribe from it (``notifications.channels.base.unreachable``).

Delivery may change a contact: a push token the provider reports as unregistered is retired, an SMS number
whose owner replied STOP is unsubscribed. Those changes come back in the delivery outcome for the owner of the
contacts to store; channels never write contacts themselves.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from schemas.events import Channel, Identifier

PushPlatform = Literal["android", "ios", "web"]


class PushToken(BaseModel):
    """One device's registration token for push (FCM), as the app registered it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(min_length=1, max_length=4096)
    platform: PushPlatform
    registered_at: AwareDatetime = Field(description="the newest device is tried first")


class Contact(BaseModel):
    """A student's addresses and channel choices."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    user_id: Identifier
    email: str | None = Field(None, description="checked when used; mail goes only to a verified address")
    email_verified: bool = False
    phone: str | None = Field(None, description="E.164 (+4915112345678); checked before an SMS is sent")
    push_tokens: list[PushToken] = Field(default_factory=list)
    channel_preferences: list[Channel] = Field(
        default_factory=list,
        description="the student's order of channels; empty: the tier's order. Channels left out are not used",
    )
    unsubscribed: frozenset[Channel] = Field(default_factory=frozenset, description="never sent on these")
    locale: str | None = None
    timezone: str | None = None

    @field_validator("channel_preferences")
    @classmethod
    def _no_duplicates(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError(f"duplicates in {[c.value for c in value]}")
        return value

    def tokens_newest_first(self) -> list[str]:
        """Push tokens, the most recently registered device first (each token once)."""
        seen: set[str] = set()
        ordered: list[str] = []
        for t in sorted(self.push_tokens, key=lambda t: t.registered_at, reverse=True):
            if t.token not in seen:
                seen.add(t.token)
                ordered.append(t.token)
        return ordered


class ContactChange(BaseModel):
    """A change to one student's contact that does not come from the platform's full record: a click on an
    unsubscribe link, a provider's report (a retired push token, an SMS STOP). The notification service, which
    holds the full contacts, folds it in and publishes the new ``Contact``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    user_id: Identifier
    at: AwareDatetime
    unsubscribe: frozenset[Channel] = Field(default_factory=frozenset, description="channels the student left")
    retire_tokens: frozenset[str] = Field(default_factory=frozenset, description="push tokens the provider refused")
    source: str = Field(min_length=1, description="who reported it: unsubscribe_link, fcm, twilio, ...")
