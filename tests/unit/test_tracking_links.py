"""Tracking tokens: encrypted and authenticated, per purpose, expiring, rotatable; the URLs made from them; and the
events, outcomes and Twilio signatures the tracking endpoints make of hits (pure logic, no servers)."""

from __future__ import annotations

import base64
import stat
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from pydantic import SecretStr

from config.settings import Settings
from notifications.tracking.keys import tracking_links, tracking_secrets
from notifications.tracking.links import (
    PATHS,
    BadToken,
    Claims,
    ExpiredToken,
    LinkPolicy,
    Purpose,
    TokenCodec,
    TokenKeys,
    TrackingLinks,
    redirect_allowed,
)
from notifications.tracking.reports import (
    StatusReport,
    notification_id,
    report,
    twilio_signature,
    twilio_signature_valid,
    twilio_status,
)
from schemas.events import Channel, parse_event
from schemas.interventions import InterventionRequest, InterventionType, OutcomeKind

NOW = datetime(2026, 3, 4, 17, 30, tzinfo=UTC)
SECRET = b"s" * 32
USER = "student-4242"


def codec(*secrets: bytes) -> TokenCodec:
    return TokenCodec(TokenKeys(list(secrets) or [SECRET]))


def claims(purpose: Purpose = Purpose.open, days: float = 1, target: str | None = None) -> Claims:
    return Claims(purpose, "iv-1234", USER, Channel.email, NOW + timedelta(days=days), target)


def request(intervention_id: str = "0b7c6f0e-3d1c-5b8a-9a55-2f0f4b4f0a11") -> InterventionRequest:
    return InterventionRequest(
        intervention_id=intervention_id,
        user_id=USER,
        created_at=NOW,
        status="send",
        tier="low",
        intervention_type=InterventionType.gentle_reminder,
        channels=[Channel.email, Channel.sms],
        reason="No login for 4 days",
        deadline=NOW + timedelta(hours=24),
        risk_7d=31.0,
        model_version="heuristic-1",
        triggered_by_event_time=NOW,
    )


def links(secret: bytes = SECRET, **policy: object) -> TrackingLinks:
    options: dict[str, object] = {
        "base_url": "https://t.school.example/",
        "action_url": "https://app.school.example/continue?m={channel}&c={intervention_type}",
        "preferences_url": "https://app.school.example/settings",
        **policy,
    }
    return TrackingLinks(codec(secret), LinkPolicy(**options), clock=lambda: NOW)  # type: ignore[arg-type]


def token_of(url: str, purpose: Purpose) -> str:
    prefix = f"https://t.school.example{PATHS[purpose]}"
    assert url.startswith(prefix), url
    return url[len(prefix) :]


def test_roundtrip_for_every_purpose():
    c = codec()
    for purpose in Purpose:
        target = "https://app.school.example/x?y=1" if purpose is Purpose.click else None
        made = claims(purpose, target=target)
        assert c.verify(purpose, c.mint(made), NOW) == made


def test_a_changed_byte_anywhere_is_refused_as_bad():
    c = codec()
    raw = bytearray(base64.urlsafe_b64decode(c.mint(claims()) + "=="))
    for i in range(len(raw)):
        tampered = bytearray(raw)
        tampered[i] ^= 0x01
        token = base64.urlsafe_b64encode(bytes(tampered)).rstrip(b"=").decode()
        with pytest.raises(BadToken):
            c.verify(Purpose.open, token, NOW)


@pytest.mark.parametrize("garbage", ["", "!!!", "abc", "A" * 5000, "AAAA" * 10, "%2e%2e%2f"])
def test_garbage_is_bad_not_expired(garbage):
    with pytest.raises(BadToken):
        codec().verify(Purpose.open, garbage, NOW)


