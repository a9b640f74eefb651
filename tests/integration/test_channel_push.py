"""Push over FCM HTTP v1, against a local server implementing the send endpoint and its documented error answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from deploy.process import free_ports
from deploy.providers.fcm import FcmServer, fcm_error
from deploy.providers.http import Answer
from notifications.channels.base import Delivery, Message, Misconfigured, Permanent, RetireToken, Retryable
from notifications.channels.push import FcmPushChannel
from schemas.contacts import Contact, PushToken
from schemas.events import Channel

pytestmark = pytest.mark.local_servers

TOKEN = "dJx3Y9kQ:APA91bH-device-token-of-the-newest-phone"


def message(token: str = TOKEN, **overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "intervention_id": "iv-7",
        "user_id": "student-42",
        "channel": Channel.push,
        "to": token,
        "parts": {"title": "2 days to a 14-day streak", "body": "One lesson today keeps it going."},
        "action_url": "https://app.example/l/abc",
        "data": {"kind": "streak_warning"},
        **overrides,
    }
    return Message(**fields)


def run(scenario: Callable[[FcmServer], Awaitable[Any]], **server: Any) -> Any:
    async def main() -> Any:
        async with FcmServer(**server) as fcm:
            return await scenario(fcm)

    return asyncio.run(main())


def channel(fcm: FcmServer, **overrides: Any) -> FcmPushChannel:
    options: dict[str, Any] = {
        "project_id": fcm.project,
        "base_url": fcm.base_url,
        "access_token": fcm.access_token,
        "timeout_seconds": 2.0,
        **overrides,
    }
    return FcmPushChannel(**options)


async def send_one(fcm: FcmServer, msg: Message | None = None, **overrides: Any) -> Delivery:
    ch = channel(fcm, **overrides)
    try:
        return await ch.send(msg or message())
    finally:
        await ch.aclose()


def test_a_send_is_the_documented_request_and_the_message_name_comes_back():
    async def scenario(fcm: FcmServer) -> tuple[Delivery, list[dict[str, Any]]]:
        return await send_one(fcm), fcm.requests

    delivery, requests = run(scenario)
    assert delivery.provider_id.startswith("projects/engage-test/messages/")
    assert (delivery.channel, delivery.provider, delivery.to) == (Channel.push, "fcm", TOKEN)
    (request,) = requests
    assert request["path"] == "/v1/projects/engage-test/messages:send"
    assert request["headers"]["Authorization"] == "Bearer ya29.test-token"
    assert request["json"] == {
        "message": {
            "token": TOKEN,
            "notification": {"title": "2 days to a 14-day streak", "body": "One lesson today keeps it going."},
            "data": {"intervention_id": "iv-7", "kind": "streak_warning", "action_url": "https://app.example/l/abc"},
        }
    }


def test_a_token_provider_is_asked_before_every_request():
    asked: list[int] = []

    async def provider() -> str:
        asked.append(1)
        return "ya29.test-token"

    async def scenario(fcm: FcmServer) -> None:
        ch = channel(fcm, access_token=None, token_provider=provider)
        await ch.send(message())
        await ch.send(message())
        await ch.aclose()

    run(scenario)
    assert len(asked) == 2


def test_a_failing_token_provider_is_misconfigured_without_a_request():
    async def provider() -> str:
        raise RuntimeError("no service account key")

    async def scenario(fcm: FcmServer) -> list[dict[str, Any]]:
        with pytest.raises(Misconfigured, match="token provider failed: RuntimeError: no service account key"):
            await send_one(fcm, access_token=None, token_provider=provider)
        return fcm.requests

    assert run(scenario) == []


def invalid_token_body() -> dict[str, Any]:
    return fcm_error(
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
        more_details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.token", "description": "Invalid registration token"}],
            }
        ],
    )


@pytest.mark.parametrize(
    "answer",
    [
        Answer(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")),
        Answer(400, invalid_token_body()),
        Answer(403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch")),
    ],
    ids=["unregistered", "invalid-argument-on-token", "sender-id-mismatch"],
)
def test_a_dead_token_is_retired(answer: Answer):
    async def scenario(fcm: FcmServer) -> None:
        fcm.answers[TOKEN] = [answer]
        with pytest.raises(RetireToken) as retired:
            await send_one(fcm)
        assert retired.value.token == TOKEN
        assert "device token retired" in retired.value.reason and TOKEN not in retired.value.reason

    run(scenario)


def test_invalid_argument_not_about_the_token_is_permanent_and_keeps_the_token():
    body = fcm_error(
        400,
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "Invalid value at 'message.data[0].value'",
        more_details=[
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": "message.data[0].value", "description": "Invalid value"}],
            }
        ],
    )

    async def scenario(fcm: FcmServer) -> None:
        fcm.answers[TOKEN] = [Answer(400, body)]
        with pytest.raises(Permanent, match="FCM refused the message") as refused:
            await send_one(fcm)
        assert not isinstance(refused.value, RetireToken | Misconfigured)

    run(scenario)


def test_reserved_data_keys_are_refused_before_sending():
    async def scenario(fcm: FcmServer) -> list[dict[str, Any]]:
        with pytest.raises(Permanent, match="reserves"):
            await send_one(fcm, message(data={"google.c.a.e": "1"}))
        return fcm.requests

    assert run(scenario) == []


def test_quota_exceeded_and_unavailable_are_retryable_with_retry_after():
    in_90_s = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)

    async def scenario(fcm: FcmServer) -> None:
        fcm.answers["quota"] = [
            Answer(429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "quota"), {"Retry-After": "17"})
        ]
        fcm.answers["down"] = [
            Answer(503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "overloaded"), {"Retry-After": in_90_s})
        ]
        fcm.answers["internal"] = [Answer(500, fcm_error(500, "INTERNAL", "INTERNAL", "internal error"))]
        fcm.answers["html"] = [Answer(502, "<html><body>Bad Gateway</body></html>")]
        with pytest.raises(Retryable) as quota:
            await send_one(fcm, message("quota"))
        with pytest.raises(Retryable) as down:
            await send_one(fcm, message("down"))
        with pytest.raises(Retryable) as internal:
            await send_one(fcm, message("internal"))
        with pytest.raises(Retryable, match=r"502.*Bad Gateway") as html:
            await send_one(fcm, message("html"))
        assert quota.value.retry_after == 17 and "QUOTA_EXCEEDED" in quota.value.reason
        assert down.value.retry_after is not None and 85 <= down.value.retry_after <= 90
        assert internal.value.retry_after is None and html.value.retry_after is None

    run(scenario)


def test_a_wrong_access_token_or_project_is_misconfigured():
    async def scenario(fcm: FcmServer) -> None:
        with pytest.raises(Misconfigured, match=r"401.*UNAUTHENTICATED"):
            await send_one(fcm, access_token="ya29.expired")
        with pytest.raises(Misconfigured, match="404"):
            await send_one(fcm, project_id="someone-elses")
        fcm.answers["apns"] = [Answer(401, fcm_error(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR", "APNs"))]
        with pytest.raises(Misconfigured, match="THIRD_PARTY_AUTH_ERROR"):
            await send_one(fcm, message("apns"))

    run(scenario)


def test_a_success_that_is_not_fcms_answer_is_misconfigured():
    async def scenario(fcm: FcmServer) -> None:
        fcm.answers[TOKEN] = [Answer(200, "<html>Welcome to nginx!</html>")]
        with pytest.raises(Misconfigured, match="without a message name"):
            await send_one(fcm)

    run(scenario)


def test_a_slow_or_absent_provider_is_retryable():
    async def scenario(fcm: FcmServer) -> None:
        fcm.answers[TOKEN] = [Answer(200, {"name": "late"}, delay=1.0)]
        with pytest.raises(Retryable, match="timed out"):
            await send_one(fcm, timeout_seconds=0.2)

    run(scenario)
    (port,) = free_ports(1)

    async def nobody() -> None:
        ch = FcmPushChannel(project_id="p", base_url=f"http://127.0.0.1:{port}", access_token="t")
        with pytest.raises(Retryable, match="unreachable"):
            await ch.send(message())
        await ch.aclose()

    asyncio.run(nobody())


def test_available_with_a_device_token_and_no_unsubscribe():
    now = datetime.now(UTC)
    ch = FcmPushChannel(project_id="p", base_url="http://127.0.0.1:9", access_token="t")
    contact = Contact(
        user_id="s1",
        push_tokens=[
            PushToken(token="old", platform="ios", registered_at=now - timedelta(days=30)),
            PushToken(token="new", platform="android", registered_at=now),
        ],
    )
    assert ch.available_for(contact) and contact.tokens_newest_first() == ["new", "old"]
    assert not ch.available_for(contact.model_copy(update={"push_tokens": []}))
    assert not ch.available_for(contact.model_copy(update={"unsubscribed": frozenset({Channel.push})}))
    asyncio.run(ch.aclose())


def test_configuration_is_checked_when_built():
    with pytest.raises(ValueError, match="project id"):
        FcmPushChannel(project_id="", base_url="http://127.0.0.1:9", access_token="t")
    with pytest.raises(ValueError, match="exactly one"):
        FcmPushChannel(project_id="p", base_url="http://127.0.0.1:9")
