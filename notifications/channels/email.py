"""E-mail over SMTP (aiosmtplib): one multipart message per send, text and HTML, handed to the configured server.

What every message carries:

- ``multipart/alternative``: the template's ``text`` part first, its ``html`` part last (clients show the last
  one they can), both UTF-8; ``Subject`` from the ``subject`` part.
- ``Message-ID: <h@domain>`` where ``h`` is derived from the intervention id and the channel: sending the same
  intervention again (a crash between "handed over" and "recorded") produces the same Message-ID, which
  receivers and our own send ledger can recognise. ``domain``: ``email_message_id_domain`` or From's domain.
- ``List-Unsubscribe: <mailto:...?subject=unsubscribe%20h>, <https://...>`` and ``List-Unsubscribe-Post:
  List-Unsubscribe=One-Click`` (RFC 8058: mail providers show an unsubscribe button that POSTs to the https URL;
  the https URL is the message's ``unsubscribe_url``, made and signed by the delivery layer). The mailto subject
  names the message by ``h``, never the student. Without an https URL only the mailto form is given, and no
  ``List-Unsubscribe-Post`` (RFC 8058 requires https for one-click).
- ``X-Engage-Intervention``: the intervention id (for support; no personal data).
- With an ``open_pixel_url``: an invisible 1x1 image at the end of the HTML part (``with_open_pixel``); the text
  part has none (an open is only seen where images load, a known limit of pixel tracking).

A student is reachable by e-mail only with a verified address and no unsubscribe from e-mail
(``available_for``). The address is checked before connecting: one that cannot be an address (no domain, spaces,
a domain that is not a host name, longer than SMTP allows) is ``Permanent`` without any traffic.

SMTP answers, mapped: a refused recipient (5xx on RCPT) or a refused message (5xx after DATA) ->
``Permanent``; our sender refused, authentication failed, a required extension missing, a 5xx greeting ->
``Misconfigured``; any 4xx (greylisting, mailbox busy, too many connections), timeouts, refused or dropped
connections -> ``Retryable``.

One connection per message: simple and robust (a dropped connection cannot poison the next send), at the cost
of a TCP and EHLO round trip per message; pooling is for the throughput work.
"""

from __future__ import annotations

import hashlib
import re
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr
from html import escape
from urllib.parse import quote

import aiosmtplib

from config.settings import Settings
from notifications.channels.base import (
    Delivery,
    Message,
    Misconfigured,
    Permanent,
    Retryable,
    mask,
    unreachable,
)
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName

_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")  # dot-atom
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def address_problem(address: str) -> str | None:
    """Why ``address`` cannot be an e-mail address we send to (None: it can). ASCII local parts in dot-atom form
    (no quoted strings, no SMTPUTF8); internationalised domains are accepted through IDNA."""
    if not address:
        return "empty address"
    if len(address) > 254:
        return "longer than 254 characters"
    if any(c.isspace() or ord(c) < 32 for c in address):
        return "contains spaces or control characters"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "not of the form local@domain"
    if len(local) > 64:
        return "local part longer than 64 characters"
    if not _LOCAL_PART.match(local):
        return "invalid local part"
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "invalid domain"
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        return "invalid domain"
    return None


def with_open_pixel(html: str, pixel_url: str | None) -> str:
    """``html`` with an invisible 1x1 image fetching ``pixel_url`` at its end (before ``</body>`` if there is one),
    which reports the open when the reader's client loads images; unchanged without a URL."""
    if not pixel_url:
        return html
    img = (
        f'<img src="{escape(pixel_url, quote=True)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px;overflow:hidden" />'
    )
    end = html.lower().rfind("</body>")
    return html + img if end < 0 else html[:end] + img + html[end:]


def message_hash(message: Message) -> str:
    """32 hex characters derived from the intervention id and the channel: the same send, the same hash."""
    return hashlib.sha256(f"{message.intervention_id}\x1f{message.channel.value}".encode()).hexdigest()[:32]


