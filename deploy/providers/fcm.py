"""FCM HTTP v1's send endpoint: ``POST /v1/projects/{project}/messages:send`` with ``Authorization: Bearer``.

Accepted: ``200 {"name": "projects/{project}/messages/{id}"}``. Refused with the documented error body
``{"error": {"code", "message", "status", "details": [{"@type": "...FcmError", "errorCode": ...}]}}``: 401
UNAUTHENTICATED without the expected bearer token, 404 NOT_FOUND for another project, scripted answers per device
token (``answers[token]``), and injected faults: 429 QUOTA_EXCEEDED / 503 UNAVAILABLE with ``Retry-After``, as FCM
documents for exceeded quotas and overload.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from deploy.providers.faults import Faults, Provider
from deploy.providers.http import Answer, HttpServer, next_scripted
from deploy.providers.record import Accepted, AcceptedLog

_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def fcm_error(code: int, status: str, error_code: str | None, message: str, **extra: Any) -> dict[str, Any]:
    """An FCM HTTP v1 error body as the API documents it (``more_details``: further ``details`` entries)."""
    details: list[dict[str, Any]] = []
    if error_code is not None:
        details.append({"@type": _FCM_ERROR_TYPE, "errorCode": error_code})
    details.extend(extra.pop("more_details", []))
    return {"error": {"code": code, "message": message, "status": status, "details": details}}


def _injected(status: int) -> dict[str, Any]:
    if status == 429:
        return fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Sending limit exceeded for the message target.")
    return fcm_error(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")


class FcmServer(HttpServer):
    """The FCM send endpoint for one ``project``, requiring ``access_token``. ``answers[token]``: answers given in
    turn (the last one repeats); tokens without a script are accepted."""

    provider: Provider = "fcm"

    def __init__(
        self,
        project: str = "engage-test",
        access_token: str = "ya29.test-token",
        *,
        port: int = 0,
        record: AcceptedLog | None = None,
        faults: Faults | None = None,
    ) -> None:
        super().__init__(port=port, record=record, faults=faults)
        self.project = project
        self.access_token = access_token
        self.answers: dict[str, list[Answer]] = {}
        self._ids = itertools.count(1)
        self._instance = uuid.uuid4().hex[:12]  # message names stay unique across restarts of the process

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)

    async def _send(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        self.requests.append({"path": request.path, "headers": dict(request.headers), "json": body})
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            message = "Request had invalid authentication credentials. Expected OAuth 2 access token."
            return web.json_response(fcm_error(401, "UNAUTHENTICATED", None, message), status=401)
        if request.match_info["project"] != self.project:
            return web.json_response(fcm_error(404, "NOT_FOUND", None, "Requested entity was not found."), status=404)
        message_json = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message_json, dict) or not isinstance(message_json.get("token"), str):
            invalid = fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received.")
            return web.json_response(invalid, status=400)
        token: str = message_json["token"]
        scripted = next_scripted(self.answers, token)
        if scripted is not None:
            return await scripted.response()
        fault = await self.fault()
        if fault is not None:
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return web.json_response(_injected(fault.status), status=fault.status, headers=headers)
        name = f"projects/{self.project}/messages/0:{next(self._ids)}%{self._instance}"
        if self.record is not None:
            notification = message_json.get("notification") or {}
            data = message_json.get("data") or {}
            self.record.append(
                Accepted(
                    provider="fcm",
                    id=uuid.uuid4().hex,
                    provider_id=name,
                    to=token,
                    accepted_at=datetime.now(UTC),
                    intervention_id=_text(data.get("intervention_id")) if isinstance(data, dict) else None,
                    subject=_text(notification.get("title")) if isinstance(notification, dict) else None,
                    body=_text(notification.get("body")) if isinstance(notification, dict) else None,
                )
            )
        return web.json_response({"name": name})


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
