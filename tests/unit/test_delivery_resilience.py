"""Retries (tenacity) and the circuit breaker around a provider, on scripted channels, a moved clock and no sleeping."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from notifications.channels.base import (
    Message,
    Misconfigured,
    Permanent,
    RetireToken,
    Retryable,
)
from notifications.resilience import CircuitBreaker, Delivered, Deliverer, RetryPolicy, Undelivered
from schemas.events import Channel as ChannelName
from tests.unit.channel_fakes import OK, Clock, Scripted


def deliverer(clock: Clock, policy: RetryPolicy | None = None, **breaker: float) -> Deliverer:
    return Deliverer(
        policy or RetryPolicy(attempts=4, initial_seconds=1.0, max_seconds=30.0, jitter_seconds=1.0),
        breaker_failures=int(breaker.get("failures", 5)),
        breaker_cooldown_seconds=breaker.get("cooldown", 30.0),
        clock=clock,
        sleep=clock.sleep,
    )


MESSAGE = Message("iv-1", "student-1", ChannelName.push, "token-abcdefgh", {"title": "t", "body": "b"})


def deliver(d: Deliverer, channel: Scripted, message: Message = MESSAGE) -> Delivered | Undelivered:
    return asyncio.run(d.deliver(channel, message))


# -- retries ------------------------------------------------------------------------------------------------------


def test_retryable_errors_are_retried_with_capped_exponential_backoff_and_jitter():
    clock = Clock()
    channel = Scripted([Retryable("503"), Retryable("503"), Retryable("timeout"), OK])
    outcome = deliver(deliverer(clock), channel)
    assert isinstance(outcome, Delivered) and outcome.attempts == 4 and outcome.delivery.provider_id == "id-4"
    first, second, third = clock.slept
    assert 1.0 <= first <= 2.0 and 2.0 <= second <= 3.0 and 4.0 <= third <= 5.0

    capped = Clock()
    policy = RetryPolicy(attempts=6, initial_seconds=1.0, max_seconds=3.0, jitter_seconds=0.5)
    deliver(deliverer(capped, policy), Scripted([Retryable("x")] * 5 + [OK]))
    assert capped.slept[-2:] == [3.0, 3.0]  # 8 + jitter and 16 + jitter, capped


def test_a_retry_after_longer_than_the_backoff_is_honoured():
    clock = Clock()
    outcome = deliver(deliverer(clock), Scripted([Retryable("429 QUOTA_EXCEEDED", retry_after=20.0), OK]))
    assert isinstance(outcome, Delivered) and clock.slept == [20.0]
    short = Clock()
    deliver(deliverer(short), Scripted([Retryable("429", retry_after=0.1), OK]))
    assert 1.0 <= short.slept[0] <= 2.0  # the backoff when Retry-After asks for less


def test_a_retry_after_beyond_the_budget_ends_the_retries_at_once():
    clock = Clock()
    outcome = deliver(
        deliverer(clock), Scripted([Retryable("Twilio error 20429: Too Many Requests", retry_after=3600)])
    )
    assert isinstance(outcome, Undelivered) and outcome.kind == "retries_exhausted"
    assert outcome.attempts == 1 and clock.slept == [] and outcome.retry_after == 3600
    assert "the next would be in 3600 s, beyond the 120 s retry budget" in outcome.reason


def test_when_retries_run_out_the_reason_lists_every_attempt():
    clock = Clock()
    errors = [Retryable("FCM answered 503: UNAVAILABLE"), Retryable("FCM timed out"), Retryable("FCM answered 500")]
    outcome = deliver(deliverer(clock), Scripted(errors))
    assert isinstance(outcome, Undelivered)
    assert (outcome.kind, outcome.attempts, len(clock.slept)) == ("retries_exhausted", 4, 3)
    assert outcome.reason.startswith("push via fake: gave up after 4 attempts (")
    assert outcome.reason.endswith(
        "attempts: 1) FCM answered 503: UNAVAILABLE | 2) FCM timed out | 3) FCM answered 500 | 4) FCM answered 500"
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Permanent("invalid e-mail address j***@example"), "permanent"),
        (Misconfigured("FCM answered 401 UNAUTHENTICATED"), "misconfigured"),
        (RetireToken("token-abcdefgh", "FCM answered 404 UNREGISTERED"), "retired_token"),
    ],
)
def test_permanent_errors_are_not_retried(error, kind):
    clock = Clock()
    channel = Scripted([error])
    outcome = deliver(deliverer(clock), channel)
    assert isinstance(outcome, Undelivered) and outcome.kind == kind
    assert len(channel.sent) == 1 and clock.slept == [] and error.reason in outcome.reason
    if kind == "retired_token":
        assert outcome.retired_token == "token-abcdefgh"


def test_an_unsubscribe_comes_back_in_the_outcome():
    outcome = deliver(deliverer(Clock()), Scripted([Permanent("Twilio error 21610", unsubscribe=True)]))
    assert isinstance(outcome, Undelivered) and outcome.unsubscribe and outcome.kind == "permanent"


def test_an_unexpected_error_is_an_outcome_not_a_crash(caplog):
    outcome = deliver(deliverer(Clock()), Scripted([KeyError("title")]))
    assert isinstance(outcome, Undelivered) and outcome.kind == "failed" and "unexpected KeyError" in outcome.reason
    assert "failed unexpectedly on intervention iv-1" in caplog.text


# -- the breaker --------------------------------------------------------------------------------------------------


def test_the_breaker_opens_after_consecutive_failures_and_refuses_without_sending():
    clock = Clock()
    d = deliverer(clock, RetryPolicy(attempts=1), failures=3, cooldown=30.0)
    failing = Scripted([Retryable("503")])
    for _ in range(3):
        assert deliver(d, failing).kind == "retries_exhausted"  # type: ignore[union-attr]
    assert d.breaker("fake").state == "open" and d.is_open("fake")
    refused = deliver(d, failing)
    assert isinstance(refused, Undelivered) and refused.kind == "breaker_open" and refused.attempts == 0
    assert "the fake circuit breaker is open (3 consecutive failures; next probe in 30 s)" in refused.reason
    assert len(failing.sent) == 3  # nothing reached the provider


def test_after_the_cooldown_one_probe_closes_or_reopens_it():
    clock = Clock()
    d = deliverer(clock, RetryPolicy(attempts=1), failures=2, cooldown=30.0)
    for _ in range(2):
        deliver(d, Scripted([Retryable("503")]))
    clock.now += 29.9
    assert deliver(d, Scripted([OK])).kind == "breaker_open"  # type: ignore[union-attr]
    clock.now += 0.2
    assert d.breaker("fake").state == "half_open" and not d.is_open("fake")
    assert deliver(d, Scripted([Retryable("still 503")])).kind == "retries_exhausted"  # type: ignore[union-attr]
    assert d.breaker("fake").state == "open" and d.breaker("fake").reopens_in() == pytest.approx(30.0)
    clock.now += 30.0
    assert isinstance(deliver(d, Scripted([OK])), Delivered)
    assert d.breaker("fake").state == "closed" and d.breaker("fake").consecutive == 0


def test_in_half_open_state_only_one_probe_goes_at_a_time():
    clock = Clock()
    d = deliverer(clock, RetryPolicy(attempts=1), failures=1, cooldown=10.0)
    deliver(d, Scripted([Retryable("503")]))
    clock.now += 10.0

    async def scenario() -> list[Delivered | Undelivered]:
        slow = Scripted([OK], gate=asyncio.Event())
        probe = asyncio.create_task(d.deliver(slow, MESSAGE))
        await asyncio.sleep(0)  # the probe is out, waiting on the provider
        others = [await d.deliver(Scripted([OK]), MESSAGE) for _ in range(3)]
        assert slow.gate is not None
        slow.gate.set()
        return [await probe, *others]

    probe, *others = asyncio.run(scenario())
    assert isinstance(probe, Delivered)
    assert [o.kind for o in others] == ["breaker_open"] * 3  # type: ignore[union-attr]
    assert d.breaker("fake").state == "closed"


def test_a_cancelled_probe_lets_the_next_one_through():
    clock = Clock()
    d = deliverer(clock, RetryPolicy(attempts=1), failures=1, cooldown=10.0)
    deliver(d, Scripted([Retryable("503")]))
    clock.now += 10.0

    async def scenario() -> Delivered | Undelivered:
        probe = asyncio.create_task(d.deliver(Scripted([OK], gate=asyncio.Event()), MESSAGE))
        await asyncio.sleep(0)
        probe.cancel()
        with pytest.raises(asyncio.CancelledError):
            await probe
        return await d.deliver(Scripted([OK]), MESSAGE)

    assert isinstance(asyncio.run(scenario()), Delivered)


def test_the_recipients_faults_do_not_trip_the_breaker_and_reset_the_count():
    clock = Clock()
    d = deliverer(clock, RetryPolicy(attempts=1), failures=2)
    deliver(d, Scripted([Retryable("503")]))
    for error in [Permanent("550 user unknown"), RetireToken("t", "UNREGISTERED")] * 3:
        deliver(d, Scripted([error]))
    assert d.breaker("fake").state == "closed" and d.breaker("fake").consecutive == 0
    deliver(d, Scripted([Misconfigured("401")]))
    deliver(d, Scripted([Misconfigured("401")]))
    assert d.breaker("fake").state == "open"  # our credentials: every send would fail


def test_a_retry_after_longer_than_the_cooldown_keeps_the_breaker_open_longer():
    clock = Clock()
    breaker = CircuitBreaker("fcm", failures=1, cooldown_seconds=30.0, clock=clock)
    breaker.failed(retry_after=300.0)
    assert breaker.reopens_in() == 300.0
    clock.now += 299.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow() and not breaker.allow()  # the probe, then nobody until it ends


def test_breakers_are_per_provider():
    clock = Clock()
    d = deliverer(clock, RetryPolicy(attempts=1), failures=1)
    deliver(d, Scripted([Retryable("503")], provider="fcm"))
    assert d.is_open("fcm") and not d.is_open("twilio")
    assert isinstance(deliver(d, Scripted([OK], name=ChannelName.sms, provider="twilio")), Delivered)


def test_attempts_are_counted_in_prometheus_without_personal_data():
    def sample(result: str) -> float:
        labels = {"channel": "push", "provider": "metrics-test", "result": result}
        return REGISTRY.get_sample_value("engage_notify_send_attempts_total", labels) or 0.0

    before = {r: sample(r) for r in ("retryable", "delivered")}
    deliver(deliverer(Clock()), Scripted([Retryable("503"), OK], provider="metrics-test"))
    assert sample("retryable") == before["retryable"] + 1 and sample("delivered") == before["delivered"] + 1


def test_the_settings_build_the_deliverer(tmp_path):
    from config.settings import Settings

    d = Deliverer.from_settings(Settings(run_dir=tmp_path, notify_retry_attempts=2, notify_breaker_failures=9))
    assert d.policy.attempts == 2 and d.breaker("x").threshold == 9