class SmtpEmailChannel:
    """E-mail through one SMTP server (``Settings.smtp_*``, ``email_*``)."""

    name = ChannelName.email
    provider = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        unsubscribe_mailbox: str,
        message_id_domain: str = "",
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        local_hostname: str = "localhost",
        timeout_seconds: float = 10.0,
    ) -> None:
        sender_address = parseaddr(sender)[1]
        if "@" not in sender_address:
            raise ValueError(f"email_from: {sender!r} has no address")
        self.host, self.port = host, port
        self.sender = sender
        self.unsubscribe_mailbox = unsubscribe_mailbox
        self.message_id_domain = message_id_domain or sender_address.rpartition("@")[2]
        self.username, self.password = username, password
        self.use_tls, self.start_tls = use_tls, start_tls
        self.local_hostname = local_hostname
        self.timeout = timeout_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpEmailChannel:
        s = settings
        return cls(
            host=s.smtp_host,
            port=s.smtp_port,
            sender=s.email_from,
            unsubscribe_mailbox=s.email_unsubscribe_mailbox,
            message_id_domain=s.email_message_id_domain,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            use_tls=s.smtp_use_tls,
            start_tls=s.smtp_start_tls,
            local_hostname=s.smtp_local_hostname,
            timeout_seconds=s.smtp_timeout_seconds,
        )

    def available_for(self, contact: Contact) -> bool:
        return unreachable(self.name, contact) is None

    def message_id(self, message: Message) -> str:
        return f"<{message_hash(message)}@{self.message_id_domain}>"

    def build(self, message: Message) -> EmailMessage:
        """The MIME message for ``message`` (what ``send`` hands to the server)."""
        problem = address_problem(message.to)
        if problem is not None:
            raise Permanent(f"invalid e-mail address {mask(message.to)}: {problem}")
        subject, text, html = message.part("subject"), message.part("text"), message.part("html")
        h = message_hash(message)
        mailto = f"mailto:{self.unsubscribe_mailbox}?subject={quote(f'unsubscribe {h}')}"
        https = message.unsubscribe_url if (message.unsubscribe_url or "").startswith("https://") else None
        email = EmailMessage(policy=SMTP)
        try:
            email["From"] = self.sender
            email["To"] = message.to
            email["Subject"] = subject
            email["Date"] = formatdate(usegmt=True)
            email["Message-ID"] = self.message_id(message)
            email["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in (mailto, https) if u)
            if https:
                email["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            email["X-Engage-Intervention"] = message.intervention_id
        except ValueError as exc:  # a header with a line break, say: never sent, and said why
            raise Permanent(f"cannot build the e-mail: {exc}") from exc
        email.set_content(text, charset="utf-8")
        email.add_alternative(with_open_pixel(html, message.open_pixel_url), subtype="html", charset="utf-8")
        return email

    async def send(self, message: Message) -> Delivery:
        email = self.build(message)
        try:
            await aiosmtplib.send(
                email,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                local_hostname=self.local_hostname,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refusals = exc.recipients
            said = "; ".join(f"{r.code} {r.message}" for r in refusals).replace(message.to, mask(message.to))
            if refusals and all(r.code >= 500 for r in refusals):
                raise Permanent(f"the SMTP server refused the recipient: {said}") from exc
            raise Retryable(f"the SMTP server deferred the recipient: {said}") from exc
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPSenderRefused) as exc:
            if exc.code < 500 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                raise Retryable(f"the SMTP server deferred our sender: {exc.code} {exc.message}") from exc
            raise Misconfigured(f"the SMTP server refused our login or sender: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPDataError as exc:
            if exc.code >= 500:
                raise Permanent(f"the SMTP server refused the message: {exc.code} {exc.message}") from exc
            raise Retryable(f"the SMTP server deferred the message: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPResponseException as exc:  # greeting, EHLO, other commands
            if exc.code >= 500:
                raise Misconfigured(f"the SMTP server refused us: {exc.code} {exc.message}") from exc
            raise Retryable(f"the SMTP server answered {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise Misconfigured(f"the SMTP server lacks what we need: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:  # connect, disconnect, timeouts
            raise Retryable(f"SMTP server {self.host}:{self.port} unreachable: {type(exc).__name__}: {exc}") from exc
        return Delivery(self.name, self.provider, email["Message-ID"], message.to)

    async def aclose(self) -> None:
        return None
