"""How the simulated students can be reached: one ``Contact`` each, deterministic per seed.

Shaped like a platform's real address book: most students have a verified e-mail address, some never verified it
and a few typed an invalid one (those sends end as dead letters with the reason); students on the mobile apps have
a push token for each app device; some gave a phone number; a few stated their own channel order or unsubscribed
from e-mail. Locale and zone are the student's own.
"""

from __future__ import annotations

import hashlib
import random
from datetime import datetime, timedelta

from engage.simulator.population import Student
from schemas.contacts import Contact, PushToken
from schemas.events import Channel

APP_PLATFORMS = {"ios": "ios", "android": "android"}


def contact_for(student: Student, seed: int, registered: datetime) -> Contact:
    rng = random.Random(f"{seed}:{student.user_id}:contact")
    roll = rng.random()
    email = f"{student.user_id}@students.example" if roll >= 0.02 else f"{student.user_id}.students.example"
    tokens = [
        PushToken(
            token=hashlib.sha256(f"{student.user_id}:{i}:{d.platform}".encode()).hexdigest(),
            platform=APP_PLATFORMS[d.platform],
            registered_at=registered - timedelta(days=i),
        )
        for i, d in enumerate(student.devices)
        if d.platform in APP_PLATFORMS
    ]
    phone = f"+1555{rng.randrange(10**7):07d}" if rng.random() < 0.3 else None
    preferences: list[Channel] = []
    if rng.random() < 0.1:
        preferences = [Channel.email, Channel.in_app]
    unsubscribed = frozenset({Channel.email}) if rng.random() < 0.03 else frozenset()
    return Contact(
        user_id=student.user_id,
        email=email,
        email_verified=rng.random() < 0.92,
        phone=phone,
        push_tokens=tokens,
        channel_preferences=preferences,
        unsubscribed=unsubscribed,
        locale=student.locale,
        timezone=student.timezone,
    )


def contacts_for(students: list[Student], seed: int, registered: datetime) -> list[Contact]:
    return [contact_for(s, seed, registered) for s in students]
