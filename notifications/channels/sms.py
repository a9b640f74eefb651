"""SMS through Twilio's Messages API.

``POST {base}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form encoded ``To``, ``Body`` and ``From`` (a
Twilio number) or ``MessagingServiceSid`` (a Messaging Service picks the sender), HTTP basic auth with the account
SID and auth token; answered ``201 {"sid": "SM...", "status": "queued", ...}`` (the SID is the Delivery's
``provider_id``). With ``Message.data["status_callback"]`` (a URL the tracking links make) the form also carries
``StatusCallback``: Twilio then POSTs the message's status changes there (``streams.collector.tracking``).
The base URL is a setting, so tests point it at a local server implementing this endpoint.

The number is checked before any request: E.164, a ``+``, a country code that does not start with 0 and at most
15 digits in all (``+4915112345678``); anything else (spaces, a national ``0151...``) is ``Permanent`` with no
traffic. Whether the number exists is Twilio's to say:

- 21211 (invalid 'To' number), 21614 (not a mobile number), 21612 / 21408 (cannot route there, region not
  enabled for the account) -> ``Permanent`` (the next channel is tried; the rest of the account still works);
- 21610 (the recipient replied STOP) -> ``Permanent`` with ``unsubscribe=True``: record the unsubscribe;
- 20003 (authentication, 401), 21212 / 21606 / 21659 (our From is not valid or not ours), 21703 / 21704 (the
  Messaging Service) -> ``Misconfigured``;
- 20429 / HTTP 429 and every 5xx -> ``Retryable`` with ``Retry-After`` when given; other 4xx -> ``Permanent``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from config.settings import Settings
from notifications.channels.base import ChannelError, Delivery, Message, Misconfigured, Permanent, mask, unreachable
from notifications.channels.http import by_status, excerpt, json_or_none, new_client, no_answer
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_RECIPIENT_CODES = frozenset({21211, 21614, 21612, 21408})
_UNSUBSCRIBED = 21610
_OUR_SETUP_CODES = frozenset({20003, 21212, 21606, 21659, 21703, 21704})


def number_problem(number: str) -> str | None:
    """Why ``number`` is not an E.164 number (None: it is)."""
    if E164.match(number):
        return None
    if number.startswith("+") and len(re.sub(r"\D", "", number)) > 15:
        return "more than 15 digits"
    return "not in E.164 form (+, country code, number; no spaces or punctuation)"


class TwilioSmsChannel:
    """SMS over Twilio for one account, from one number or Messaging Service."""

    name = ChannelName.sms
    provider = "twilio"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        base_url: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        timeout_seconds: float = 10.0,
    ) -> None:
        if not account_sid or not auth_token:
            raise ValueError("SMS needs a Twilio account SID and auth token (twilio_account_sid, twilio_auth_token)")
        if bool(from_number) == bool(messaging_service_sid):
            raise ValueError("SMS needs exactly one of twilio_from_number or twilio_messaging_service_sid")
        if from_number and number_problem(from_number):
            raise ValueError(f"twilio_from_number {from_number!r}: {number_problem(from_number)}")
        self.account_sid = account_sid
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.sender = {"From": from_number} if from_number else {"MessagingServiceSid": messaging_service_sid}
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._client = new_client(timeout_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSmsChannel:
        s = settings
        return cls(
            account_sid=s.twilio_account_sid,
            auth_token=s.twilio_auth_token.get_secret_value() if s.twilio_auth_token else "",
            base_url=s.twilio_base_url,
            from_number=s.twilio_from_number,
            messaging_service_sid=s.twilio_messaging_service_sid,
            timeout_seconds=s.twilio_timeout_seconds,
        )

    def available_for(self, contact: Contact) -> bool:
        return unreachable(self.name, contact) is None

    def form(self, message: Message) -> dict[str, str]:
        """The form fields Twilio is sent for ``message``."""
        problem = number_problem(message.to)
        if problem is not None:
            raise Permanent(f"invalid phone number {mask(message.to)}: {problem}")
        form = {"To": message.to, **self.sender, "Body": message.part("body")}
        callback = message.data.get("status_callback")
        if callback:
            form["StatusCallback"] = callback  # Twilio POSTs the message's status changes there (signed)
        return form

    async def send(self, message: Message) -> Delivery:
        form = self.form(message)
        try:
            response = await self._client.post(self.url, data=form, auth=self._auth)
        except httpx.HTTPError as exc:
            raise no_answer("Twilio", exc) from exc
        answer = json_or_none(response)
        if response.is_success:
            sid = answer.get("sid") if isinstance(answer, dict) else None
            if not isinstance(sid, str) or not sid:
                raise Misconfigured(
                    f"Twilio answered {response.status_code} without a message SID: {excerpt(response.text)!r} "
                    "(is twilio_base_url right?)"
                )
            return Delivery(self.name, self.provider, sid, message.to, detail=str(answer.get("status", "")))
        raise self._error(response, answer, message.to)

    def _error(self, response: httpx.Response, answer: Any, number: str) -> ChannelError:
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(code, int):
            return by_status("Twilio", response, repr(excerpt(response.text)))
        said = f"Twilio error {code}: {answer.get('message', '')}".replace(number, mask(number))
        if code == _UNSUBSCRIBED:
            return Permanent(f"{said} (the recipient unsubscribed: replied STOP)", unsubscribe=True)
        if code in _RECIPIENT_CODES:
            return Permanent(said)
        if code in _OUR_SETUP_CODES:
            return Misconfigured(said)
        return by_status("Twilio", response, said)

    async def aclose(self) -> None:
        await self._client.aclose()
