"""SMS over Twilio's Messages API, against a local server implementing the endpoint and its error answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from deploy.process import free_ports
from deploy.providers.http import Answer
from deploy.providers.twilio import TwilioServer, twilio_error
from notifications.channels.base import Delivery, Message, Misconfigured, Permanent, Retryable
from notifications.channels.sms import TwilioSmsChannel, number_problem
from schemas.contacts import Contact
from schemas.events import Channel

pytestmark = pytest.mark.local_servers

NUMBER = "+4915112345678"


def message(to: str = NUMBER) -> Message:
    return Message(
        intervention_id="iv-9",
        user_id="student-42",
        channel=Channel.sms,
        to=to,
        parts={"body": "Hi Sam, 2 days to a 14-day streak. One lesson today keeps it going."},
    )


def run(scenario: Callable[[TwilioServer], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with TwilioServer() as twilio:
            return await scenario(twilio)

    return asyncio.run(main())


def channel(twilio: TwilioServer, **overrides: Any) -> TwilioSmsChannel:
    options: dict[str, Any] = {
        "account_sid": twilio.account_sid,
        "auth_token": twilio.auth_token,
        "base_url": twilio.base_url,
        "from_number": "+15005550006",
        "timeout_seconds": 2.0,
        **overrides,
    }
    return TwilioSmsChannel(**options)


async def send_one(twilio: TwilioServer, msg: Message | None = None, **overrides: Any) -> Delivery:
    ch = channel(twilio, **overrides)
    try:
        return await ch.send(msg or message())
    finally:
        await ch.aclose()


def test_a_send_is_the_documented_form_with_basic_auth_and_the_sid_comes_back():
    async def scenario(twilio: TwilioServer) -> tuple[Delivery, Delivery]:
        return await send_one(twilio), await send_one(twilio, from_number="", messaging_service_sid="MG" + "1" * 32)

    with_from, with_service = run(scenario)
    assert with_from.provider_id.startswith("SM") and with_from.detail == "queued"
    assert (with_from.channel, with_from.provider, with_from.to) == (Channel.sms, "twilio", NUMBER)
    assert with_service.provider_id != with_from.provider_id


def test_the_request_itself():
    async def scenario(twilio: TwilioServer) -> list[dict[str, Any]]:
        await send_one(twilio)
        return twilio.requests

    (request,) = run(scenario)
    assert request["path"] == f"/2010-04-01/Accounts/AC{'0' * 32}/Messages.json"
    assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert request["headers"]["Authorization"].startswith("Basic ")
    assert request["form"] == {
        "To": NUMBER,
        "From": "+15005550006",
        "Body": "Hi Sam, 2 days to a 14-day streak. One lesson today keeps it going.",
    }


@pytest.mark.parametrize("number", ["015112345678", "+49 151 12345678", "+0151123", "+1", "4915112345678", ""])
def test_a_number_not_in_e164_is_permanent_without_a_request(number):
    assert number_problem(number) is not None

    async def scenario(twilio: TwilioServer) -> list[dict[str, Any]]:
        with pytest.raises(Permanent, match="invalid phone number"):
            await send_one(twilio, message(number))
        return twilio.requests

    assert run(scenario) == []


def test_numbers_in_e164():
    assert all(number_problem(n) is None for n in ["+4915112345678", "+15005550006", "+447700900123", "+8613800138000"])
    assert number_problem("+1234567890123456") == "more than 15 digits"


def test_twilio_error_codes_are_mapped():
    async def scenario(twilio: TwilioServer) -> None:
        invalid, stop, landline = "+15005550001", "+15005550004", "+15005550009"
        twilio.answers[invalid] = [
            Answer(400, twilio_error(21211, f"The 'To' number {invalid} is not a valid phone number.", 400))
        ]
        twilio.answers[stop] = [Answer(400, twilio_error(21610, "Attempt to send to unsubscribed recipient", 400))]
        twilio.answers[landline] = [Answer(400, twilio_error(21614, "'To' number is not a valid mobile number", 400))]
        with pytest.raises(Permanent, match="21211") as bad:
            await send_one(twilio, message(invalid))
        assert not bad.value.unsubscribe and not isinstance(bad.value, Misconfigured)
        assert invalid not in bad.value.reason  # masked in the reason: +1500*******001
        with pytest.raises(Permanent, match="21610") as unsubscribed:
            await send_one(twilio, message(stop))
        assert unsubscribed.value.unsubscribe and "replied STOP" in unsubscribed.value.reason
        with pytest.raises(Permanent, match="21614") as not_mobile:
            await send_one(twilio, message(landline))
        assert not not_mobile.value.unsubscribe

    run(scenario)


def test_rate_limits_and_server_errors_are_retryable():
    async def scenario(twilio: TwilioServer) -> None:
        twilio.answers["+15005550100"] = [
            Answer(429, twilio_error(20429, "Too Many Requests", 429), {"Retry-After": "3"})
        ]
        twilio.answers["+15005550101"] = [Answer(503, twilio_error(20500, "Service Unavailable", 503))]
        twilio.answers["+15005550102"] = [Answer(500, "<html>Internal Server Error</html>")]
        with pytest.raises(Retryable, match="20429") as limited:
            await send_one(twilio, message("+15005550100"))
        assert limited.value.retry_after == 3
        with pytest.raises(Retryable, match="503"):
            await send_one(twilio, message("+15005550101"))
        with pytest.raises(Retryable, match="500"):
            await send_one(twilio, message("+15005550102"))

    run(scenario)


def test_wrong_credentials_or_sender_are_misconfigured():
    async def scenario(twilio: TwilioServer) -> None:
        with pytest.raises(Misconfigured, match="20003"):
            await send_one(twilio, auth_token="wrong")
        twilio.answers[NUMBER] = [Answer(400, twilio_error(21606, "The From phone number is not SMS-capable", 400))]
        with pytest.raises(Misconfigured, match="21606"):
            await send_one(twilio)
        twilio.answers[NUMBER] = [Answer(200, "<html>captive portal</html>")]
        with pytest.raises(Misconfigured, match="without a message SID"):
            await send_one(twilio)

    run(scenario)


def test_a_slow_or_absent_provider_is_retryable():
    async def scenario(twilio: TwilioServer) -> None:
        twilio.answers[NUMBER] = [Answer(201, {"sid": "SMlate"}, delay=1.0)]
        with pytest.raises(Retryable, match="timed out"):
            await send_one(twilio, timeout_seconds=0.2)

    run(scenario)
    (port,) = free_ports(1)

    async def nobody() -> None:
        ch = TwilioSmsChannel(
            account_sid="AC1", auth_token="t", base_url=f"http://127.0.0.1:{port}", from_number="+15005550006"
        )
        with pytest.raises(Retryable, match="unreachable"):
            await ch.send(message())
        await ch.aclose()

    asyncio.run(nobody())


def test_available_with_a_phone_and_no_unsubscribe_and_configuration_checked():
    ch = TwilioSmsChannel(account_sid="AC1", auth_token="t", base_url="http://127.0.0.1:9", from_number="+15005550006")
    contact = Contact(user_id="s1", phone=NUMBER)
    assert ch.available_for(contact)
    assert not ch.available_for(contact.model_copy(update={"phone": None}))
    assert not ch.available_for(contact.model_copy(update={"unsubscribed": frozenset({Channel.sms})}))
    asyncio.run(ch.aclose())
    with pytest.raises(ValueError, match="exactly one"):
        TwilioSmsChannel(account_sid="AC1", auth_token="t", base_url="http://127.0.0.1:9")
    with pytest.raises(ValueError, match=r"E\.164"):
        TwilioSmsChannel(account_sid="AC1", auth_token="t", base_url="http://127.0.0.1:9", from_number="0151")


def test_a_status_callback_url_goes_to_twilio_as_status_callback():
    callback = "https://t.school.example/v1/webhooks/twilio/status/abc"

    async def scenario(twilio: TwilioServer) -> tuple[Delivery, list[dict[str, Any]]]:
        with_callback = Message(
            intervention_id="iv-9",
            user_id="student-42",
            channel=Channel.sms,
            to=NUMBER,
            parts={"body": "Hi"},
            data={"status_callback": callback},
        )
        return await send_one(twilio, with_callback), twilio.requests

    delivery, (request,) = run(scenario)
    assert delivery.provider_id.startswith("SM")
    assert request["form"]["StatusCallback"] == callback  # without one, no such field (test_the_request_itself)
