"""Tracking back, on the collector: opens, clicks, unsubscribes and provider delivery reports become
``notification_*`` events (events topic) and intervention outcomes; contacts come in from the platform.

Routes (tokens: ``notifications.tracking.links``; events and outcomes: ``notifications.tracking.reports``):

- ``GET /t/o/{token}``: the e-mail open pixel, a 1x1 GIF that must not be cached -> ``notification_opened`` +
  outcome ``opened``.
- ``GET /t/c/{token}``: a click -> 302 to the address sealed in the token (never one taken from the request: no
  open redirect; ``tracking_redirect_hosts`` narrows it further) + ``notification_clicked`` + outcome ``clicked``.
- ``GET /t/u/{token}``: a page asking to confirm (link scanners and prefetchers GET every link: a GET changes
  nothing); ``POST /t/u/{token}``: the confirmation, or RFC 8058's one-click (``List-Unsubscribe=One-Click``,
  posted by mail providers) -> a ``ContactChange(unsubscribe={channel})`` on ``contact_changes``, which the
  notification service folds into the student's contact.
- ``POST /v1/webhooks/twilio/status/{token}``: Twilio's ``StatusCallback`` for an SMS, signed by Twilio
  (``X-Twilio-Signature``, over the URL we gave it) -> delivered: ``notification_delivered`` + outcome;
  failed/undelivered: outcome ``failed`` with Twilio's error code. A bad signature is 403.
- ``PUT /v1/users/{id}/contact`` (server keys): the student's ``Contact`` onto the ``contacts`` topic, keyed by
  user id with the producer's murmur2 partitioner, so it lands in the partition number of the student's
  intervention requests (both topics have ``event_partitions`` partitions).

A bad token is 400, an expired one 410, with a sentence saying which. Every hit is counted by kind and result
(``engage_tracking_hits_total``).

Not here, on purpose:

- Push: FCM HTTP v1 has no per-message delivery callback (its delivery data is aggregated per app and day, in the
  FCM Data API and the BigQuery export). The app reports ``notification_delivered``/``notification_opened`` for a
  push itself, as events on ``POST /v1/events`` with its write key (payload: notification id, channel ``push``,
  intervention id from the push's data); the in-app inbox's "mark read" is the worker API's
  (``streams.worker.inbox_api``).
- Repeated opens are each recorded (no state here, so any number of collectors and restarts agree): their events
  share one event id, so everything downstream that dedupes by event id counts the message opened once, and
  each hit is an outcome row with its time; the effectiveness query counts distinct interventions.

Opens and clicks answer the student without waiting more than ``tracking_store_wait_seconds`` for Kafka (a
redirect must not hang on a broker); a write that fails after that is logged and counted ``unstored``.
Unsubscribes, provider reports and contacts wait for Kafka and answer 503 if it did not take them: those
must not be lost, and their senders retry.
"""

from __future__ import annotations

import asyncio
import base64
import html
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qsl

import orjson
from prometheus_client import Counter
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from access.auth import Principal
from config.settings import Settings
from kafka_io.producer import DeliveryFailed, EventProducer
from notifications.tracking.keys import tracking_links
from notifications.tracking.links import Claims, ExpiredToken, Purpose, TokenError, redirect_allowed
from notifications.tracking.reports import Report, report, twilio_signature_valid, twilio_status
from schemas.contacts import Contact, ContactChange
from schemas.events import Channel
from schemas.interventions import OutcomeKind
from schemas.messages import DeadLetter, FieldError, kept_raw
from schemas.topics import TopicCatalogue
from streams.admission import Admission
from streams.collector.bodies import TooLarge, read_body


class Collector(Protocol):
    """What the tracking endpoints use of the collector (``streams.collector.app.Collector``): its settings, topics,
    producer, admission control and key check. A protocol, so this module does not import the app that mounts it."""

    settings: Settings
    topics: TopicCatalogue
    producer: EventProducer | None
    admission: Admission

    def authenticate(self, request: Request) -> Principal | None: ...


log = logging.getLogger(__name__)

KINDS = ("open", "click", "unsubscribe", "status", "contact")
RESULTS = ("ok", "ignored", "400", "403", "410", "503", "unstored")
HITS = Counter(
    "engage_tracking_hits_total",
    "Tracking endpoint hits (opens, clicks, unsubscribes, provider status reports, contacts) by result",
    ["kind", "result"],
)
for _kind in KINDS:
    for _result in RESULTS:
        HITS.labels(_kind, _result)