def test_expired_is_told_apart_from_bad_and_only_once_authentic():
    c = codec()
    token = c.mint(claims(days=1))
    assert c.verify(Purpose.open, token, NOW + timedelta(hours=23)).user_id == USER
    with pytest.raises(ExpiredToken) as expired:
        c.verify(Purpose.open, token, NOW + timedelta(days=1))
    assert expired.value.status == 410 and "expired on 2026-03-05" in str(expired.value)
    with pytest.raises(BadToken) as bad:  # authentic bytes of another key: 400 even when long expired
        codec(b"t" * 32).verify(Purpose.open, token, NOW + timedelta(days=999))
    assert bad.value.status == 400


def test_a_token_for_one_purpose_does_not_open_another():
    c = codec()
    token = c.mint(claims(Purpose.open))
    for other in (Purpose.click, Purpose.unsubscribe, Purpose.status):
        with pytest.raises(BadToken, match=f"not a valid {other.value} token"):
            c.verify(other, token, NOW)


def test_wrong_key_is_refused():
    with pytest.raises(BadToken):
        codec(b"k" * 32).verify(Purpose.open, codec().mint(claims()), NOW)


def test_rotation_old_tokens_still_verify_new_ones_use_the_new_key():
    old, new = b"o" * 32, b"n" * 32
    before = codec(old).mint(claims())
    rotated = codec(new, old)
    assert rotated.verify(Purpose.open, before, NOW).user_id == USER
    after = rotated.mint(claims())
    assert codec(new).verify(Purpose.open, after, NOW).user_id == USER
    with pytest.raises(BadToken):
        codec(old).verify(Purpose.open, after, NOW)  # retired key alone cannot read new tokens
    with pytest.raises(BadToken):
        codec(new).verify(Purpose.open, before, NOW)  # once the old secret is dropped, its tokens stop working


def test_a_short_secret_or_none_is_refused():
    with pytest.raises(ValueError, match="at least 16 bytes"):
        TokenKeys([b"short"])
    with pytest.raises(ValueError, match="at least one secret"):
        TokenKeys([])


def test_a_click_token_only_ever_holds_a_web_address():
    with pytest.raises(ValueError, match="http"):
        codec().mint(claims(Purpose.click, target="javascript:alert(1)"))
    with pytest.raises(ValueError, match="http"):
        codec().mint(claims(Purpose.click, target=None))


def test_no_user_id_or_intervention_id_in_any_url_in_clear():
    ids = ("student-4242", "4242", "0b7c6f0e", "iv-secret-for-student-4242")
    lm = links()
    for req in (request(), request("iv-secret-for-student-4242")):
        made = lm.links(req, Channel.email)
        urls = [made.action, made.unsubscribe, lm.open_pixel(req, Channel.email), lm.status_callback(req, Channel.sms)]
        for url in urls:
            assert url is not None
            for text in (url, unquote(url), base64.urlsafe_b64decode(url.rsplit("/", 1)[1] + "==").decode("latin-1")):
                assert not any(i in text for i in ids), url


def test_the_link_maker_builds_each_link_for_its_purpose_and_channel():
    lm = links()
    req = request()
    made = lm.links(req, Channel.email)
    click = lm.codec.verify(Purpose.click, token_of(made.action, Purpose.click), NOW)
    assert click.target == "https://app.school.example/continue?m=email&c=gentle_reminder"
    assert (click.user_id, click.intervention_id, click.channel) == (USER, req.intervention_id, Channel.email)
    assert click.expires_at == NOW + timedelta(days=60)
    unsub = lm.codec.verify(Purpose.unsubscribe, token_of(made.unsubscribe, Purpose.unsubscribe), NOW)
    assert unsub.expires_at == NOW + timedelta(days=400)
    assert made.preferences == "https://app.school.example/settings"
    pixel = lm.open_pixel(req, Channel.email)
    assert pixel is not None and lm.codec.verify(Purpose.open, token_of(pixel, Purpose.open), NOW).user_id == USER
    assert lm.open_pixel(req, Channel.sms) is None and lm.open_pixel(req, Channel.push) is None
    callback = lm.status_callback(req, Channel.sms)
    assert callback is not None
    status = lm.codec.verify(Purpose.status, token_of(callback, Purpose.status), NOW)
    assert (status.channel, status.expires_at) == (Channel.sms, NOW + timedelta(days=7))
    assert callback == lm.callback_url(token_of(callback, Purpose.status))
    assert lm.status_callback(req, Channel.email) is None


