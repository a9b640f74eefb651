"""Push through Firebase Cloud Messaging's HTTP v1 API, to one device token per send.

``POST {base}/v1/projects/{project}/messages:send`` with ``Authorization: Bearer <access token>`` and::

    {"message": {"token": "...", "notification": {"title": "...", "body": "..."},
                 "data": {"intervention_id": "...", "action_url": "...", ...}}}

answered ``200 {"name": "projects/{project}/messages/{id}"}`` (the Delivery's ``provider_id``). The OAuth2 step
(a service account's key exchanged for a short-lived access token) is not done here: the channel takes either a
configured access token (``Settings.fcm_access_token``) or a token provider, an async callable asked before every
request (it caches and refreshes as it likes; Google's auth library fits behind it). The base URL is a setting,
so tests point it at a local server implementing this endpoint and its error answers.

FCM's documented errors (``error.details[].errorCode``, HTTP status), mapped:

- UNREGISTERED, 404 -> ``RetireToken``: the app was uninstalled or the token expired.
- INVALID_ARGUMENT, 400, on the token (a field violation on ``message.token``, or the message says "registration
  token") -> ``RetireToken``; on anything else -> ``Permanent`` (the message is wrong, the token may be fine).
- SENDER_ID_MISMATCH, 403 -> ``RetireToken``: the token belongs to another sender and never works for us.
- QUOTA_EXCEEDED, 429 and UNAVAILABLE, 503 -> ``Retryable`` with the ``Retry-After`` given; INTERNAL, 500 ->
  ``Retryable``.
- THIRD_PARTY_AUTH_ERROR, 401 (the project's APNs certificate or web push key) -> ``Misconfigured``; 401
  UNAUTHENTICATED without an FCM code (our access token is wrong or expired) -> ``Misconfigured``; 404 without an
  FCM code (no such project, or a wrong base URL) -> ``Misconfigured``.

Anything else goes by its HTTP status (``http.by_status``). One device per send, the newest first
(``schemas.contacts.Contact.tokens_newest_first``): a retired token makes the delivery layer try the next device,
so a student gets the message once, on the device they used last, rather than once per device.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from config.settings import Settings
from notifications.channels.base import Delivery, Message, Misconfigured, Permanent, RetireToken, mask, unreachable
from notifications.channels.http import by_status, excerpt, json_or_none, new_client, no_answer
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName

TokenProvider = Callable[[], Awaitable[str]]
# Keys FCM refuses in the data payload.
_RESERVED_DATA_KEYS = frozenset({"from", "notification", "message_type"})
_RESERVED_DATA_PREFIXES = ("google", "gcm")


class FcmPushChannel:
    """Push over FCM HTTP v1 for one Firebase project."""

    name = ChannelName.push
    provider = "fcm"

    def __init__(
        self,
        *,
        project_id: str,
        base_url: str,
        access_token: str | None = None,
        token_provider: TokenProvider | None = None,
        timeout_seconds: float = 10.0,
    ) -> None:
        if not project_id:
            raise ValueError("push needs a Firebase project id (fcm_project_id)")
        if (access_token is None) == (token_provider is None):
            raise ValueError("push needs exactly one of an access token (fcm_access_token) or a token provider")
        self.project_id = project_id
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project_id}/messages:send"
        self._token_provider = token_provider
        self._access_token = access_token
        self._client = new_client(timeout_seconds)

    @classmethod
    def from_settings(cls, settings: Settings, token_provider: TokenProvider | None = None) -> FcmPushChannel:
        s = settings
        token = s.fcm_access_token.get_secret_value() if s.fcm_access_token and token_provider is None else None
        return cls(
            project_id=s.fcm_project_id,
            base_url=s.fcm_base_url,
            access_token=token,
            token_provider=token_provider,
            timeout_seconds=s.fcm_timeout_seconds,
        )

    def available_for(self, contact: Contact) -> bool:
        return unreachable(self.name, contact) is None

    def body(self, message: Message) -> dict[str, Any]:
        """The JSON body FCM is sent for ``message``."""
        data = {"intervention_id": message.intervention_id, **message.data}
        if message.action_url:
            data["action_url"] = message.action_url
        bad = sorted(k for k in data if k in _RESERVED_DATA_KEYS or k.startswith(_RESERVED_DATA_PREFIXES))
        if bad:
            raise Permanent(f"push data uses keys FCM reserves: {bad}")
        notification = {"title": message.part("title"), "body": message.part("body")}
        return {"message": {"token": message.to, "notification": notification, "data": data}}

    async def _bearer(self) -> str:
        if self._token_provider is not None:
            try:
                return await self._token_provider()
            except Exception as exc:  # whatever the provider raises, the send is not possible now
                raise Misconfigured(f"the FCM access token provider failed: {type(exc).__name__}: {exc}") from exc
        assert self._access_token is not None
        return self._access_token

    async def send(self, message: Message) -> Delivery:
        body = self.body(message)
        headers = {"Authorization": f"Bearer {await self._bearer()}"}
        try:
            response = await self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise no_answer("FCM", exc) from exc
        answer = json_or_none(response)
        if response.is_success:
            name = answer.get("name") if isinstance(answer, dict) else None
            if not isinstance(name, str) or not name:
                raise Misconfigured(
                    f"FCM answered {response.status_code} without a message name: "
                    f"{excerpt(response.text)!r} (is fcm_base_url right?)"
                )
            return Delivery(self.name, self.provider, name, message.to)
        raise self._error(response, answer, message.to)

    def _error(self, response: httpx.Response, answer: Any, token: str) -> Exception:
        error = answer.get("error") if isinstance(answer, dict) else None
        if not isinstance(error, dict):
            return by_status("FCM", response, repr(excerpt(response.text)))
        details = [d for d in error.get("details") or [] if isinstance(d, dict)]
        codes = {str(d.get("errorCode")) for d in details if d.get("errorCode")}
        violations = [v for d in details for v in d.get("fieldViolations") or [] if isinstance(v, dict)]
        text = str(error.get("message", ""))
        said = f"{'/'.join(sorted(codes)) or error.get('status', '?')}: {text}".replace(token, mask(token))
        on_token = any(v.get("field") == "message.token" for v in violations) or "registration token" in text.lower()
        if "UNREGISTERED" in codes or "SENDER_ID_MISMATCH" in codes or ("INVALID_ARGUMENT" in codes and on_token):
            return RetireToken(token, f"FCM answered {response.status_code} {said}: device token retired")
        if "INVALID_ARGUMENT" in codes:
            return Permanent(f"FCM refused the message ({response.status_code} {said})")
        if "THIRD_PARTY_AUTH_ERROR" in codes or (response.status_code == 404 and not codes):
            return Misconfigured(f"FCM answered {response.status_code} {said}")
        return by_status("FCM", response, said)

    async def aclose(self) -> None:
        await self._client.aclose()
