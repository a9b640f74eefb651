"""Retries and a circuit breaker around every provider, and the typed outcome of sending on one channel.

``Deliverer.deliver(channel, message)`` sends with retries through the provider's breaker and returns
``Delivered`` (the provider accepted it) or ``Undelivered`` with a ``kind`` and a complete ``reason`` (what the
dead letter will say): ``permanent`` (this address will never work), ``misconfigured`` (our credentials or the
provider's setup), ``retired_token`` (a dead push token: the contact should drop it), ``retries_exhausted``,
``breaker_open`` or ``failed`` (a channel raised something it should not have; logged with its traceback). It
never raises for a provider's answer, so one bad message or provider cannot stop the service.

**Retries: tenacity** (9.2.1; well kept, typed, asyncio-native, the usual choice). Only ``Retryable`` errors are
retried, at most ``notify_retry_attempts`` sends in all. The wait before the next one is tenacity's capped
exponential backoff with jitter (``wait_exponential_jitter``: ``initial * 2**(n-1) + uniform(0, jitter)``, capped
at ``notify_retry_max_seconds``), or the provider's ``Retry-After`` when it asks for longer: a provider that says
"in 20 s" is not asked again in 2. The waits of one send are bounded by ``notify_retry_budget_seconds``: a
Retry-After that would go beyond it ends the retries at once (the reason says what was asked), rather than holding
a message, and the service's slot, for an hour.

**Circuit breaker: a small one here** (``CircuitBreaker``, ~50 lines), after weighing the libraries:

- ``pybreaker`` (maintained) runs async calls only through Tornado's coroutines, not asyncio.
- ``aiobreaker`` (asyncio) has had no release since 2021.
- ``circuitbreaker`` (maintained) is a decorator with a process-global registry; its ``call_async`` does not
  check the open state (only the decorator does) and it is untyped.
- ``purgatory`` (asyncio, typed) is the closest, but in half-open state it lets every concurrent call through
  rather than one probe, and reads the wall clock (``time.time``) that tests cannot move; its unit-of-work and
  message-bus layers (for sharing state in Redis) are machinery we do not need.

What we need is small and exact: per provider, open after ``notify_breaker_failures`` consecutive failures, refuse
for ``notify_breaker_cooldown_seconds`` (or longer if the provider's Retry-After said so), then let **one** probe
through (the event loop is single-threaded: no lock); its success closes the breaker, its failure reopens it. What
counts as a failure is the provider's health, not the recipient's: ``Retryable`` and ``Misconfigured`` count; a
refused address or a dead token is a provider that answered properly, and counts as a success. The clock is
injected, so tests move time instead of sleeping.

Metrics (no personal data in labels): ``engage_notify_send_attempts_total{channel, provider, result}`` and
``engage_notify_breaker_open{provider}`` (1 while open or half-open).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from prometheus_client import Counter, Gauge
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from config.settings import Settings
from notifications.channels.base import (
    Channel,
    ChannelError,
    Delivery,
    Message,
    Misconfigured,
    Permanent,
    RetireToken,
    Retryable,
)
from schemas.events import Channel as ChannelName

log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "engage_notify_send_attempts_total", "Sends tried on a provider, by result", ["channel", "provider", "result"]
)
BREAKER_OPEN = Gauge("engage_notify_breaker_open", "1 while a provider's circuit breaker is not closed", ["provider"])

BreakerState = Literal["closed", "open", "half_open"]
UndeliveredKind = Literal["permanent", "misconfigured", "retired_token", "retries_exhausted", "breaker_open", "failed"]


# -- the breaker --------------------------------------------------------------------------------------------------


class CircuitBreaker:
    """Closed -> open after ``failures`` consecutive failures -> after ``cooldown`` one probe (half-open) -> closed
    on its success, open again on its failure."""

    def __init__(
        self, provider: str, *, failures: int, cooldown_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.provider, self.threshold, self.cooldown, self.clock = provider, failures, cooldown_seconds, clock
        self.consecutive = 0
        self._opened_until: float | None = None  # set while open or half-open
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_until is None:
            return "closed"
        return "half_open" if self._probing or self.clock() >= self._opened_until else "open"

    def reopens_in(self) -> float:
        """Seconds until a probe is let through (0 when closed or due)."""
        return 0.0 if self._opened_until is None else max(0.0, self._opened_until - self.clock())

    def refusing(self) -> bool:
        """Whether a send would be refused now (open, or half-open with its probe out)."""
        return self._opened_until is not None and (self._probing or self.clock() < self._opened_until)

    def allow(self) -> bool:
        """May a send go now? In half-open state only one at a time (the probe)."""
        if self._opened_until is None:
            return True
        if self._probing or self.clock() < self._opened_until:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self.consecutive, self._opened_until, self._probing = 0, None, False
        BREAKER_OPEN.labels(self.provider).set(0)

    def failed(self, retry_after: float | None = None) -> None:
        self.consecutive += 1
        if self._probing or self.consecutive >= self.threshold:
            if self._opened_until is None:
                log.warning("circuit breaker of %s opened after %d failures", self.provider, self.consecutive)
            self._opened_until = self.clock() + max(self.cooldown, retry_after or 0.0)
            self._probing = False
            BREAKER_OPEN.labels(self.provider).set(1)

    def released(self) -> None:
        """A send that ended with no verdict on the provider (cancelled): a probe may be tried again."""
        self._probing = False


# -- retries ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4
    initial_seconds: float = 1.0
    max_seconds: float = 30.0
    jitter_seconds: float = 1.0
    budget_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        s = settings
        return cls(
            s.notify_retry_attempts,
            s.notify_retry_initial_seconds,
            s.notify_retry_max_seconds,
            s.notify_retry_jitter_seconds,
            s.notify_retry_budget_seconds,
        )


class _WaitBackoffOrRetryAfter:
    """tenacity wait: capped exponential backoff with jitter, or the provider's Retry-After if that is longer."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.backoff = wait_exponential_jitter(
            multiplier=policy.initial_seconds, max=policy.max_seconds, jitter=policy.jitter_seconds
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self.backoff(state))
        error = state.outcome.exception() if state.outcome is not None else None
        retry_after = error.retry_after if isinstance(error, Retryable) else None
        return max(backoff, retry_after) if retry_after is not None else backoff


