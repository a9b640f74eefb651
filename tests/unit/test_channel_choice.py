"""Channel choice with fallback: the student's order among the tier's channels, skipping what cannot reach them,
falling back when a provider fails permanently, runs out of retries or has its breaker open."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from notifications.channels.base import Message, Misconfigured, Permanent, RetireToken, Retryable
from notifications.resilience import Deliverer, RetryPolicy
from notifications.routing import ChannelPlan, FinalOutcome, deliver_first, plan_channels
from processors.policy import policy_from_file
from schemas.contacts import Contact, PushToken
from schemas.events import Channel
from tests.unit.channel_fakes import OK, Clock, Scripted

EMAIL, PUSH, SMS, IN_APP = Channel.email, Channel.push, Channel.sms, Channel.in_app
ALL = frozenset(Channel)
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def reachable_everywhere(**overrides: object) -> Contact:
    fields: dict[str, object] = {
        "user_id": "student-1",
        "email": "s1@example.org",
        "email_verified": True,
        "phone": "+4915112345678",
        "push_tokens": [
            PushToken(token="tablet-token", platform="ios", registered_at=NOW - timedelta(days=9)),
            PushToken(token="phone-token", platform="android", registered_at=NOW),
        ],
        **overrides,
    }
    return Contact.model_validate(fields)


# -- the plan (pure) ----------------------------------------------------------------------------------------------


def test_the_students_order_among_the_tiers_channels():
    contact = reachable_everywhere(channel_preferences=[SMS, EMAIL, PUSH])
    plan = plan_channels([PUSH, EMAIL, IN_APP], contact, configured=ALL)
    assert plan == ChannelPlan((EMAIL, PUSH), ((IN_APP, "not among the student's channels"),))


def test_without_preferences_the_tiers_order():
    assert plan_channels([PUSH, EMAIL, IN_APP], reachable_everywhere(), configured=ALL).order == (PUSH, EMAIL, IN_APP)


def test_the_default_policys_tiers():
    tiers = policy_from_file().tiers
    contact = reachable_everywhere(phone=None)
    assert plan_channels(tiers["critical"].channels, contact, configured=ALL) == ChannelPlan(
        (EMAIL, PUSH), ((SMS, "no phone number"),)
    )
    assert plan_channels(tiers["medium"].channels, contact, configured=ALL).order == (IN_APP, PUSH)
    assert plan_channels(tiers["minimal"].channels, contact, configured=ALL) == ChannelPlan((), ())


@pytest.mark.parametrize(
    ("overrides", "channel", "why"),
    [
        ({"push_tokens": []}, PUSH, "no device token"),
        ({"email_verified": False}, EMAIL, "e-mail address not verified"),
        ({"email": None}, EMAIL, "no e-mail address"),
        ({"phone": None}, SMS, "no phone number"),
        ({"unsubscribed": frozenset({EMAIL})}, EMAIL, "unsubscribed from email"),
        ({"unsubscribed": frozenset({IN_APP})}, IN_APP, "unsubscribed from in_app"),
    ],
)
def test_channels_that_cannot_reach_the_student_are_skipped_with_why(overrides, channel, why):
    plan = plan_channels([EMAIL, SMS, PUSH, IN_APP], reachable_everywhere(**overrides), configured=ALL)
    assert channel not in plan.order and plan.skipped == ((channel, why),)


def test_unconfigured_providers_and_open_breakers_are_skipped():
    plan = plan_channels(
        [EMAIL, SMS, PUSH, IN_APP],
        reachable_everywhere(),
        configured={EMAIL, PUSH, IN_APP},
        refusing=lambda c: c is PUSH,
    )
    assert plan.order == (EMAIL, IN_APP)
    assert plan.skipped == ((SMS, "no provider configured"), (PUSH, "its provider's circuit breaker is open"))


# -- the fallback -------------------------------------------------------------------------------------------------


def compose(channel: Channel, address: str) -> Message:
    return Message("iv-1", "student-1", channel, address, {"title": "t", "body": "b"})


def run(
    channels: dict[Channel, Scripted], tiers: list[Channel], contact: Contact, deliverer: Deliverer | None = None
) -> FinalOutcome:
    d = deliverer or Deliverer(RetryPolicy(attempts=2), clock=(clock := Clock()), sleep=clock.sleep)
    plan = plan_channels(tiers, contact, configured=set(channels), refusing=lambda c: d.is_open(channels[c].provider))
    return asyncio.run(deliver_first(d, channels, plan, contact, "iv-1", compose))


def fakes(**scripts: list[object]) -> dict[Channel, Scripted]:
    return {
        Channel(name): Scripted(script, name=Channel(name), provider=f"{name}-provider")
        for name, script in scripts.items()
    }


def test_the_first_channel_that_delivers_ends_it():
    channels = fakes(email=[OK], push=[OK])
    final = run(channels, [EMAIL, PUSH], reachable_everywhere())
    assert final.delivered is not None and final.delivered.channel is EMAIL and final.reason == ""
    assert channels[PUSH].sent == []


def test_a_permanent_failure_falls_back_to_the_next_channel():
    channels = fakes(email=[Permanent("550 user unknown")], sms=[OK])
    final = run(channels, [EMAIL, SMS], reachable_everywhere())
    assert final.delivered is not None and final.delivered.channel is SMS
    assert [(f.channel, f.kind) for f in final.failures] == [(EMAIL, "permanent")]


def test_a_retired_token_moves_to_the_next_device_and_is_reported():
    channels = fakes(push=[RetireToken("phone-token", "UNREGISTERED"), OK])
    final = run(channels, [PUSH], reachable_everywhere())
    assert [m.to for m in channels[PUSH].sent] == ["phone-token", "tablet-token"]  # newest device first
    assert final.delivered is not None and final.delivered.delivery.to == "tablet-token"
    assert final.retired_tokens == ("phone-token",)


def test_every_token_dead_falls_back_to_the_next_channel():
    channels = fakes(push=[RetireToken("phone-token", "UNREGISTERED"), RetireToken("tablet-token", "UNREGISTERED")])
    channels.update(fakes(in_app=[OK]))
    final = run(channels, [PUSH, IN_APP], reachable_everywhere())
    assert final.delivered is not None and final.delivered.channel is IN_APP
    assert final.retired_tokens == ("phone-token", "tablet-token")


def test_exhausted_retries_and_misconfiguration_fall_back_too():
    channels = fakes(push=[Retryable("503")], email=[Misconfigured("535 auth")], in_app=[OK])
    final = run(channels, [PUSH, EMAIL, IN_APP], reachable_everywhere())
    assert final.delivered is not None and final.delivered.channel is IN_APP
    assert [(f.channel, f.kind, f.attempts) for f in final.failures] == [
        (PUSH, "retries_exhausted", 2),
        (EMAIL, "misconfigured", 1),
    ]


def test_an_open_breaker_is_skipped_at_planning_and_one_opened_meanwhile_falls_back():
    clock = Clock()
    d = Deliverer(RetryPolicy(attempts=1), breaker_failures=1, clock=clock, sleep=clock.sleep)
    channels = fakes(push=[Retryable("503")], email=[OK])
    run(channels, [PUSH], reachable_everywhere(), d)  # opens the push provider's breaker
    later = run(channels, [PUSH, EMAIL], reachable_everywhere(), d)
    assert later.skipped == ((PUSH, "its provider's circuit breaker is open"),)
    assert later.delivered is not None and later.delivered.channel is EMAIL

    plan = ChannelPlan((PUSH, EMAIL), ())  # planned before the breaker opened
    final = asyncio.run(deliver_first(d, channels, plan, reachable_everywhere(), "iv-1", compose))
    assert [f.kind for f in final.failures] == ["breaker_open"]
    assert final.delivered is not None and final.delivered.channel is EMAIL


def test_when_nothing_delivers_the_reason_tells_everything_and_an_unsubscribe_is_reported():
    channels = fakes(sms=[Permanent("Twilio error 21610: unsubscribed recipient", unsubscribe=True)])
    channels.update(fakes(email=[Permanent("550 5.1.1 user unknown")], push=[OK]))
    final = run(channels, [EMAIL, SMS, PUSH], reachable_everywhere(push_tokens=[]))
    assert final.delivered is None and final.unsubscribed == (SMS,)
    assert final.reason == (
        "intervention iv-1 not delivered on any channel: "
        "email via email-provider: will not go to this address; attempts: 1) 550 5.1.1 user unknown; "
        "sms via sms-provider: will not go to this address; attempts: 1) Twilio error 21610: unsubscribed recipient; "
        "push: skipped, no device token"
    )


def test_a_message_that_cannot_be_composed_for_a_channel_falls_back():
    channels = fakes(email=[OK], in_app=[OK])

    def no_email_template(channel: Channel, address: str) -> Message:
        if channel is EMAIL:
            raise Permanent("no template gentle_reminder/email for locale de")
        return compose(channel, address)

    d = Deliverer(RetryPolicy(attempts=1))
    plan = plan_channels([EMAIL, IN_APP], reachable_everywhere(), configured=ALL)
    final = asyncio.run(deliver_first(d, channels, plan, reachable_everywhere(), "iv-1", no_email_template))
    assert final.delivered is not None and final.delivered.channel is IN_APP
    assert "cannot compose the message: no template gentle_reminder/email" in final.failures[0].reason
    assert channels[EMAIL].sent == []


def test_no_channel_at_all():
    final = run({}, [], reachable_everywhere())
    assert final.delivered is None and final.reason.endswith("the tier has no channels")


def test_the_settings_decide_which_channels_exist(tmp_path):
    from config.settings import Settings
    from notifications.channels.configured import configured_channels
    from notifications.inbox import SqliteInbox

    inbox = SqliteInbox(tmp_path / "inbox.sqlite3")
    assert set(configured_channels(Settings(run_dir=tmp_path), inbox)) == {EMAIL, IN_APP}
    everything = Settings(
        run_dir=tmp_path,
        fcm_project_id="engage-test",
        fcm_access_token="ya29.t",
        twilio_account_sid="AC1",
        twilio_auth_token="secret",
        twilio_messaging_service_sid="MG1",
    )
    channels = configured_channels(everything, inbox)
    assert {c: ch.provider for c, ch in channels.items()} == {
        EMAIL: "smtp",
        IN_APP: "inbox",
        PUSH: "fcm",
        SMS: "twilio",
    }

    async def close() -> None:
        for channel in channels.values():
            await channel.aclose()

    asyncio.run(close())