# A transparent 1x1 GIF (42 bytes).
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
    "Referrer-Policy": "no-referrer",
}
MAX_FORM_BYTES = 64 * 1024
CHANNEL_WORDS = {Channel.email: "e-mail", Channel.sms: "text messages", Channel.push: "push notifications",
                 Channel.in_app: "in-app messages"}  # fmt: skip


def _page(status: int, title: str, text: str, form: bool = False) -> HTMLResponse:
    button = '<form method="post"><button type="submit">Unsubscribe</button></form>' if form else ""
    body = (
        '<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{button}</body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={**NO_CACHE, "X-Frame-Options": "DENY"})


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=NO_CACHE)


async def produce_acknowledged(producer: EventProducer, messages: Sequence[tuple[str, bytes, bytes]]) -> None:
    """Queue (topic, key, value) messages, keyed (partition: the key's murmur2 hash, the producer's partitioner);
    return once Kafka acknowledged all of them, raise ``DeliveryFailed`` if any failed."""
    await producer.send_acknowledged(messages)


class Tracking:
    """The tracking endpoints of one collector (its settings, keys, producer and topics)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        s = collector.settings
        self.links = tracking_links(s)
        self.redirect_hosts = s.tracking_redirect_hosts
        self.store_wait = s.tracking_store_wait_seconds
        self.twilio_auth_token = s.twilio_auth_token.get_secret_value() if s.twilio_auth_token else ""
        self._late: set[asyncio.Task[None]] = set()  # writes answered before Kafka acknowledged them

    @property
    def producer(self) -> EventProducer:
        assert self.collector.producer is not None, "the collector has not started"
        return self.collector.producer

    def routes(self) -> list[Route]:
        return [
            Route("/t/o/{token}", self.open, methods=["GET"]),
            Route("/t/c/{token}", self.click, methods=["GET"]),
            Route("/t/u/{token}", self.unsubscribe, methods=["GET", "POST"]),
            Route("/v1/webhooks/twilio/status/{token}", self.twilio_status, methods=["POST"]),
            Route("/v1/users/{user_id}/contact", self.put_contact, methods=["PUT"]),
        ]

    # -- helpers -------------------------------------------------------------------------------------------------
    def _verify(self, kind: str, purpose: Purpose, request: Request) -> Claims | TokenError:
        try:
            return self.links.codec.verify(purpose, request.path_params["token"], datetime.now(UTC))
        except TokenError as exc:
            HITS.labels(kind, str(exc.status)).inc()
            if isinstance(exc, ExpiredToken):
                log.info("expired %s link for intervention %s", kind, exc.claims.intervention_id)
            return exc

    def _report(self, kind: OutcomeKind, claims: Claims, detail: str) -> Report:
        return report(
            kind,
            intervention_id=claims.intervention_id,
            user_id=claims.user_id,
            channel=claims.channel,
            at=datetime.now(UTC),
            detail=detail,
        )

    async def _store_soon(self, kind: str, made: Report) -> None:
        """Store an open or click, waiting at most ``store_wait`` (the student is answered either way)."""
        task = asyncio.ensure_future(
            self.producer.send_async([made.event] if made.event else [], outcomes=[made.outcome])
        )
        done, _ = await asyncio.wait({task}, timeout=self.store_wait)
        if task in done:
            self._settled(kind, made, task, late=False)
            return
        self._late.add(task)
        task.add_done_callback(lambda t: self._settled(kind, made, t, late=True))

    def _settled(self, kind: str, made: Report, task: asyncio.Task[None], late: bool) -> None:
        self._late.discard(task)
        exc = task.exception()
        if exc is None:
            HITS.labels(kind, "ok").inc()
            return
        HITS.labels(kind, "unstored").inc()
        log.error(
            "%s of intervention %s not stored%s: %s",
            kind,
            made.outcome.intervention_id,
            " (after the student was answered)" if late else "",
            exc,
        )

    async def _dead_letter(self, raw: bytes, reason: str, errors: list[FieldError], app_id: str = "") -> None:
        letter = DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=datetime.now(UTC),
            source="collector",
            app_id=app_id,
            reason=reason,
            errors=errors,
            raw=kept_raw(raw.decode("utf-8", errors="replace")),
        )
        try:
            await self.producer.send_async([], [letter])
        except DeliveryFailed as exc:
            log.error("dead letter not stored: %s", exc)

    # -- opens and clicks ----------------------------------------------------------------------------------------
    async def open(self, request: Request) -> Response:
        claims = self._verify("open", Purpose.open, request)
        if isinstance(claims, TokenError):
            return _json(
                claims.status, {"error": "bad_link" if claims.status == 400 else "expired", "detail": str(claims)}
            )
        await self._store_soon("open", self._report(OutcomeKind.opened, claims, "open pixel"))
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)

    async def click(self, request: Request) -> Response:
        claims = self._verify("click", Purpose.click, request)
        if isinstance(claims, TokenError):
            title = "This link is not valid" if claims.status == 400 else "This link has expired"
            return _page(claims.status, title, str(claims))
        assert claims.target is not None  # verify() refuses click tokens without one
        if not redirect_allowed(claims.target, self.redirect_hosts):
            HITS.labels("click", "400").inc()
            log.warning("click of intervention %s to a host not allowed: refused", claims.intervention_id)
            return _page(400, "This link is not valid", "it leads to an address this service does not send to")
        await self._store_soon("click", self._report(OutcomeKind.clicked, claims, "link"))
        return RedirectResponse(claims.target, status_code=302, headers=NO_CACHE)

    # -- unsubscribe ---------------------------------------------------------------------------------------------
    async def unsubscribe(self, request: Request) -> Response:
        claims = self._verify("unsubscribe", Purpose.unsubscribe, request)
        if isinstance(claims, TokenError):
            title = "This link is not valid" if claims.status == 400 else "This link has expired"
            return _page(claims.status, title, f"{claims}. Change what you receive in your notification settings.")
        words = CHANNEL_WORDS[claims.channel]
        if request.method == "GET":
            HITS.labels("unsubscribe", "ignored").inc()  # a look at the page (or a link scanner): nothing changes
            return _page(200, f"Unsubscribe from {words}?", f"You will no longer receive {words} from us.", form=True)
        change = ContactChange(
            user_id=claims.user_id,
            at=datetime.now(UTC),
            unsubscribe=frozenset({claims.channel}),
            source="unsubscribe_link",
        )
        topic = self.collector.topics.contact_changes.name
        try:
            await produce_acknowledged(
                self.producer, [(topic, claims.user_id.encode(), change.model_dump_json().encode())]
            )
        except DeliveryFailed as exc:
            HITS.labels("unsubscribe", "503").inc()
            log.error("unsubscribe of intervention %s not stored: %s", claims.intervention_id, exc)
            return _page(503, "Please try again", "We could not record this just now; please try again in a minute.")
        HITS.labels("unsubscribe", "ok").inc()
        return _page(200, "You are unsubscribed", f"You will no longer receive {words} from us.")

    # -- Twilio status callbacks ---------------------------------------------------------------------------------
    async def twilio_status(self, request: Request) -> Response:
        if not self.twilio_auth_token:
            HITS.labels("status", "503").inc()
            return _json(
                503, {"error": "misconfigured", "detail": "no Twilio auth token is configured to check the signature"}
            )
        try:
            body = await read_body(request, MAX_FORM_BYTES)
        except TooLarge as exc:
            HITS.labels("status", "400").inc()
            return _json(413, {"error": "payload_too_large", "detail": str(exc)})
        params = parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        token = request.path_params["token"]
        url = self.links.callback_url(token) + (f"?{request.url.query}" if request.url.query else "")
        presented = request.headers.get("x-twilio-signature", "")
        if not twilio_signature_valid(url, params, self.twilio_auth_token, presented):
            HITS.labels("status", "403").inc()
            return _json(403, {"error": "forbidden", "detail": "X-Twilio-Signature does not match this request"})
        claims = self._verify("status", Purpose.status, request)
        if isinstance(claims, TokenError):
            return _json(
                claims.status, {"error": "bad_link" if claims.status == 400 else "expired", "detail": str(claims)}
            )
        status = twilio_status(dict(params))
        if status.kind is None:
            HITS.labels("status", "ignored").inc()
            return Response(status_code=204)
        made = self._report(status.kind, claims, status.detail)
        try:
            await self.producer.send_async([made.event] if made.event else [], outcomes=[made.outcome])
        except DeliveryFailed as exc:
            HITS.labels("status", "503").inc()
            log.error("Twilio status of intervention %s not stored: %s", claims.intervention_id, exc)
            return _json(503, {"error": "unavailable", "detail": "not stored; retry"})
        HITS.labels("status", "ok").inc()
        return Response(status_code=204)

    # -- contacts ------------------------------------------------------------------------------------------------
    async def put_contact(self, request: Request) -> Response:
        principal = self.collector.authenticate(request)
        if principal is None:
            return _json(
                401, {"error": "unauthorized", "detail": "a server key is required (Authorization: Bearer <key>)"}
            )
        if not principal.may("act"):
            return _json(403, {"error": "forbidden", "detail": "storing contacts needs a server key"})
        refusal = self.collector.admission.admit(principal.app_id, time.monotonic(), self.producer.in_flight)
        if refusal is not None:
            body = {"error": refusal.error, "detail": refusal.detail, "retry_after_seconds": refusal.retry_after}
            return Response(
                orjson.dumps(body),
                status_code=refusal.status,
                media_type="application/json",
                headers={"Retry-After": str(refusal.retry_after)},
            )
        try:
            return await self._store_contact(request, principal.app_id)
        finally:
            self.collector.admission.done()

    async def _store_contact(self, request: Request, app_id: str) -> Response:
        user_id = request.path_params["user_id"]
        try:
            raw = await read_body(request, self.collector.settings.collector_max_body_bytes)
        except TooLarge as exc:
            return _json(413, {"error": "payload_too_large", "detail": str(exc)})
        contact, problem, errors = self._contact(raw, user_id)
        if contact is None:
            HITS.labels("contact", "400").inc()
            await self._dead_letter(raw, problem, errors, app_id)
            return _json(400, {"error": "bad_request", "detail": problem, "errors": [e.model_dump() for e in errors]})
        topic = self.collector.topics.contacts.name
        try:
            await produce_acknowledged(self.producer, [(topic, user_id.encode(), contact.model_dump_json().encode())])
        except DeliveryFailed as exc:
            HITS.labels("contact", "503").inc()
            log.error("contact not stored: %s", exc)
            return _json(503, {"error": "unavailable", "detail": "the contact could not be stored right now; retry"})
        HITS.labels("contact", "ok").inc()
        return _json(200, {"user_id": user_id, "stored": True})

    @staticmethod
    def _contact(raw: bytes, user_id: str) -> tuple[Contact | None, str, list[FieldError]]:
        """The contact in ``raw`` for ``user_id`` (the path's), or why not."""
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return None, f"body is not valid JSON: {exc}", []
        if not isinstance(data, dict):
            return None, "body must be a JSON object (a Contact)", []
        if data.setdefault("user_id", user_id) != user_id:
            return None, f"the body's user_id {data['user_id']!r} is not the path's {user_id!r}", []
        try:
            return Contact.model_validate(data), "", []
        except ValidationError as exc:
            errors = [
                FieldError(field=".".join(str(p) for p in e["loc"]) or "(body)", message=e["msg"]) for e in exc.errors()
            ]
            return None, f"not a valid Contact: {errors[0].field}: {errors[0].message}", errors


def openapi_paths() -> dict[str, Any]:
    """The tracking routes and the contact route, for the collector's OpenAPI document."""
    token = [{"name": "token", "in": "path", "required": True, "schema": {"type": "string"}}]
    bad = {"400": {"description": "not a valid link (altered, unknown key)"}, "410": {"description": "expired"}}
    return {
        "/t/o/{token}": {
            "get": {
                "summary": "E-mail open pixel: a 1x1 GIF; records notification_opened and an opened outcome",
                "parameters": token,
                "responses": {"200": {"description": "image/gif, not cacheable"}, **bad},
            }
        },
        "/t/c/{token}": {
            "get": {
                "summary": "Tracked click: 302 to the address sealed in the link; records notification_clicked",
                "parameters": token,
                "responses": {"302": {"description": "to the platform's page"}, **bad},
            }
        },
        "/t/u/{token}": {
            "get": {
                "summary": "Unsubscribe page (changes nothing; a form posts the confirmation)",
                "parameters": token,
                "responses": {"200": {"description": "text/html"}, **bad},
            },
            "post": {
                "summary": "Unsubscribe from the link's channel (also RFC 8058 List-Unsubscribe=One-Click)",
                "parameters": token,
                "responses": {"200": {"description": "unsubscribed"}, **bad, "503": {"description": "retry"}},
            },
        },
        "/v1/webhooks/twilio/status/{token}": {
            "post": {
                "summary": "Twilio StatusCallback (form encoded, X-Twilio-Signature checked)",
                "parameters": token,
                "responses": {
                    "204": {"description": "recorded or nothing to record"},
                    "403": {"description": "signature does not match"},
                    **bad,
                },
            }
        },
        "/v1/users/{user_id}/contact": {
            "put": {
                "summary": "Store how a student can be reached (onto the contacts topic)",
                "security": [{"serverKey": []}],
                "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Contact"}}},
                },
                "responses": {
                    "200": {"description": "stored"},
                    "400": {"description": "not a valid Contact (dead-lettered with the reason)"},
                    "401": {"description": "missing or unknown key"},
                    "403": {"description": "not a server key"},
                    "503": {"description": "Kafka unavailable; retry"},
                },
            }
        },
    }


def openapi_schemas() -> dict[str, Any]:
    """The schemas ``openapi_paths`` refers to (the Contact and what it holds)."""
    contact = Contact.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**contact.pop("$defs", {}), "Contact": contact}
