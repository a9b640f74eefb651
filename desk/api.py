"""The desk's HTTP API (Starlette): the outreach queue for the success team, redemptions for the shop.

Keys as everywhere (``access``): ``Authorization: Bearer <key>``; listing needs ``read``, changing needs ``act``
(server and admin keys; write keys, which ship inside apps, may do neither).

==========================================  ==================================================================
``GET  /v1/outreach?state=``                open | claimed | overdue | resolved | all (default open), most
                                            urgent first; ``limit`` (default 200)
``GET  /v1/outreach/{id}``                  one item with its notes
``POST /v1/outreach/{id}/claim``            {owner, force_reason?}: 409 naming the owner if someone has it
``POST /v1/outreach/{id}/notes``            {author, text}
``POST /v1/outreach/{id}/resolve``          {owner, outcome, note?}: the owner only (403), once (409)
``POST /v1/outreach/{id}/release``          {owner}
``GET  /v1/offers/{code}``                  the offer's terms and state
``POST /v1/offers/{code}/redeem``           {user_id}: 200 once; 409 already redeemed, 410 expired, 404 unknown,
                                            403 another student's code, 400 not a code
``GET  /metrics``, ``/healthz``
==========================================  ==================================================================

Changes report their outcomes (claimed, resolved, offer_redeemed) through the store's outbox; the answer is
given once the change and its outcome are stored, the outcome reaches Kafka within moments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, get_args

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from access.auth import bearer_key
from access.keys import KeyRing
from config.settings import Settings
from desk import metrics
from desk.service import OutboxPublisher
from desk.store import LISTINGS, Listing, Store, StoredOffer, UnknownItem, UnknownOffer
from processors import outreach
from processors.offers import InvalidCode, RedemptionRefused, normalise_code
from processors.outreach import OutreachError, OutreachItem

Clock = Callable[[], datetime]
Handler = Callable[[Request], Awaitable[Response]]
_REFUSAL_STATUS = {"already_redeemed": 409, "expired": 410, "wrong_user": 403}
_STATUS_OUTCOME = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
                   410: "gone", 503: "unavailable"}  # fmt: skip
MAX_BODY_BYTES = 16_384


class _BadRequest(ValueError):
    pass


def _json(status: int, body: Any) -> Response:
    metrics.API_REQUESTS.labels(_STATUS_OUTCOME.get(status, "ok")).inc()
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _problem(status: int, error: str, detail: str) -> Response:
    return _json(status, {"error": error, "detail": detail})


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def item_json(item: OutreachItem, now: datetime) -> dict[str, Any]:
    return {
        "intervention_id": item.intervention_id,
        "user_id": item.user_id,
        "tier": item.tier,
        "reason": item.reason,
        "risk_7d": item.risk_7d,
        "state": item.state.value,
        "queued_at": _iso(item.queued_at),
        "due_at": _iso(item.due_at),
        "overdue": item.overdue(now),
        "owner": item.owner,
        "claimed_at": _iso(item.claimed_at),
        "resolved_at": _iso(item.resolved_at),
        "resolution": None if item.resolution is None else item.resolution.value,
        "notes": [{"at": _iso(n.at), "author": n.author, "text": n.text} for n in item.notes],
    }


def offer_json(offer: StoredOffer, now: datetime) -> dict[str, Any]:
    return {
        "code": offer.code,
        "intervention_id": offer.intervention_id,
        "user_id": offer.user_id,
        "percent_off": offer.percent_off,
        "issued_at": _iso(offer.issued_at),
        "expires_at": _iso(offer.expires_at),
        "redeemed_at": _iso(offer.redeemed_at),
        "expired": offer.redeemed_at is None and now >= offer.expires_at,
    }


async def _body(request: Request, *required: str) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise _BadRequest(f"body exceeds {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BadRequest("body must be a JSON object")
    missing = [name for name in required if not isinstance(body.get(name), str) or not body[name].strip()]
    if missing:
        raise _BadRequest(f"body needs {', '.join(missing)} (non-empty strings)")
    wrong = [k for k, v in body.items() if v is not None and not isinstance(v, str)]
    if wrong:
        raise _BadRequest(f"{', '.join(sorted(wrong))} must be strings")
    return body


class DeskApi:
    def __init__(self, settings: Settings, store: Store, publisher: OutboxPublisher | None, clock: Clock) -> None:
        self.store = store
        self.publisher = publisher
        self.clock = clock
        self.keys = KeyRing.from_settings(settings)

    def guarded(self, action: str, handler: Handler) -> Handler:
        """The key check, and the desk's errors as answers, around one endpoint."""

        async def endpoint(request: Request) -> Response:
            principal = self.keys.lookup(bearer_key(request.headers.get("authorization")))
            if principal is None:
                return _problem(401, "unauthorized", "a valid server key is required (Authorization: Bearer <key>)")
            if not principal.may(action):
                return _problem(403, "forbidden", f"this key may not {action} (a server or admin key may)")
            try:
                return await handler(request)
            except _BadRequest as exc:
                return _problem(400, "bad_request", str(exc))
            except (UnknownItem, UnknownOffer) as exc:
                return _problem(404, "not_found", str(exc.args[0]))
            except OutreachError as exc:
                return _problem(exc.status, type(exc).__name__, str(exc))
            except InvalidCode as exc:
                return _problem(400, "bad_request", str(exc))
            except RedemptionRefused as exc:
                metrics.REDEMPTIONS_REFUSED.labels(exc.reason).inc()
                return _problem(_REFUSAL_STATUS[exc.reason], exc.reason, str(exc))

        return endpoint

    # --- outreach ------------------------------------------------------------------------------------------------
    async def list_items(self, request: Request) -> Response:
        state = request.query_params.get("state", "open")
        if state not in LISTINGS:
            raise _BadRequest(f"state must be one of {', '.join(get_args(Listing))}; got {state!r}")
        limit_text = request.query_params.get("limit", "200")
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 5_000:
            raise _BadRequest("limit must be a whole number from 1 to 5000")
        now = self.clock()
        items = await run_in_threadpool(self.store.items, state, now, int(limit_text))
        return _json(200, {"state": state, "items": [item_json(i, now) for i in items]})

    async def get_item(self, request: Request) -> Response:
        item = await run_in_threadpool(self.store.item, request.path_params["id"])
        return _json(200, item_json(item, self.clock()))

    async def _change(self, request: Request, rule: Callable[[OutreachItem, datetime], OutreachItem]) -> Response:
        now = self.clock()
        before, after = await run_in_threadpool(self.store.change, request.path_params["id"], lambda i: rule(i, now))
        if after is not before and self.publisher is not None:
            self.publisher.nudge()
        spent = after.claim_to_resolve() if before.resolved_at is None else None
        if spent is not None:
            metrics.CLAIM_TO_RESOLVE.observe(spent.total_seconds())
        return _json(200, item_json(after, now))

    async def claim(self, request: Request) -> Response:
        body = await _body(request, "owner")
        force = body.get("force_reason")
        return await self._change(request, lambda i, now: outreach.claim(i, body["owner"], now, force_reason=force))

    async def note(self, request: Request) -> Response:
        body = await _body(request, "author", "text")
        return await self._change(request, lambda i, now: outreach.add_note(i, body["author"], body["text"], now))

    async def resolve(self, request: Request) -> Response:
        body = await _body(request, "owner", "outcome")
        outcome = outreach.resolution(body["outcome"])
        note = body.get("note") or ""
        return await self._change(request, lambda i, now: outreach.resolve(i, body["owner"], outcome, now, note))

    async def release(self, request: Request) -> Response:
        body = await _body(request, "owner")
        return await self._change(request, lambda i, now: outreach.release(i, body["owner"], now))

    # --- offers --------------------------------------------------------------------------------------------------
    async def get_offer(self, request: Request) -> Response:
        offer = await run_in_threadpool(self.store.offer, normalise_code(request.path_params["code"]))
        return _json(200, offer_json(offer, self.clock()))

    async def redeem(self, request: Request) -> Response:
        code = normalise_code(request.path_params["code"])
        body = await _body(request, "user_id")
        now = self.clock()
        offer = await run_in_threadpool(self.store.redeem, code, body["user_id"], now)
        metrics.OFFERS_REDEEMED.inc()
        if self.publisher is not None:
            self.publisher.nudge()
        return _json(200, offer_json(offer, now))

    # --- operations ----------------------------------------------------------------------------------------------
    async def metrics(self, request: Request) -> Response:
        counts = await run_in_threadpool(self.store.counts, self.clock())
        for state in ("open", "claimed", "resolved"):
            metrics.OUTREACH_ITEMS.labels(state).set(counts[state])
        metrics.OUTREACH_OVERDUE.set(counts["overdue"])
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def create_app(
    settings: Settings,
    store: Store,
    publisher: OutboxPublisher | None = None,
    clock: Clock = lambda: datetime.now(UTC),
) -> Starlette:
    api = DeskApi(settings, store, publisher, clock)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    read, act = "read", "act"
    return Starlette(
        routes=[
            Route("/v1/outreach", api.guarded(read, api.list_items), methods=["GET"]),
            Route("/v1/outreach/{id}", api.guarded(read, api.get_item), methods=["GET"]),
            Route("/v1/outreach/{id}/claim", api.guarded(act, api.claim), methods=["POST"]),
            Route("/v1/outreach/{id}/notes", api.guarded(act, api.note), methods=["POST"]),
            Route("/v1/outreach/{id}/resolve", api.guarded(act, api.resolve), methods=["POST"]),
            Route("/v1/outreach/{id}/release", api.guarded(act, api.release), methods=["POST"]),
            Route("/v1/offers/{code}", api.guarded(read, api.get_offer), methods=["GET"]),
            Route("/v1/offers/{code}/redeem", api.guarded(act, api.redeem), methods=["POST"]),
            Route("/metrics", api.metrics),
            Route("/healthz", healthz),
        ]
    )
