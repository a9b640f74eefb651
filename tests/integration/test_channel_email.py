"""E-mail over real SMTP: a local aiosmtpd server takes the message, and the test reads it back and parses it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from deploy.process import free_ports
from deploy.providers.smtp import SmtpServer
from notifications.channels.base import Message, Misconfigured, Permanent, Retryable
from notifications.channels.email import SmtpEmailChannel, address_problem
from schemas.contacts import Contact
from schemas.events import Channel

pytestmark = pytest.mark.local_servers

TO = "jördis.student@example.org".replace("ö", "o")
UNSUBSCRIBE = "https://engage.example/u/v1.c2lnbmVk.abc"


def channel(port: int, **overrides: object) -> SmtpEmailChannel:
    options: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "Engage <engage@school.example>",
        "unsubscribe_mailbox": "unsubscribe@school.example",
        "timeout_seconds": 5.0,
        **overrides,
    }
    return SmtpEmailChannel(**options)  # type: ignore[arg-type]


def message(to: str = TO, intervention_id: str = "iv-1", **overrides: object) -> Message:
    fields: dict[str, object] = {
        "intervention_id": intervention_id,
        "user_id": "student-42",
        "channel": Channel.email,
        "to": to,
        "parts": {
            "subject": "Dein 14-Tage-Streak wartet 🔥",
            "text": "Hallo Jördis,\n\nnoch 2 Tage bis zu deinem 14-Tage-Streak.\n",
            "html": "<p>Hallo J&ouml;rdis,</p><p>noch <b>2 Tage</b> bis zu deinem 14-Tage-Streak.</p>",
        },
        "locale": "de",
        "unsubscribe_url": UNSUBSCRIBE,
        **overrides,
    }
    return Message(**fields)  # type: ignore[arg-type]


def test_a_delivered_message_is_multipart_with_unsubscribe_headers_and_a_derived_message_id():
    with SmtpServer() as smtp:
        ch = channel(smtp.port)
        delivery = asyncio.run(ch.send(message()))
        again = asyncio.run(ch.send(message()))  # the same intervention sent twice (a crash before recording)
        other = asyncio.run(ch.send(message(intervention_id="iv-2")))

    assert [r.rcpt_tos for r in smtp.received] == [[TO]] * 3
    assert smtp.received[0].mail_from == "engage@school.example"
    mail = smtp.received[0].parsed()
    assert mail.get_content_type() == "multipart/alternative"
    plain = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert plain is not None and html is not None
    assert plain.get_content().replace("\r\n", "\n") == "Hallo Jördis,\n\nnoch 2 Tage bis zu deinem 14-Tage-Streak.\n"
    assert "<b>2 Tage</b>" in html.get_content()
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]  # html last: preferred
    assert mail["Subject"] == "Dein 14-Tage-Streak wartet 🔥"
    assert mail["To"] == TO and mail["From"] == "Engage <engage@school.example>"
    assert mail["Date"]

    # Message-ID: derived from intervention and channel, so a resend carries the same one; another differs.
    assert mail["Message-ID"] == delivery.provider_id == again.provider_id
    assert mail["Message-ID"].endswith("@school.example>")
    assert smtp.received[1].parsed()["Message-ID"] == mail["Message-ID"]
    assert other.provider_id != delivery.provider_id == smtp.received[0].parsed()["Message-ID"]

    # RFC 2369 / 8058: mailto and https, one-click POST; the mailto names the message, not the student.
    hash_ = delivery.provider_id.strip("<>").split("@")[0]
    assert mail["List-Unsubscribe"] == (
        f"<mailto:unsubscribe@school.example?subject=unsubscribe%20{hash_}>, <{UNSUBSCRIBE}>"
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Engage-Intervention"] == "iv-1"
    assert "student-42" not in smtp.received[0].raw.decode("ascii", "replace")


def test_an_open_pixel_is_the_last_thing_in_the_html_part_and_absent_from_the_text():
    pixel = "https://t.school.example/t/o/AbC_d-1?x=1&y=2"
    with SmtpServer() as smtp:
        ch = channel(smtp.port)
        asyncio.run(ch.send(message(open_pixel_url=pixel)))
        wrapped = {"html": "<html><body><p>Hi</p></BODY></html>", "subject": "s", "text": "t"}
        asyncio.run(ch.send(message(open_pixel_url=pixel, parts=wrapped)))
        asyncio.run(ch.send(message()))
    bare, document, without = (r.parsed() for r in smtp.received)
    img = f'<img src="{pixel.replace("&", "&amp;")}" width="1" height="1" alt=""'
    html = bare.get_body(preferencelist=("html",))
    assert html is not None and html.get_content().rstrip().endswith("/>")
    assert img in html.get_content() and html.get_content().index(img) > html.get_content().index("14-Tage-Streak")
    doc = document.get_body(preferencelist=("html",))
    assert doc is not None and doc.get_content().strip().endswith("</BODY></html>") and img in doc.get_content()
    plain = bare.get_body(preferencelist=("plain",))
    assert plain is not None and "t/o/" not in plain.get_content()
    unpixelled = without.get_body(preferencelist=("html",))
    assert unpixelled is not None and "<img" not in unpixelled.get_content()


def test_without_an_https_unsubscribe_url_there_is_no_one_click_header():
    with SmtpServer() as smtp:
        asyncio.run(channel(smtp.port).send(message(unsubscribe_url="http://insecure.example/u")))
    mail = smtp.received[0].parsed()
    assert mail["List-Unsubscribe"].startswith("<mailto:unsubscribe@school.example?subject=unsubscribe%20")
    assert "http://" not in mail["List-Unsubscribe"] and mail["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize(
    "address",
    [
        "",
        "no-at-sign.example.org",
        "two@@example.org",
        "space in@example.org",
        "a@nodot",
        "a@-bad-.example",
        "a@example.123",
        ".lead@example.org",
        "x" * 65 + "@example.org",
        "a@exa_mple.org",
        "a@example.org\r\nBcc: x@y.z",
    ],
)
def test_an_invalid_address_is_permanent_without_any_traffic(address):
    (port,) = free_ports(1)  # nothing listens there: had the channel connected, it would be Retryable
    assert address_problem(address) is not None
    with pytest.raises(Permanent, match="invalid e-mail address"):
        asyncio.run(channel(port).send(message(to=address)))


def test_addresses_that_are_fine():
    for address in ["a@example.org", "first.last+tag@sub.example.co.uk", "o'brien@example.ie", "x@bücher.example"]:
        assert address_problem(address) is None, address


def test_a_refused_recipient_is_permanent_a_deferred_one_retryable():
    with SmtpServer() as smtp:
        smtp.handler.rcpt_answers["gone@example.org"] = "550 5.1.1 <gone@example.org>: user unknown"
        smtp.handler.rcpt_answers["busy@example.org"] = "451 4.7.1 greylisted, try again later"
        ch = channel(smtp.port)
        with pytest.raises(Permanent) as refused:
            asyncio.run(ch.send(message(to="gone@example.org")))
        with pytest.raises(Retryable) as deferred:
            asyncio.run(ch.send(message(to="busy@example.org")))
    assert not isinstance(refused.value, Misconfigured)
    assert "550" in refused.value.reason and "user unknown" in refused.value.reason
    assert "gone@example.org" not in refused.value.reason  # masked: g***@example.org
    assert "451" in deferred.value.reason
    assert smtp.received == []


def test_a_refused_message_is_permanent():
    with SmtpServer() as smtp:
        smtp.handler.data_answer = "554 5.6.0 message content rejected"
        with pytest.raises(Permanent, match="554"):
            asyncio.run(channel(smtp.port).send(message()))


def test_no_server_is_retryable():
    (port,) = free_ports(1)
    with pytest.raises(Retryable, match="unreachable"):
        asyncio.run(channel(port).send(message()))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_refused_login_is_misconfigured_and_the_right_one_delivers():
    with SmtpServer(login=("engage", "s3cret")) as smtp:
        with pytest.raises(Misconfigured, match="535"):
            asyncio.run(channel(smtp.port, username="engage", password="wrong").send(message()))
        asyncio.run(channel(smtp.port, username="engage", password="s3cret").send(message()))
    assert len(smtp.received) == 1


def test_available_only_with_a_verified_address_and_no_unsubscribe():
    ch = channel(1)
    base = Contact(user_id="s1", email="s1@example.org", email_verified=True)
    assert ch.available_for(base)
    assert not ch.available_for(base.model_copy(update={"email_verified": False}))
    assert not ch.available_for(base.model_copy(update={"email": None}))
    assert not ch.available_for(base.model_copy(update={"unsubscribed": frozenset({Channel.email})}))
    assert ch.available_for(base.model_copy(update={"unsubscribed": frozenset({Channel.sms})}))


def test_the_settings_build_the_channel(tmp_path):
    from config.settings import Settings

    s = Settings(run_dir=tmp_path, smtp_port=2525, email_from="News <news@school.example>")
    ch = SmtpEmailChannel.from_settings(s)
    assert (ch.host, ch.port, ch.message_id_domain) == ("127.0.0.1", 2525, "school.example")
    assert ch.message_id(message()) == ch.message_id(message(to="other@example.org"))


def test_the_date_header_is_now_in_rfc_5322_form():
    with SmtpServer() as smtp:
        asyncio.run(channel(smtp.port).send(message()))
    date = smtp.received[0].parsed()["Date"].datetime
    assert abs((date - datetime.now(UTC)).total_seconds()) < 60
