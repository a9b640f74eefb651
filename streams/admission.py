"""Whether a service (the collector, a worker's engagement API) takes a request now: a rate per API key, and a
bound on work in progress.

Overload is answered, not suffered: a key sending faster than its rate gets 429 with ``Retry-After`` (the
seconds until its bucket has a token again), and when too many requests are in progress (or, for the collector,
Kafka's local queue is too long), every key gets 503 with ``Retry-After``. Clients retry after that many seconds
(the collector deduplicates by event id). Plain logic with the clock passed in, so it is tested without a server.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; one request takes one token."""

    rate: float
    burst: float
    tokens: float = -1.0  # full on first use
    updated: float = 0.0

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one will be there."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass(frozen=True)
class Refusal:
    status: int  # 429 or 503
    error: str
    detail: str
    retry_after: int  # whole seconds, at least 1 (the header's unit)


@dataclass
class Admission:
    """Per-key rates (requests/s, with a burst of ``burst_seconds`` worth) and a cap on requests in progress."""

    rate_per_key: float
    burst_seconds: float = 2.0
    max_in_progress: int = 256
    max_queued: int = 200_000  # messages waiting in the producer's local queue
    service: str = "the collector"  # named in the 503's detail
    in_progress: int = 0
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def admit(self, app_id: str, now: float, queued: int = 0) -> Refusal | None:
        """None if the request may go on (then call ``done()`` when it is finished), else why not."""
        if self.in_progress >= self.max_in_progress or queued >= self.max_queued:
            what = "requests in progress" if self.in_progress >= self.max_in_progress else "messages queued for Kafka"
            return Refusal(503, "overloaded", f"{self.service} is at its limit of {what}; retry shortly", 1)
        if self.rate_per_key > 0:
            bucket = self._buckets.get(app_id)
            if bucket is None:
                bucket = self._buckets[app_id] = TokenBucket(self.rate_per_key, self.rate_per_key * self.burst_seconds)
            wait = bucket.take(now)
            if wait > 0:
                detail = f"this key is limited to {self.rate_per_key:g} requests/s; retry after the given seconds"
                return Refusal(429, "rate_limited", detail, max(1, math.ceil(wait)))
        self.in_progress += 1
        return None

    def done(self) -> None:
        self.in_progress = max(0, self.in_progress - 1)
