"""Twilio's Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form encoded, HTTP basic auth
with the account SID and auth token.

Accepted: ``201 {"sid": "SM...", "status": "queued", ...}``. Refused with Twilio's error JSON (``{"code",
"message", "more_info", "status"}``): 401 / 20003 on wrong credentials or account, 400 / 21604 without ``To``,
``Body`` or a sender, scripted answers per number (``answers[to]``), and injected faults: 429 / 20429 (too many
requests) or 503 / 20503, without ``Retry-After`` (Twilio sends none).

A message created with a ``StatusCallback`` can be reported on (``report_status``): a form POST to that URL signed
with ``X-Twilio-Signature`` as Twilio signs it. ``report_statuses`` (e.g. ``("sent", "delivered")``) makes the
server report them by itself after accepting, as Twilio does once the carrier answers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import web

from deploy.providers.faults import Faults, Provider
from deploy.providers.http import Answer, HttpServer, next_scripted
from deploy.providers.record import Accepted, AcceptedLog

log = logging.getLogger(__name__)


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """A Twilio REST error body as the API documents it."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def twilio_signature(auth_token: str, url: str, params: dict[str, str]) -> str:
    """``X-Twilio-Signature`` as Twilio documents it: HMAC-SHA1 with the auth token over the URL followed by each
    POST parameter's name and value, sorted by name; base64."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()


class TwilioServer(HttpServer):
    """The Messages create endpoint of one account. ``answers[to]``: answers in turn (the last repeats); other
    numbers get 201. ``callbacks``: message SID -> (StatusCallback URL, To, From) of every message that had one."""

    provider: Provider = "twilio"

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "twilio-secret",
        *,
        port: int = 0,
        record: AcceptedLog | None = None,
        faults: Faults | None = None,
        report_statuses: tuple[str, ...] = (),
    ) -> None:
        super().__init__(port=port, record=record, faults=faults)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.answers: dict[str, list[Answer]] = {}
        self.callbacks: dict[str, tuple[str, str, str]] = {}
        self.report_statuses = report_statuses
        self._reports: set[asyncio.Task[None]] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)

    def signature(self, url: str, params: dict[str, str]) -> str:
        return twilio_signature(self.auth_token, url, params)

    async def report_status(
        self, sid: str, status: str, error_code: str | None = None, auth_token: str | None = None
    ) -> httpx.Response:
        """POST a status callback for message ``sid`` as Twilio does (``auth_token``: sign with another token)."""
        url, to, sender = self.callbacks[sid]
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "From": sender,
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": to,
        }
        if error_code is not None:
            params["ErrorCode"] = error_code
        signature = twilio_signature(auth_token or self.auth_token, url, params)
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            return await client.post(url, data=params, headers={"X-Twilio-Signature": signature})

    async def _report(self, sid: str) -> None:
        for status in self.report_statuses:
            try:
                answer = await self.report_status(sid, status)
                if answer.status_code >= 300:
                    log.warning("status callback %s for %s answered %s", status, sid, answer.status_code)
            except httpx.HTTPError as exc:  # Twilio does not retry a status callback either
                log.warning("status callback %s for %s failed: %s", status, sid, exc)

    async def _create(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        self.requests.append({"path": request.path, "headers": dict(request.headers), "form": form})
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != self.account_sid:
            return web.json_response(twilio_error(20003, "Authenticate", 401), status=401)
        to = form.get("To", "")
        if not to or not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return web.json_response(twilio_error(21604, "A 'To' phone number is required.", 400), status=400)
        scripted = next_scripted(self.answers, to)
        if scripted is not None:
            return await scripted.response()
        fault = await self.fault()
        if fault is not None:
            code, text = (20429, "Too Many Requests") if fault.status == 429 else (20503, "Service Unavailable")
            return web.json_response(twilio_error(code, text, fault.status), status=fault.status)
        sid = "SM" + uuid.uuid4().hex
        callback = form.get("StatusCallback") or None
        if callback:
            self.callbacks[sid] = (callback, to, form.get("From", ""))
        if self.record is not None:
            self.record.append(
                Accepted(
                    provider="twilio",
                    id=uuid.uuid4().hex,
                    provider_id=sid,
                    to=to,
                    accepted_at=datetime.now(UTC),
                    body=form["Body"],
                    status_callback=callback,
                )
            )
        if callback and self.report_statuses:
            task = asyncio.create_task(self._report(sid))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)
        return web.json_response(
            {"sid": sid, "status": "queued", "to": to, "body": form["Body"], "account_sid": self.account_sid},
            status=201,
        )

    async def stop(self) -> None:
        for task in list(self._reports):
            task.cancel()
        await asyncio.gather(*self._reports, return_exceptions=True)
        await super().stop()