class _StopAfterAttemptsOrBudget:
    """tenacity stop: after ``attempts`` sends, or when the coming wait would take the waiting past the budget."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.over_budget_wait: float | None = None

    def __call__(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.attempts:
            return True
        if state.idle_for + state.upcoming_sleep > self.policy.budget_seconds:
            self.over_budget_wait = state.upcoming_sleep
            return True
        return False


# -- outcomes -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    delivery: Delivery
    attempts: int

    @property
    def channel(self) -> ChannelName:
        return self.delivery.channel


@dataclass(frozen=True, slots=True)
class Undelivered:
    """Not sent on this channel, and why; ``reason`` is complete (channel, provider, attempts, every error)."""

    channel: ChannelName
    provider: str
    kind: UndeliveredKind
    reason: str
    attempts: int
    retry_after: float | None = None  # the provider's last Retry-After, for whoever reschedules
    retired_token: str | None = None
    unsubscribe: bool = False


Outcome = Delivered | Undelivered


class _BreakerOpen(Exception):
    pass


# -- the deliverer ------------------------------------------------------------------------------------------------


class Deliverer:
    """Sends through channels with retries (``RetryPolicy``) and one circuit breaker per provider."""

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        *,
        breaker_failures: int = 5,
        breaker_cooldown_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.breaker_failures, self.breaker_cooldown = breaker_failures, breaker_cooldown_seconds
        self.clock, self.sleep = clock, sleep
        self.breakers: dict[str, CircuitBreaker] = {}

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> Deliverer:
        return cls(
            RetryPolicy.from_settings(settings),
            breaker_failures=settings.notify_breaker_failures,
            breaker_cooldown_seconds=settings.notify_breaker_cooldown_seconds,
            **overrides,  # type: ignore[arg-type]
        )

    def breaker(self, provider: str) -> CircuitBreaker:
        if provider not in self.breakers:
            self.breakers[provider] = CircuitBreaker(
                provider, failures=self.breaker_failures, cooldown_seconds=self.breaker_cooldown, clock=self.clock
            )
        return self.breakers[provider]

    def is_open(self, provider: str) -> bool:
        """Whether a send to ``provider`` would be refused now."""
        breaker = self.breakers.get(provider)
        return breaker is not None and breaker.refusing()

    async def deliver(self, channel: Channel, message: Message) -> Outcome:
        breaker = self.breaker(channel.provider)
        stop = _StopAfterAttemptsOrBudget(self.policy)
        errors: list[str] = []
        retrying = AsyncRetrying(
            stop=stop,
            wait=_WaitBackoffOrRetryAfter(self.policy),
            retry=retry_if_exception_type(Retryable),
            reraise=True,
            sleep=self.sleep,
        )
        where = f"{channel.name.value} via {channel.provider}"

        def undelivered(
            kind: UndeliveredKind,
            summary: str,
            *,
            retry_after: float | None = None,
            retired_token: str | None = None,
            unsubscribe: bool = False,
        ) -> Undelivered:
            tried = f"; attempts: {' | '.join(errors)}" if errors else ""
            reason = f"{where}: {summary}{tried}"
            return Undelivered(
                channel.name, channel.provider, kind, reason, len(errors), retry_after, retired_token, unsubscribe
            )

        try:
            async for attempt in retrying:
                with attempt:
                    if not breaker.allow():
                        raise _BreakerOpen()
                    try:
                        delivery = await channel.send(message)
                    except Retryable as exc:
                        breaker.failed(exc.retry_after)
                        errors.append(f"{len(errors) + 1}) {exc.reason}")
                        self._count(channel, "retryable")
                        raise
                    except Misconfigured as exc:
                        breaker.failed()
                        errors.append(f"{len(errors) + 1}) {exc.reason}")
                        self._count(channel, "misconfigured")
                        raise
                    except (Permanent, RetireToken) as exc:
                        breaker.succeeded()  # the provider answered properly; the address is the problem
                        errors.append(f"{len(errors) + 1}) {exc.reason}")
                        self._count(channel, "retired_token" if isinstance(exc, RetireToken) else "permanent")
                        raise
                    except Exception as exc:
                        breaker.failed()
                        errors.append(f"{len(errors) + 1}) unexpected {type(exc).__name__}: {exc}")
                        self._count(channel, "error")
                        log.exception("%s failed unexpectedly on intervention %s", where, message.intervention_id)
                        raise
                    except BaseException:  # cancelled: no verdict on the provider
                        breaker.released()
                        raise
                    breaker.succeeded()
                    self._count(channel, "delivered")
                    return Delivered(delivery, len(errors) + 1)
        except _BreakerOpen:
            self._count(channel, "breaker_open")
            return undelivered(
                "breaker_open",
                f"the {channel.provider} circuit breaker is open ({breaker.consecutive} consecutive failures; "
                f"next probe in {breaker.reopens_in():.0f} s)",
            )
        except Retryable as exc:
            waited = float(retrying.statistics.get("idle_for", 0.0))
            if stop.over_budget_wait is not None:
                summary = (
                    f"gave up after {len(errors)} attempts: the next would be in {stop.over_budget_wait:.0f} s, "
                    f"beyond the {self.policy.budget_seconds:.0f} s retry budget"
                )
            else:
                summary = f"gave up after {len(errors)} attempts ({waited:.1f} s of waiting between them)"
            return undelivered("retries_exhausted", summary, retry_after=exc.retry_after)
        except RetireToken as exc:
            return undelivered("retired_token", "device token retired", retired_token=exc.token)
        except Misconfigured:
            return undelivered("misconfigured", "the provider or its configuration refused us")
        except Permanent as exc:
            return undelivered("permanent", "will not go to this address", unsubscribe=exc.unsubscribe)
        except ChannelError:  # a subclass nobody mapped: permanent to be safe
            return undelivered("permanent", "refused")
        except Exception:
            return undelivered("failed", "the channel failed unexpectedly (see the log)")
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    @staticmethod
    def _count(channel: Channel, result: str) -> None:
        ATTEMPTS.labels(channel.name.value, channel.provider, result).inc()
