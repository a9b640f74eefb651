"""Which channel a message goes on: the student's order among the tier's channels, with fallback.

``plan_channels`` (pure) orders the channels to try:

1. The tier's channels come from the policy (``deploy/policy/default.json``; an ``InterventionRequest`` carries
   them as ``channels``). A student who stated a channel order (``Contact.channel_preferences``) gets those of the
   tier's channels they listed, in their order; a tier channel they left out is skipped: a preference is a choice,
   not only an order. A student who stated none gets the tier's order.
2. A channel with no provider configured here is skipped.
3. A channel the student cannot be reached on is skipped, with why (``channels.base.unreachable``): no address, an
   e-mail address not verified, no device token, no phone number, unsubscribed.
4. A channel whose provider's circuit breaker refuses sends now is skipped.

``deliver_first`` then tries them in order, each through the ``Deliverer`` (retries, breaker), each address in
order (push: the newest device first; a retired token moves on to the next device), and stops at the first
delivery. Any other outcome falls back to the next channel: a permanent failure (this address will never work,
the student replied STOP), a misconfigured provider, retries run out, a breaker that opened since the plan was
made. The ``FinalOutcome`` has the delivery or none, every failure in order, the skipped channels with why, the
contact changes to store (retired tokens, channels unsubscribed at the provider) and, when nothing was delivered,
the complete dead-letter ``reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from notifications.channels.base import Channel, ChannelError, Message, recipients, unreachable
from notifications.resilience import Delivered, Deliverer, Undelivered
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName


@dataclass(frozen=True, slots=True)
class ChannelPlan:
    order: tuple[ChannelName, ...]
    skipped: tuple[tuple[ChannelName, str], ...]  # (channel, why), in the tier's order


def plan_channels(
    tier_channels: Sequence[ChannelName],
    contact: Contact,
    *,
    configured: Collection[ChannelName],
    refusing: Callable[[ChannelName], bool] = lambda _: False,
) -> ChannelPlan:
    """The channels to try, in order, and those of the tier that will not be, with why (pure)."""
    preferred = contact.channel_preferences
    wanted = [c for c in preferred if c in tier_channels] if preferred else list(tier_channels)
    why: dict[ChannelName, str] = {}
    for channel in tier_channels:
        if channel not in wanted:
            why[channel] = "not among the student's channels"
        elif channel not in configured:
            why[channel] = "no provider configured"
        elif (reason := unreachable(channel, contact)) is not None:
            why[channel] = reason
        elif refusing(channel):
            why[channel] = "its provider's circuit breaker is open"
    order = tuple(c for c in wanted if c not in why)
    return ChannelPlan(order, tuple((c, why[c]) for c in tier_channels if c in why))


@dataclass(frozen=True, slots=True)
class FinalOutcome:
    intervention_id: str
    delivered: Delivered | None
    failures: tuple[Undelivered, ...]
    skipped: tuple[tuple[ChannelName, str], ...]
    retired_tokens: tuple[str, ...]  # remove these from the student's contact
    unsubscribed: tuple[ChannelName, ...]  # the student opted out at the provider: record it

    @property
    def reason(self) -> str:
        """The dead letter's reason when nothing was delivered ("" when something was)."""
        if self.delivered is not None:
            return ""
        parts = [f.reason for f in self.failures]
        parts += [f"{channel.value}: skipped, {why}" for channel, why in self.skipped]
        told = "; ".join(parts) if parts else "the tier has no channels"
        return f"intervention {self.intervention_id} not delivered on any channel: {told}"


Compose = Callable[[ChannelName, str], Message]


async def deliver_first(
    deliverer: Deliverer,
    channels: Mapping[ChannelName, Channel],
    plan: ChannelPlan,
    contact: Contact,
    intervention_id: str,
    compose: Compose,
) -> FinalOutcome:
    """Try the plan's channels in order until one delivers. ``compose(channel, address)`` makes the message (it may
    raise a ``ChannelError``, e.g. no template for that channel: that channel then counts as failed)."""
    failures: list[Undelivered] = []
    retired: list[str] = []
    unsubscribed: list[ChannelName] = []

    def final(delivered: Delivered | None) -> FinalOutcome:
        return FinalOutcome(
            intervention_id, delivered, tuple(failures), plan.skipped, tuple(retired), tuple(unsubscribed)
        )

    for name in plan.order:
        channel = channels[name]
        for address in recipients(name, contact):
            try:
                message = compose(name, address)
            except ChannelError as exc:
                reason = f"{name.value} via {channel.provider}: cannot compose the message: {exc.reason}"
                failures.append(Undelivered(name, channel.provider, "permanent", reason, 0))
                break
            outcome = await deliverer.deliver(channel, message)
            if isinstance(outcome, Delivered):
                return final(outcome)
            failures.append(outcome)
            if outcome.unsubscribe:
                unsubscribed.append(name)
            if outcome.kind == "retired_token" and outcome.retired_token is not None:
                retired.append(outcome.retired_token)
                continue  # the student's next device
            break  # the next channel
    return final(None)
