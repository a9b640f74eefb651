"""Seeded fault injection for the stand-ins: answer a share of requests with the provider's documented "not now"
answer, and delay every answer by a fixed time. Pure decisions (which request fails, with which answer); the servers
turn them into HTTP or SMTP answers.

Each provider draws from its own generator seeded with ``seed`` and the provider's name, so one provider's traffic
does not change which of another's requests fail: the same sequence of requests to a provider, the same faults.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Provider = Literal["smtp", "fcm", "twilio"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected refusal: ``status`` (HTTP status, or the SMTP reply code), and for HTTP the ``Retry-After``
    to send (None: the provider sends none with this answer)."""

    status: int
    retry_after: float | None = None


@dataclass
class Faults:
    """``fail_rate``: share of requests refused (0..1); ``latency_ms``: added before every answer;
    ``retry_after``: the seconds FCM is documented to send with 429/503 (``Retry-After``)."""

    fail_rate: float = 0.0
    seed: int = 0
    latency_ms: float = 0.0
    retry_after: float = 1.0
    injected: Counter[str] = field(default_factory=Counter)
    _rngs: dict[str, random.Random] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.fail_rate <= 1.0:
            raise ValueError(f"fail_rate must be between 0 and 1, not {self.fail_rate}")
        if self.latency_ms < 0 or self.retry_after < 0:
            raise ValueError("latency_ms and retry_after cannot be negative")

    @property
    def latency(self) -> float:
        """Seconds to wait before answering."""
        return self.latency_ms / 1000.0

    def _rng(self, provider: Provider) -> random.Random:
        if provider not in self._rngs:
            self._rngs[provider] = random.Random(f"{self.seed}/{provider}")
        return self._rngs[provider]

    def draw(self, provider: Provider) -> Fault | None:
        """The refusal for this request to ``provider``, or None to accept it. FCM: 429 QUOTA_EXCEEDED or
        503 UNAVAILABLE, both with Retry-After; Twilio: 429 (error 20429) or 503, no Retry-After; SMTP: 451."""
        if self.fail_rate <= 0.0:
            return None
        rng = self._rng(provider)
        if rng.random() >= self.fail_rate:
            return None
        self.injected[provider] += 1
        if provider == "smtp":
            return Fault(451)
        status = 429 if rng.random() < 0.5 else 503
        return Fault(status, self.retry_after if provider == "fcm" else None)
