"""The simulated students' contacts: deterministic per seed, shaped like a real address book."""

from __future__ import annotations

from datetime import UTC, datetime

from engage.simulator import Population
from engage.simulator.contacts import contacts_for
from notifications.channels.base import unreachable
from schemas.events import Channel

AT = datetime(2026, 3, 1, tzinfo=UTC)


def test_contacts_are_deterministic_and_every_student_has_one() -> None:
    students = list(Population.generate(300, seed=7).students)
    first, again = contacts_for(students, 7, AT), contacts_for(students, 7, AT)
    assert first == again
    assert [c.user_id for c in first] == [s.user_id for s in students]
    assert contacts_for(students, 8, AT) != first


def test_most_are_reachable_by_email_some_are_not_and_app_users_have_push_tokens() -> None:
    students = list(Population.generate(1000, seed=7).students)
    contacts = contacts_for(students, 7, AT)
    email_ok = sum(unreachable(Channel.email, c) is None for c in contacts)
    assert 800 < email_ok < 950  # unverified, invalid and unsubscribed addresses exist
    apps = {s.user_id for s in students if any(d.platform in ("ios", "android") for d in s.devices)}
    assert {c.user_id for c in contacts if c.push_tokens} == apps
    assert all(c.locale == s.locale and c.timezone == s.timezone for c, s in zip(contacts, students, strict=True))