def test_two_links_for_the_same_message_differ_so_they_cannot_be_correlated_by_eye():
    lm = links()
    assert lm.links(request(), Channel.email).action != lm.links(request(), Channel.email).action


def test_a_base_url_that_is_not_web_is_refused():
    with pytest.raises(ValueError, match="base URL"):
        links(base_url="t.school.example")


def test_redirects_go_only_to_web_addresses_and_to_the_allowed_hosts_when_set():
    assert redirect_allowed("https://app.school.example/x", [])
    assert redirect_allowed("https://APP.school.example/x", ["app.school.example"])
    assert not redirect_allowed("https://evil.example/x", ["app.school.example"])
    assert not redirect_allowed("//evil.example/x", [])
    assert not redirect_allowed("javascript:alert(1)", [])


# -- what hits become (notifications.tracking.reports) ----------------------------------------------------------

TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = [
    ("CallSid", "CA1234567890ABCDE"),
    ("Caller", "+14158675309"),
    ("Digits", "1234"),
    ("From", "+14158675309"),
    ("To", "+18005551212"),
]


def test_the_twilio_signature_matches_twilios_published_example():
    assert twilio_signature(TWILIO_URL, TWILIO_PARAMS, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature(TWILIO_URL, list(reversed(TWILIO_PARAMS)), "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    changed = [(k, "9999" if k == "Digits" else v) for k, v in TWILIO_PARAMS]
    assert not twilio_signature_valid(TWILIO_URL, changed, "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_signature_valid(TWILIO_URL + "&x=1", TWILIO_PARAMS, "12345", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, "54321", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not twilio_signature_valid(TWILIO_URL, TWILIO_PARAMS, "12345", "")
    # a repeated field: each distinct value once, sorted (as Twilio's own validator)
    assert twilio_signature("u", [("x", "2"), ("x", "1"), ("x", "1")], "t") == twilio_signature(
        "u", [("x", "1"), ("x", "2")], "t"
    )


@pytest.mark.parametrize(
    ("params", "kind", "detail"),
    [
        ({"MessageStatus": "delivered", "MessageSid": "SM1"}, OutcomeKind.delivered, "twilio delivered SM1"),
        ({"MessageStatus": "undelivered", "MessageSid": "SM1", "ErrorCode": "30003"}, OutcomeKind.failed,
         "twilio undelivered: error 30003 (SM1)"),
        ({"MessageStatus": "failed", "MessageSid": "SM1"}, OutcomeKind.failed, "twilio failed: error none given (SM1)"),
        ({"SmsStatus": "read", "SmsSid": "SM2"}, OutcomeKind.opened, "twilio read SM2"),
        ({"MessageStatus": "sent", "MessageSid": "SM1"}, None, "twilio sent (SM1)"),
        ({"MessageStatus": "queued"}, None, "twilio queued (?)"),
        ({}, None, "twilio no status (?)"),
    ],
)  # fmt: skip
def test_twilio_statuses_map_to_outcomes(params, kind, detail):
    assert twilio_status(params) == StatusReport(kind, detail)


def test_a_report_is_an_event_and_an_outcome_with_one_event_id_per_message_and_kind():
    at = NOW
    opened = report(OutcomeKind.opened, intervention_id="iv-1", user_id=USER, channel=Channel.email, at=at)
    again = report(
        OutcomeKind.opened, intervention_id="iv-1", user_id=USER, channel=Channel.email, at=at + timedelta(1)
    )
    clicked = report(OutcomeKind.clicked, intervention_id="iv-1", user_id=USER, channel=Channel.email, at=at)
    sms = report(OutcomeKind.opened, intervention_id="iv-1", user_id=USER, channel=Channel.sms, at=at)
    assert opened.event is not None and again.event is not None and clicked.event is not None
    assert sms.event is not None
    assert opened.event.event_id == again.event.event_id  # a repeated open is the same event
    assert len({opened.event.event_id, clicked.event.event_id, sms.event.event_id}) == 3
    event = parse_event(opened.event.model_dump(mode="json"))  # what the collector and the workers accept
    assert event.event_type == "notification_opened" and event.user_id == USER and event.event_time == at
    assert event.payload.intervention_id == "iv-1" and event.payload.channel is Channel.email  # type: ignore[union-attr]
    assert event.payload.notification_id == notification_id("iv-1", Channel.email)  # type: ignore[union-attr]
    assert (opened.outcome.outcome, opened.outcome.channel, opened.outcome.at) == (
        OutcomeKind.opened,
        Channel.email,
        at,
    )
    delivered = report(OutcomeKind.delivered, intervention_id="iv-1", user_id=USER, channel=Channel.sms, at=at)
    assert delivered.event is not None and delivered.event.model_dump()["event_type"] == "notification_delivered"


def test_a_failure_has_no_event_and_an_id_too_long_for_events_still_reports():
    failed = report(OutcomeKind.failed, intervention_id="iv-1", user_id=USER, channel=Channel.sms, at=NOW, detail="x")
    assert failed.event is None and failed.outcome.detail == "x"
    long_id = "x" * 200
    made = report(OutcomeKind.clicked, intervention_id=long_id, user_id=USER, channel=Channel.email, at=NOW)
    assert made.event is not None and made.outcome.intervention_id == long_id
    payload = made.event.model_dump()["payload"]
    assert payload["intervention_id"] is None and payload["notification_id"] == notification_id(long_id, Channel.email)


# -- where the secret comes from (notifications.tracking.keys) --------------------------------------------------


def test_without_a_configured_secret_one_is_made_once_per_host_and_kept_private(tmp_path):
    settings = Settings(run_dir=tmp_path)
    first = tracking_secrets(settings)
    assert tracking_secrets(settings) == first and len(first) == 1 and len(first[0]) == 64
    key_file = tmp_path / "tracking.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["tracking.key"]  # no temporary file left behind
    a, b = tracking_links(settings), tracking_links(Settings(run_dir=tmp_path))  # two processes of one host
    url = a.links(request(), Channel.email).action
    assert b.codec.verify(Purpose.click, url.rsplit("/", 1)[1], datetime.now(UTC)).user_id == USER


def test_a_configured_secret_mints_and_retired_ones_still_verify(tmp_path):
    old = Settings(run_dir=tmp_path, tracking_secret=SecretStr("the-old-secret-0123456789"))
    rotated = Settings(
        run_dir=tmp_path,
        tracking_secret=SecretStr("the-new-secret-0123456789"),
        tracking_retired_secrets=SecretStr("the-old-secret-0123456789, another-old-one-0123456789"),
    )
    assert tracking_secrets(rotated) == [
        b"the-new-secret-0123456789",
        b"the-old-secret-0123456789",
        b"another-old-one-0123456789",
    ]
    token = tracking_links(old).links(request(), Channel.email).unsubscribe.rsplit("/", 1)[1]
    assert tracking_links(rotated).codec.verify(Purpose.unsubscribe, token, datetime.now(UTC)).user_id == USER
    assert not (tmp_path / "tracking.key").exists()
    base = tracking_links(Settings(run_dir=tmp_path, collector_port=18999, tracking_secret=SecretStr("x" * 20)))
    assert base.open_pixel(request(), Channel.email).startswith("http://127.0.0.1:18999/t/o/")  # type: ignore[union-attr]
