"""Local servers speaking the providers' protocols, for the channel tests: all on 127.0.0.1, started by the test.

- ``SmtpServer``: a real SMTP server (aiosmtpd) that keeps every message it accepted, can refuse chosen recipients
  or the message with a given answer, and can require a login.
- ``FcmServer``: ``POST /v1/projects/{project}/messages:send`` of FCM HTTP v1, with a bearer token, answering
  ``{"name": "projects/.../messages/..."}`` or the documented error bodies (``{"error": {"code", "message",
  "status", "details": [{"@type": "...FcmError", "errorCode": ...}]}}``) scripted per token.
- ``TwilioServer``: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` of Twilio's Messages API, form
  encoded, with HTTP basic auth, answering 201 with a ``sid`` or Twilio's error JSON (``{"code", "message",
  "more_info", "status"}``) scripted per number. A message created with a ``StatusCallback`` can be reported on
  (``report_status``): a form POST to that URL signed with ``X-Twilio-Signature`` as Twilio signs it.

The HTTP servers are aiohttp applications run in the test's own event loop (``async with FcmServer() as fcm``).
"""

from __future__ import annotations

import asyncio
import base64
import email
import hashlib
import hmac
import itertools
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from types import TracebackType
from typing import Any

import httpx
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from deploy.process import free_ports

# -- SMTP -----------------------------------------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    def parsed(self) -> EmailMessage:
        message = email.message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        return message


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    rcpt_answers: dict[str, str] = field(default_factory=dict)  # address -> SMTP answer instead of 250
    data_answer: str | None = None  # the answer to DATA instead of accepting it
    sessions: int = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]) -> Any:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address in self.rcpt_answers:
            return self.rcpt_answers[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_answer is not None:
            return self.data_answer
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


class SmtpServer:
    """aiosmtpd in its own thread on a free loopback port; ``login``: (user, password) it requires, if any."""

    def __init__(self, login: tuple[str, str] | None = None) -> None:
        self.port = free_ports(1)[0]
        self.handler = _Handler()
        extra: dict[str, Any] = {}
        if login is not None:

            def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
                ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
                return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

            extra = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname="localhost", **extra
        )

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


# -- HTTP providers -------------------------------------------------------------------------------------------


@dataclass
class Answer:
    """One scripted HTTP answer: a JSON body, or text (garbage, an HTML error page) sent as text/html."""

    status: int
    body: dict[str, Any] | str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow provider)

    async def response(self) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.body, str):
            return web.Response(text=self.body, status=self.status, headers=self.headers, content_type="text/html")
        return web.json_response(self.body, status=self.status, headers=self.headers)


class _HttpServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Any:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def fcm_error(code: int, status: str, error_code: str | None, message: str, **extra: Any) -> dict[str, Any]:
    """An FCM HTTP v1 error body as the API documents it."""
    details: list[dict[str, Any]] = []
    if error_code is not None:
        details.append({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": error_code})
    details.extend(extra.pop("more_details", []))
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


class FcmServer(_HttpServer):
    """FCM HTTP v1 send endpoint. ``answers[token]``: a list of answers given in turn (the last one repeats);
    tokens without a script are accepted. ``access_token``: the bearer token it requires."""

    def __init__(self, project: str = "engage-test", access_token: str = "ya29.test-token") -> None:
        super().__init__()
        self.project = project
        self.access_token = access_token
        self.answers: dict[str, list[Answer]] = {}
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    async def _send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append({"path": request.path, "headers": dict(request.headers), "json": body})
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return web.json_response(
                fcm_error(
                    401,
                    "UNAUTHENTICATED",
                    None,
                    "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                ),
                status=401,
            )
        if request.match_info["project"] != self.project:
            return web.json_response(fcm_error(404, "NOT_FOUND", None, "Requested entity was not found."), status=404)
        token = body.get("message", {}).get("token", "")
        script = self.answers.get(token)
        if script:
            answer = script.pop(0) if len(script) > 1 else script[0]
            return await answer.response()
        return web.json_response({"name": f"projects/{self.project}/messages/0:{next(self._ids)}%engage"})


class TwilioServer(_HttpServer):
    """Twilio Messages create endpoint. ``answers[to]``: answers in turn (the last repeats); others get 201."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "twilio-secret") -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.answers: dict[str, list[Answer]] = {}
        self.callbacks: dict[str, tuple[str, str, str]] = {}  # message SID -> (StatusCallback URL, To, From)
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)

    def signature(self, url: str, params: dict[str, str]) -> str:
        """``X-Twilio-Signature`` as Twilio documents it: HMAC-SHA1 with the auth token over the URL followed by
        each POST parameter's name and value, sorted by name; base64."""
        data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
        return base64.b64encode(hmac.new(self.auth_token.encode(), data.encode(), hashlib.sha1).digest()).decode()

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
        signer = self if auth_token is None else TwilioServer(self.account_sid, auth_token)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(url, data=params, headers={"X-Twilio-Signature": signer.signature(url, params)})

    async def _create(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({"path": request.path, "headers": dict(request.headers), "form": form})
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("Authorization") != expected or request.match_info["sid"] != self.account_sid:
            return web.json_response(twilio_error(20003, "Authenticate", 401), status=401)
        to = str(form.get("To", ""))
        if not to or not form.get("Body") or not (form.get("From") or form.get("MessagingServiceSid")):
            return web.json_response(twilio_error(21604, "A 'To' phone number is required.", 400), status=400)
        script = self.answers.get(to)
        if script:
            answer = script.pop(0) if len(script) > 1 else script[0]
            return await answer.response()
        sid = f"SM{next(self._ids):032x}"
        if form.get("StatusCallback"):
            self.callbacks[sid] = (str(form["StatusCallback"]), to, str(form.get("From", "")))
        return web.json_response(
            {"sid": sid, "status": "queued", "to": to, "body": form["Body"], "account_sid": self.account_sid},
            status=201,
        )


def twilio_error(code: int, message: str, status: int) -> dict[str, Any]:
    """A Twilio REST error body as the API documents it."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
