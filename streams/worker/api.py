"""The live engagement API, served by every worker on its Faust web server.

Any worker answers for any student: a request for a student whose partition another worker owns is forwarded
there (method, headers and body), so clients can talk to one address behind a load balancer. Only server and
admin keys are accepted; the collector's write keys are refused (403). ``GET /v1/admin/keys`` (admin keys
only) lists the keys by public id. Keys come from ``access.keys.KeyRing``: revocations apply within seconds.
The in-app inbox (``GET /v1/users/{id}/inbox``, mark read) is ``streams.worker.inbox_api``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from aiohttp import web
from aiohttp.typedefs import Handler
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import ValidationError
from yarl import URL

from access.auth import bearer_key
from access.keys import KeyRing
from config.settings import Settings
from processors.gamification.badges import BadgeIssuer, badges_view
from processors.gamification.views import game_view
from processors.pipeline import UserRecord
from processors.signals import snapshot
from schemas.interventions import InterventionRequest, InterventionType
from streams.admission import Admission
from streams.erasure import erasure_status, request_erasure
from streams.worker.core.engine import WorkerCore
from streams.worker.inbox_api import InboxApi
from streams.worker.leaderboard_positions import Ranks
from streams.worker.profile_api import profile_view

log = logging.getLogger(__name__)

REFUSED = Counter("engage_api_refused_requests_total", "Engagement API requests refused for overload", ["status"])


def admission_middleware(settings: Settings, keys: KeyRing) -> Any:
    """Overload is answered, not suffered: per key over ``worker_api_rate_per_key`` gets 429, more than
    ``worker_api_max_in_progress`` requests at once get 503, both with ``Retry-After`` (``streams.admission``).
    Requests without a known key go on to be refused 401 by the view."""
    admission = Admission(
        rate_per_key=settings.worker_api_rate_per_key,
        max_in_progress=settings.worker_api_max_in_progress,
        service="this worker's API",
    )

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)  # health and metrics are never refused
        principal = keys.lookup(bearer_key(request.headers.get("Authorization")))
        refusal = admission.admit(principal.app_id if principal else "", time.monotonic())
        if refusal is not None:
            REFUSED.labels(str(refusal.status)).inc()
            return web.json_response(
                {"error": refusal.error, "detail": refusal.detail, "retry_after_seconds": refusal.retry_after},
                status=refusal.status,
                headers={"Retry-After": str(refusal.retry_after)},
            )
        try:
            return await handler(request)
        finally:
            admission.done()

    return admit


def register_views(app: faust.App, worker: WorkerCore, settings: Settings, keys: KeyRing, table_name: str) -> None:
    """The API's pages on ``app``'s web server, answering from ``worker`` (the core: records, re-scores, outputs);
    ``keys``: settings' keys + the key registry, re-read when it changes; ``table_name``: the record table's,
    whose partitions say which worker owns a student."""
    s = settings
    ranks = Ranks(s.leaderboards_base, s.leaderboard_timeout_seconds)

    def refuse(view: View, request: Request, action: str) -> Response | None:
        principal = keys.lookup(bearer_key(request.headers.get("Authorization")))
        if principal is None:
            return view.json({"error": "unauthorized", "detail": "a server key is required"}, status=401)
        if not principal.may(action):
            return view.json({"error": "forbidden", "detail": f"this key may not {action}"}, status=403)
        return None

    async def forward(view: View, request: Request, user_id: str) -> Response | None:
        """Forward to the worker owning the student's partition; None when that is this worker."""
        try:
            dest = app.router.key_store(table_name, user_id.encode())
        except (KeyError, TypeError):  # no assignment yet, or no metadata for the changelog topic yet
            return view.json(
                {"error": "unavailable", "detail": "partitions are being assigned; retry", "retry_after_seconds": 1},
                status=503,
                headers={"Retry-After": "1"},
            )
        if (dest.host, dest.port) == (URL(app.conf.canonical_url).host, URL(app.conf.canonical_url).port):
            return None
        body = await request.read()
        url = request.url.with_host(str(dest.host)).with_port(dest.port)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with app.http_client.request(request.method, url, headers=headers, data=body) as resp:
            return view.bytes(await resp.read(), content_type=resp.content_type, status=resp.status)

    async def read_student(view: View, request: Request, user_id: str) -> UserRecord | Response:
        """The record of a student this worker owns, or the answer instead: 401/403 without a read key, the owning
        worker's answer (forwarded), 404 for a student with no events."""
        if (refused := refuse(view, request, "read")) is not None:
            return refused
        if (forwarded := await forward(view, request, user_id)) is not None:
            return forwarded
        record = worker.record(user_id)
        if record is None:
            return view.json({"error": "not_found", "detail": f"no events seen for {user_id!r}"}, status=404)
        return record

    def engagement(user_id: str, record: UserRecord) -> dict[str, Any]:
        snap = snapshot(record.state, worker.now(), worker.courses.calendars())
        return {
            "user_id": user_id,
            "risk": record.last_assessment,
            "tier": record.tier,
            "scored_at": datetime.fromtimestamp(record.scored_at, UTC).isoformat() if record.scored_at else None,
            "signals": snap.model_dump(mode="json"),
            "streak": {
                "current_days": snap.current_streak_days,
                "longest_days": snap.longest_streak_days,
                "freezes_held": snap.streak_freezes_held,
                "freezes_used": snap.streak_freezes_used,
                "broken_recently": snap.streak_broken_recently,
            },
            "last_intervention": record.last_intervention,
            "gamification": game_view(record.game, worker.rules.current()) if worker.rules is not None else None,
        }

    @app.page("/v1/users/{user_id}/engagement")
    class Engagement(View):
        async def get(self, request: Request, user_id: str) -> Response:
            record = await read_student(self, request, user_id)
            if not isinstance(record, UserRecord):
                return record
            body = engagement(user_id, record)
            if body["gamification"] is not None:
                authorization = request.headers.get("Authorization")
                boards, league = await ranks.both(app.http_client, user_id, record.game.courses_by_xp(), authorization)
                body["gamification"]["leaderboards"], body["gamification"]["league"] = boards, league
            return self.json(body)

    @app.page("/v1/users/{user_id}/profile")
    class StudentProfile(View):
        """The student's personalisation profile, each value with its evidence (``streams.worker.profile_api``)."""

        async def get(self, request: Request, user_id: str) -> Response:
            record = await read_student(self, request, user_id)
            if not isinstance(record, UserRecord):
                return record
            return self.json(profile_view(worker, user_id, record))

    issuer = BadgeIssuer(s.badges_issuer_id, s.badges_issuer_name, s.badges_identity_salt)

    @app.page("/v1/users/{user_id}/badges")
    class Badges(View):
        """The student's achievements as unsigned Open Badges 3.0 credentials (``processors.gamification.badges``)."""

        async def get(self, request: Request, user_id: str) -> Response:
            record, rules = await read_student(self, request, user_id), worker.rules
            if not isinstance(record, UserRecord):
                return record
            if rules is None:
                return self.json({"error": "not_found", "detail": "gamification is off"}, status=404)
            return self.json(badges_view(user_id, record.game.unlocked, rules.current(), issuer))

    @app.page("/v1/users/{user_id}")
    class Student(View):
        async def delete(self, request: Request, user_id: str) -> Response:
            """Erase the student everywhere (admin keys): the request is sent and answered with its id; the worker
            owning the student erases its state, the sinks service the warehouse rows (``streams.erasure``);
            ``GET /v1/erasures/{id}`` tells when it is complete."""
            if (refused := refuse(self, request, "admin")) is not None:
                return refused
            loop = asyncio.get_running_loop()
            try:
                sent = await loop.run_in_executor(None, request_erasure, s, user_id, "api")
            except ValidationError as exc:
                return self.json({"error": "invalid", "detail": str(exc.errors()[0]["msg"])}, status=400)
            return self.json({"erasure_id": sent.erasure_id, "status": "in_progress"}, status=202)

    @app.page("/v1/erasures/{erasure_id}")
    class Erasure(View):
        async def get(self, request: Request, erasure_id: str) -> Response:
            """The sinks service's report on the erasure (any worker answers): in_progress, complete, failed: ..."""
            if (refused := refuse(self, request, "admin")) is not None:
                return refused
            status = await asyncio.get_running_loop().run_in_executor(None, erasure_status, s, erasure_id)
            if status is None:
                return self.json({"error": "not_found", "detail": "no erasure with that id"}, status=404)
            return self.json({"erasure_id": erasure_id, "status": status})

    @app.page("/v1/users/{user_id}/recalculate")
    class Recalculate(View):
        async def post(self, request: Request, user_id: str) -> Response:
            if (refused := refuse(self, request, "act")) is not None:
                return refused
            if (forwarded := await forward(self, request, user_id)) is not None:
                return forwarded
            outcome = await worker.score_now(user_id)
            if outcome is None:
                return self.json({"error": "not_found", "detail": f"no events seen for {user_id!r}"}, status=404)
            return self.json(
                {"risk_update": outcome.update.model_dump(mode="json"), "intervention": outcome.decision.outcome}
            )

    @app.page("/v1/users/{user_id}/interventions")
    class TriggerIntervention(View):
        async def post(self, request: Request, user_id: str) -> Response:
            if (refused := refuse(self, request, "act")) is not None:
                return refused
            if (forwarded := await forward(self, request, user_id)) is not None:
                return forwarded
            try:
                body = await request.json()
                kind = InterventionType(body["intervention_type"])
                reason = str(body.get("reason") or "triggered by hand")
            except (ValueError, KeyError, TypeError):
                names = ", ".join(t.value for t in InterventionType)
                return self.json(
                    {"error": "bad_request", "detail": f"intervention_type must be one of {names}"}, status=400
                )
            async with worker.lock:
                record = worker.record(user_id)
                if record is None:
                    return self.json({"error": "not_found", "detail": f"no events seen for {user_id!r}"}, status=404)
                return await self._trigger(user_id, record, kind, reason)

        async def _trigger(self, user_id: str, record: UserRecord, kind: InterventionType, reason: str) -> Response:
            now = datetime.now(UTC)
            tier = record.tier or "minimal"
            request_msg = InterventionRequest(
                intervention_id=f"{user_id}:manual:{kind.value}:{int(now.timestamp())}",
                user_id=user_id,
                created_at=now,
                status="send",
                tier=tier,
                intervention_type=kind,
                channels=list(worker.policy.tiers[tier].channels) if tier in worker.policy.tiers else [],
                reason=reason,
                deadline=now + timedelta(hours=4),
                risk_7d=float((record.last_assessment or {}).get("risk_7d", 0.0)),
                model_version="manual",
                triggered_by_event_time=now,
                **worker.request_context(record, now),
            )
            record.last_intervention = request_msg.model_dump(mode="json")
            worker.store(user_id, record)
            worker.outputs.send_encoded(
                user_id.encode(), request_msg.model_dump_json().encode(), topic=worker.topics.interventions.name
            )
            await worker.outputs_acknowledged()
            return self.json({"intervention": record.last_intervention}, status=201)

    inbox = InboxApi.for_settings(s, worker.outputs, worker.topics, worker.outputs_acknowledged)

    @app.page("/v1/users/{user_id}/inbox")
    class Inbox(View):
        """The student's in-app messages, newest first, and how many are unread (``streams.worker.inbox_api``)."""

        async def get(self, request: Request, user_id: str) -> Response:
            if (refused := refuse(self, request, "read")) is not None:
                return refused
            status, body = await inbox.inbox(user_id, dict(request.query))
            return self.json(body, status=status)

    @app.page("/v1/users/{user_id}/inbox/{item_id}/read")
    class InboxRead(View):
        async def post(self, request: Request, user_id: str, item_id: str) -> Response:
            if (refused := refuse(self, request, "act")) is not None:
                return refused
            status, body = await inbox.mark_read(user_id, item_id, dict(request.query))
            return self.json(body, status=status)

    @app.page("/v1/admin/keys")
    class AdminKeys(View):
        """Every key in force or refused, by public id (admin keys only; never a key or its digest)."""

        async def get(self, request: Request) -> Response:
            if (refused := refuse(self, request, "admin")) is not None:
                return refused
            now = datetime.now(UTC)
            return self.json({"keys": [record.public(now) for record in keys.records()]})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})
