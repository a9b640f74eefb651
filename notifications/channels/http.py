"""What the HTTP adapters (push over FCM, SMS over Twilio) share: the client, and the answers every HTTP API means
the same way.

- The client (httpx) ignores proxy variables in the environment (``trust_env=False``): a provider's address is
  exactly the configured one, so tests and the demo talk to 127.0.0.1 and nothing else.
- No answer (refused connection, reset, DNS failure, timeout) -> ``Retryable``.
- 429 and every 5xx -> ``Retryable``, with the ``Retry-After`` the provider gave (seconds or an HTTP date).
- 401 and 403 -> ``Misconfigured`` (our credentials); each adapter first maps the provider's own error codes,
  which say more (FCM's SENDER_ID_MISMATCH is a 403 about the token, not about us).
- A 2xx whose body is not the provider's answer (an HTML page from a wrong base URL or a proxy) ->
  ``Misconfigured``: treating it as accepted would lose every message silently.
"""

from __future__ import annotations

from typing import Any

import httpx

from notifications.channels.base import ChannelError, Misconfigured, Permanent, Retryable, parse_retry_after


def new_client(timeout_seconds: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), trust_env=False, follow_redirects=False)


def excerpt(text: str, limit: int = 200) -> str:
    """The start of a body, on one line, for a reason."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def no_answer(provider: str, exc: httpx.HTTPError) -> Retryable:
    """A request that got no HTTP answer."""
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "unreachable"
    return Retryable(f"{provider} {kind}: {type(exc).__name__}: {exc}")


def by_status(provider: str, response: httpx.Response, said: str) -> ChannelError:
    """The error an HTTP status means when the provider's own error code did not say more."""
    status = response.status_code
    what = f"{provider} answered {status}: {said}"
    if status == 429 or status >= 500:
        return Retryable(what, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    if status in (401, 403):
        return Misconfigured(what)
    return Permanent(what)
