"""A real SMTP server (aiosmtpd) that keeps every message it accepted.

- ``SmtpHandler``: the aiosmtpd handler. It can refuse chosen recipients (``rcpt_answers``) or every message
  (``data_answer``) with a given answer, injects faults (451 at DATA) and latency, and records accepted messages
  (``record``: a line with the Message-ID, ``X-Engage-Intervention`` and Subject, and the raw message).
- ``SmtpServer``: the handler served from aiosmtpd's own thread on a free loopback port, for a test that sends with
  ``asyncio.run`` (``with SmtpServer() as smtp``); ``login`` makes it require SMTP AUTH.
- ``start_smtp``: the handler served in the caller's event loop (the provider process).
"""

from __future__ import annotations

import asyncio
import email
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from deploy.process import free_ports
from deploy.providers.faults import Faults
from deploy.providers.record import Accepted, AcceptedLog

SERVER_HOSTNAME = "localhost"


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
class SmtpHandler:
    received: list[Received] = field(default_factory=list)
    rcpt_answers: dict[str, str] = field(default_factory=dict)  # address -> SMTP answer instead of 250
    data_answer: str | None = None  # the answer to DATA instead of accepting it
    sessions: int = 0
    record: AcceptedLog | None = None
    faults: Faults | None = None

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
        if self.faults is not None:
            if self.faults.latency:
                await asyncio.sleep(self.faults.latency)
            if self.faults.draw("smtp") is not None:
                return "451 4.3.0 Temporary local problem, try again later"
        raw: bytes = envelope.content
        received = Received(envelope.mail_from, list(envelope.rcpt_tos), raw)
        record_id = uuid.uuid4().hex
        if self.record is not None:
            self.record.append(self._accepted(received, record_id), raw)
        self.received.append(received)
        return f"250 Message accepted for delivery: queued as {record_id}"

    @staticmethod
    def _accepted(received: Received, record_id: str) -> Accepted:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(received.raw)

        def header(name: str) -> str | None:
            value = headers.get(name)
            return str(value).strip() if value is not None else None

        return Accepted(
            provider="smtp",
            id=record_id,
            provider_id=header("Message-ID") or "",
            to=", ".join(received.rcpt_tos),
            accepted_at=datetime.now(UTC),
            intervention_id=header("X-Engage-Intervention"),
            subject=header("Subject"),
        )


def smtp_options(login: tuple[str, str] | None) -> dict[str, Any]:
    """aiosmtpd ``SMTP`` keyword arguments; ``login``: the (user, password) AUTH must present, if any."""
    options: dict[str, Any] = {"hostname": SERVER_HOSTNAME, "enable_SMTPUTF8": True}
    if login is not None:

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
            ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == login
            return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself

        options.update(authenticator=authenticator, auth_require_tls=False, auth_required=True)
    return options


async def start_smtp(handler: SmtpHandler, port: int, login: tuple[str, str] | None = None) -> asyncio.Server:
    """Serve ``handler`` on ``127.0.0.1:port`` in the running event loop."""
    options = smtp_options(login)
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: SMTP(handler, **options), "127.0.0.1", port)


class SmtpServer:
    """aiosmtpd in its own thread on a free loopback port (or ``port``)."""

    def __init__(
        self,
        login: tuple[str, str] | None = None,
        *,
        port: int | None = None,
        record: AcceptedLog | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.port = port or free_ports(1)[0]
        self.handler = SmtpHandler(record=record, faults=faults)
        options = smtp_options(login)
        hostname = options.pop("hostname")
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, server_hostname=hostname, **options
        )

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()
