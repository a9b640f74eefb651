"""The HTTP collector for web and mobile clients (Starlette on uvicorn).

POST /v1/events with a write key: a batch of events (JSON, optionally gzip), each validated on its own.
Accepted events are grouped per user and published as ``EventBatch`` messages; refused ones go to the
dead-letter topic with the reason and their raw JSON. The answer is sent only after Kafka acknowledged
both, so a 200 means stored; on 503 the client retries the whole batch (event ids make that safe).

POST /v1/interventions/outcomes with a server key: what the client's delivery system did with intervention
requests (sent, delivered, opened, clicked, failed), onto the intervention-outcomes topic, same rules.

Tracking back (open pixel, signed clicks, unsubscribes, Twilio status callbacks) and PUT /v1/users/{id}/contact:
``streams.collector.tracking``.
"""

from __future__ import annotations

import logging
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from access.auth import Principal, bearer_key
from access.keys import KeyRing
from config.settings import Settings
from kafka_io.admin import Replication, ensure_topics
from kafka_io.producer import DeliveryFailed, EventProducer
from schemas.messages import DeadLetter, kept_raw
from schemas.topics import catalogue
from streams.admission import Admission
from streams.collector.bodies import TooLarge, read_body
from streams.collector.openapi import openapi_document
from streams.collector.tracking import Tracking
from streams.collector.validation import (
    Limits,
    extract_events,
    extract_outcomes,
    judge,
    judge_outcomes,
)

log = logging.getLogger(__name__)

