"""Fakes for the delivery tests: a channel answering from a script, and a clock that sleeps by moving."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from notifications.channels.base import Delivery, Message
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName

OK = "ok"


@dataclass
class Scripted:
    """A channel answering from a script: ``OK`` or an exception per send (the last entry repeats)."""

    script: list[object]
    name: ChannelName = ChannelName.push
    provider: str = "fake"
    sent: list[Message] = field(default_factory=list)
    gate: asyncio.Event | None = None  # if set, each send waits for it

    def available_for(self, contact: Contact) -> bool:
        return True

    async def send(self, message: Message) -> Delivery:
        self.sent.append(message)
        if self.gate is not None:
            await self.gate.wait()
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, BaseException):
            raise step
        return Delivery(self.name, self.provider, f"id-{len(self.sent)}", message.to)

    async def aclose(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
