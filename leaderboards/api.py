"""The leaderboard API (Starlette), for the engagement API and the student page.

Keys as everywhere (``access``): ``Authorization: Bearer <key>`` with ``read`` (server and admin keys).

======================================================================  ============================================
``GET /v1/leaderboards/{board}/{period}?limit=N``                        the top N (default and cap in the settings)
``GET /v1/leaderboards/{board}/{period}/users/{user_id}?neighbours=k``  the student's rank, XP and k either side
``GET /v1/leagues/users/{user_id}?neighbours=k``                         the student's league this week (below)
``GET /metrics``, ``/healthz`` (alive), ``/readyz`` (rebuilt: 503 until then)
======================================================================  ============================================

``board``: ``global`` or ``course:<course id>``; ``period``: ``all``, ``today``, ``yesterday``, ``this-week``,
``last-week`` (UTC, from the service's clock), a UTC date ``2026-12-05`` or an ISO week ``2026-W49``. Ranks as in
``leaderboards.boards`` (competition ranks, ties by user id). 404 names what is unknown (the board, a period no
longer kept, a student not on the board); 503 while the boards are being rebuilt.

Reads take the boards' lock on the event loop itself: a read is tens of microseconds, and the consumer holds the
lock for one batch at most, which is cheaper than a hop to a thread pool per request.

The league answer (``leaderboards.leagues.LeagueBook.view``): ``week`` (this ISO week, UTC), ``tier``, ``days_left``,
``ends_at``, ``closes_at``, ``last_result``, and ``placed``: false until the student earns XP this week; once true,
``group_id``, ``rank`` in the group, ``week_xp``, ``zone`` (promotion / safe / demotion if the week closed now),
``promoted`` / ``demoted`` (how many of this group move), the group's ``standings`` and ``neighbours`` rows either
side (``above``, ``below``). Any user id is answered: one the service never saw is a new student (lowest tier).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from access.auth import bearer_key
from access.keys import KeyRing
from config.settings import Settings
from leaderboards import metrics
from leaderboards.boards import Entry, NotOnBoard, UnknownBoard, resolve_period
from leaderboards.service import Held

Clock = Callable[[], datetime]
Handler = Callable[[Request], Awaitable[Response]]
_OUTCOME = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 503: "unavailable"}


class _BadRequest(ValueError):
    pass


def _json(status: int, body: Any) -> Response:
    metrics.API_REQUESTS.labels(_OUTCOME.get(status, "ok")).inc()
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _problem(status: int, error: str, detail: str) -> Response:
    return _json(status, {"error": error, "detail": detail})


def _rows(entries: list[Entry]) -> list[dict[str, Any]]:
    return [{"rank": e.rank, "user_id": e.user_id, "xp": e.xp} for e in entries]


def _bounded(request: Request, name: str, default: int, highest: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or not 0 <= int(text) <= highest:
        raise _BadRequest(f"{name} must be a whole number from 0 to {highest}; got {text!r}")
    return int(text)


class LeaderboardApi:
    def __init__(self, settings: Settings, held: Held, clock: Clock) -> None:
        self.settings, self.held, self.clock = settings, held, clock
        self.keys = KeyRing.from_settings(settings)

    def guarded(self, endpoint_name: str, handler: Handler) -> Handler:
        """The key check, readiness, the errors as answers and the latency histogram around one endpoint."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                principal = self.keys.lookup(bearer_key(request.headers.get("authorization")))
                if principal is None:
                    return _problem(401, "unauthorized", "a valid server key is required (Authorization: Bearer <key>)")
                if not principal.may("read"):
                    return _problem(403, "forbidden", "this key may not read (a server or admin key may)")
                if not self.held.ready.is_set():
                    return _problem(503, "rebuilding", f"the boards are being rebuilt from the standings topic "
                                    f"({self.held.read_at_start:,} standings read so far)")  # fmt: skip
                try:
                    return await handler(request)
                except _BadRequest as exc:
                    return _problem(400, "bad_request", str(exc))
                except (UnknownBoard, NotOnBoard) as exc:
                    return _problem(404, "not_found", str(exc.args[0]))
            finally:
                metrics.REQUEST_SECONDS.labels(endpoint_name).observe(time.perf_counter() - started)

        return endpoint

    def _period(self, request: Request) -> str:
        try:
            return resolve_period(request.path_params["period"], self.clock().date())
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None

    async def top(self, request: Request) -> Response:
        limit = _bounded(request, "limit", self.settings.leaderboard_default_limit, self.settings.leaderboard_max_limit)
        scope, period = request.path_params["board"], self._period(request)
        with self.held.lock:
            board = self.held.boards.lookup(scope, period)
            rows, students = board.top(limit), len(board)
        return _json(200, {"board": scope, "period": period, "students": students, "rows": _rows(rows)})

    async def position(self, request: Request) -> Response:
        k = _bounded(request, "neighbours", 5, self.settings.leaderboard_max_neighbours)
        scope, period, user = request.path_params["board"], self._period(request), request.path_params["user_id"]
        with self.held.lock:
            board = self.held.boards.lookup(scope, period)
            try:
                pos = board.position(user, k)
            except NotOnBoard:
                known = self.held.boards.seq(user) is not None
                raise NotOnBoard(
                    f"student {user!r} has no XP on {scope} {period}"
                    if known
                    else f"no standing for student {user!r}: they have not earned XP yet"
                ) from None
        return _json(
            200,
            {"board": scope, "period": period, "user_id": user, "rank": pos.rank, "xp": pos.xp,
             "students": pos.students, "above": _rows(pos.above), "below": _rows(pos.below)},
        )  # fmt: skip

    async def league(self, request: Request) -> Response:
        k = _bounded(request, "neighbours", 3, self.settings.leaderboard_max_neighbours)
        user = request.path_params["user_id"]
        with self.held.lock:
            body = self.held.leagues.view(user, self.clock(), k)
        return _json(200, body)

    async def metrics(self, request: Request) -> Response:
        self.held.refresh_gauges()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def readyz(self, request: Request) -> Response:
        if self.held.ready.is_set():
            return Response(b'{"status":"ready"}', media_type="application/json")
        body = {"status": "rebuilding", "read": self.held.read_at_start}
        return Response(orjson.dumps(body), status_code=503, media_type="application/json")


def create_app(settings: Settings, held: Held, clock: Clock) -> Starlette:
    api = LeaderboardApi(settings, held, clock)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/leaderboards/{board}/{period}", api.guarded("top", api.top), methods=["GET"]),
            Route(
                "/v1/leaderboards/{board}/{period}/users/{user_id}",
                api.guarded("position", api.position),
                methods=["GET"],
            ),
            Route("/v1/leagues/users/{user_id}", api.guarded("league", api.league), methods=["GET"]),
            Route("/metrics", api.metrics),
            Route("/healthz", healthz),
            Route("/readyz", api.readyz),
        ]
    )