REQUESTS = Counter("engage_collector_requests_total", "Collector requests by outcome", ["outcome"])
EVENTS = Counter("engage_collector_events_total", "Events received by the collector, by outcome", ["outcome"])
LATENCY = Histogram(
    "engage_collector_request_seconds",
    "Collector request latency (until Kafka acknowledged)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
# Labels are bounded sets (OutcomeKind, Channel): never a user or intervention id.
OUTCOMES = Counter(
    "engage_intervention_outcomes_total",
    "Intervention outcomes reported by the delivery system and stored, by outcome and channel",
    ["outcome", "channel"],
)
OUTCOMES_REJECTED = Counter(
    "engage_collector_rejected_outcomes_total", "Intervention outcome reports refused (dead-lettered)"
)
# Exported at 0 from the start, so rates and "no events" alerts see a series before the first request.
REQUESTS.labels("ok")
for _outcome in ("accepted", "rejected", "duplicate"):
    EVENTS.labels(_outcome)


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _problem(status: int, error: str, detail: str, retry_after: int | None = None) -> Response:
    REQUESTS.labels(error).inc()
    if retry_after is None:
        return _json(status, {"error": error, "detail": detail})
    body = {"error": error, "detail": detail, "retry_after_seconds": retry_after}
    return _json(status, body, headers={"Retry-After": str(retry_after)})


def _decoded(body: bytes, encoding: str, limit: int) -> bytes:
    """The body decompressed if gzip, refusing more than ``limit`` bytes; ValueError if it cannot be decoded."""
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise ValueError(f"body is not valid gzip: {exc}") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise TooLarge(f"decompressed body exceeds the limit of {limit} bytes")
        if not inflater.eof:  # cut short: what was inflated may still parse, but it is not what the client sent
            raise ValueError("body is not valid gzip: the stream is truncated")
    elif encoding not in ("identity", ""):
        raise ValueError(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    return body


class _Admitted(NamedTuple):
    principal: Principal
    received_at: datetime
    items: list[Any]


class Collector:
    """The collector's state: keys, limits and the Kafka producer."""

    def __init__(self, settings: Settings, producer: EventProducer | None = None) -> None:
        self.settings = settings
        self.topics = catalogue(settings.topic_prefix, settings.event_partitions)
        self.keys = KeyRing.from_settings(settings)  # settings' keys + the registry, re-read when it changes
        self.limits = Limits(
            max_events=settings.collector_max_batch_events,
            max_future_skew=timedelta(seconds=settings.collector_max_future_skew_seconds),
            max_age=timedelta(days=settings.collector_max_event_age_days),
        )
        self.producer = producer
        self.admission = Admission(
            rate_per_key=settings.collector_rate_per_key,
            max_in_progress=settings.collector_max_in_progress,
            max_queued=settings.collector_max_queued_messages,
        )
        self.ready = False

    def start(self) -> None:
        ensure_topics(self.settings.kafka, self.topics.all(), replication=Replication(*self.settings.kafka_replication))
        if self.producer is None:
            self.producer = EventProducer(
                self.settings.kafka,
                self.topics,
                source="collector",
                linger_ms=2,
                report_successes=True,
                # A request waits for its events to be stored: answer 503 within 30 s rather than librdkafka's
                # default of 5 minutes, and start a fresh producer if Kafka keeps not answering this one.
                config={"message.timeout.ms": 30_000},
                renew_when_timing_out=True,
            )
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        if self.producer is not None:
            self.producer.close(10.0)

    def authenticate(self, request: Request) -> Principal | None:
        key = bearer_key(request.headers.get("authorization"))
        return self.keys.lookup(request.headers.get("x-write-key") if key is None else key)

    async def track(self, request: Request) -> Response:
        with LATENCY.time():
            return await self._track(request)

    async def _serve(
        self,
        request: Request,
        action: str,
        unauthorized: str,
        forbidden: str,
        extract: Callable[[Any, Limits], list[Any]],
        store: Callable[[_Admitted], Awaitable[Response]],
    ) -> Response:
        """What both endpoints do around judging and storing items (``store``): the key, the admission (rate
        and work in progress, released when the request ends), the body (size, gzip), the batch's shape.

        A body that is not JSON or not a batch is answered 400 and dead-lettered whole, with the reason."""
        principal = self.authenticate(request)
        if principal is None:
            return _problem(401, "unauthorized", unauthorized)
        if not principal.may(action):
            return _problem(403, "forbidden", forbidden)
        queued = self.producer.in_flight if self.producer is not None else 0
        refusal = self.admission.admit(principal.app_id, time.monotonic(), queued)
        if refusal is not None:
            return _problem(refusal.status, refusal.error, refusal.detail, refusal.retry_after)
        try:
            admitted = await self._read_batch(request, principal, extract)
            return admitted if isinstance(admitted, Response) else await store(admitted)
        finally:
            self.admission.done()

    async def _read_batch(
        self, request: Request, principal: Principal, extract: Callable[[Any, Limits], list[Any]]
    ) -> Response | _Admitted:
        """The body (size, gzip) and the batch's shape, for a request the admission let in."""
        received_at = datetime.now(UTC)
        limit = self.settings.collector_max_body_bytes
        sent = b""
        try:
            sent = await read_body(request, limit)
            raw = _decoded(sent, request.headers.get("content-encoding", "identity").lower(), limit)
        except TooLarge as exc:
            return _problem(413, "payload_too_large", str(exc))
        except ValueError as exc:  # not gzip after all, or an encoding we do not speak: kept like non-JSON
            await self._dead_letter_body(sent, str(exc), principal.app_id, received_at)
            return _problem(400, "bad_request", str(exc))
        try:
            items = extract(orjson.loads(raw), self.limits)
        except ValueError as exc:  # not JSON (orjson.JSONDecodeError), or not a batch (BatchShapeError)
            detail = f"body is not valid JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
            await self._dead_letter_body(raw, detail, principal.app_id, received_at)
            return _problem(400, "bad_request", detail)
        return _Admitted(principal, received_at, items)

    async def _track(self, request: Request) -> Response:
        return await self._serve(
            request,
            "track",
            "a valid write key is required (Authorization: Bearer <key>)",
            "this key may not track events",
            extract_events,
            self._store_events,
        )

    async def _store_events(self, admitted: _Admitted) -> Response:
        principal, received_at, events = admitted
        verdict = judge(events, received_at, principal.app_id, self.limits)
        assert self.producer is not None
        try:
            await self.producer.send_async(verdict.accepted, verdict.dead_letters, received_at)
        except DeliveryFailed as exc:
            log.error("Kafka did not acknowledge a batch: %s", exc)
            return _problem(503, "unavailable", "events could not be stored right now; retry the whole batch")
        EVENTS.labels("accepted").inc(len(verdict.accepted))
        EVENTS.labels("rejected").inc(len(verdict.rejected))
        EVENTS.labels("duplicate").inc(len(verdict.duplicates))
        REQUESTS.labels("ok").inc()
        return _json(
            200,
            {
                "accepted": [e.event_id for e in verdict.accepted],
                "duplicates": verdict.duplicates,
                "rejected": [r.as_json() for r in verdict.rejected],
            },
        )

    async def outcomes(self, request: Request) -> Response:
        return await self._serve(
            request,
            "act",
            "a valid server key is required (Authorization: Bearer <key>)",
            "reporting intervention outcomes needs a server key",
            extract_outcomes,
            self._store_outcomes,
        )

    async def _store_outcomes(self, admitted: _Admitted) -> Response:
        principal, received_at, items = admitted
        verdict = judge_outcomes(items, received_at, principal.app_id, self.limits)
        assert self.producer is not None
        try:
            await self.producer.send_async([], verdict.dead_letters, outcomes=verdict.accepted)
        except DeliveryFailed as exc:
            log.error("Kafka did not acknowledge outcomes: %s", exc)
            return _problem(503, "unavailable", "outcomes could not be stored right now; retry the whole batch")
        for outcome in verdict.accepted:
            OUTCOMES.labels(outcome.outcome.value, outcome.channel.value if outcome.channel else "none").inc()
        OUTCOMES_REJECTED.inc(len(verdict.rejected))
        REQUESTS.labels("ok").inc()
        return _json(
            200,
            {"accepted": len(verdict.accepted), "rejected": [r.as_json() for r in verdict.rejected]},
        )

    async def _dead_letter_body(self, raw: bytes, reason: str, app_id: str, received_at: datetime) -> None:
        assert self.producer is not None
        letter = DeadLetter(
            dead_letter_id=str(uuid.uuid4()),
            received_at=received_at,
            source="collector",
            app_id=app_id,
            reason=reason,
            raw=kept_raw(raw.decode("utf-8", errors="replace")),
        )
        try:
            await self.producer.send_async([], [letter])
        except DeliveryFailed as exc:
            log.error("dead letter not stored: %s", exc)


def create_app(settings: Settings, producer: EventProducer | None = None) -> Starlette:
    collector = Collector(settings, producer)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        collector.start()
        try:
            yield
        finally:
            collector.stop()

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        if collector.ready:
            return _json(200, {"status": "ready"})
        return _json(503, {"status": "starting"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(settings))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/v1/events", collector.track, methods=["POST"]),
            Route("/v1/interventions/outcomes", collector.outcomes, methods=["POST"]),
            *Tracking(collector).routes(),  # opens, clicks, unsubscribes, provider reports, contacts
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/openapi.json", openapi),
            Route("/metrics", metrics),
        ],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=settings.collector_cors_origins,
                allow_methods=["POST", "GET", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "Content-Encoding", "X-Write-Key"],
                max_age=86400,
            )
        ],
        lifespan=lifespan,
    )
    app.state.collector = collector
    return app
