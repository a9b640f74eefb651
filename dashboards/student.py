"""The student page: ``GET /s/{token}`` (and ``/s/{token}/users/{user_id}``), opened from a signed, expiring link.

The token (``dashboards.signing``; payload ``{"sub": user_id, "aud": "student"}``) is the only credential: a
student sees themself and nobody else (another id -> 403). Everything shown is read here, server-side, with the
server key: the engagement API (engagement, profile, inbox), the leaderboard service (rank with neighbours) and
two named queries in the warehouse (the week's activity, progress per course). Each panel stands alone: an
upstream that is down shows its error in that panel and the rest of the page renders. The handlers only fetch;
``dashboards.student_view`` decides what is shown.

Answers are ``no-store`` and ``no-referrer``: the token is in the URL, and must not end up in a cache or in the
Referer header of a link the student follows from their inbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from access.auth import parse_pair
from analytics.runner import run
from config.settings import Settings
from dashboards.signing import TokenError, TokenExpired, load_secret, sign, verify
from dashboards.student_view import StudentPage, Unavailable, student_page
from sinks.clickhouse.client import connect

Clock = Callable[[], datetime]
HERE = Path(__file__).resolve().parent
AUDIENCE = "student"  # tokens signed for another purpose (the admin session) never open a student page
NEIGHBOURS = 2
BOARD_PERIODS = ("this-week", "all")  # this week's board first; the all-time one for a student with no XP this week

PAGES = Counter("engage_student_pages_total", "Student page requests, by outcome", ["outcome"])
UPSTREAM_ERRORS = Counter(
    "engage_student_upstream_errors_total", "Student page panels an upstream could not fill", ["upstream"]
)
for _outcome in ("ok", "expired", "invalid", "forbidden", "not_found"):
    PAGES.labels(_outcome)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def student_link(settings: Settings, user_id: str, *, hours: float | None = None, now: datetime | None = None) -> str:
    """The URL of ``user_id``'s page, valid for ``hours`` (default ``student_link_hours``) from ``now``."""
    if not user_id or user_id != user_id.strip():
        raise ValueError("a student id must not be empty or start or end with spaces")
    lifetime = timedelta(hours=settings.student_link_hours if hours is None else hours)
    if lifetime <= timedelta(0):
        raise ValueError("a link must be valid for a positive number of hours")
    expires_at = (now or _utc_now()) + lifetime
    token = sign({"sub": user_id, "aud": AUDIENCE}, load_secret(settings.dashboards_secret), expires_at)
    return f"{settings.dashboards_url}/s/{token}"


def _subject(token: str, secret: bytes, now: datetime) -> str:
    payload = verify(token, secret, now)
    sub = payload.get("sub")
    if payload.get("aud") != AUDIENCE or not isinstance(sub, str) or not sub:
        raise TokenError("this link is not a student dashboard link")
    return sub


class Upstreams:
    """The reads behind one page, each turned into its JSON or an ``Unavailable`` saying what failed."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings, self.client = settings, client
        self.headers = {"Authorization": f"Bearer {parse_pair(settings.server_keys[0])[1]}"}

    async def _get(self, upstream: str, url: str, not_found: Any = None) -> Any:
        """The JSON answer; ``not_found`` for a 404 when given (else an error); an ``Unavailable`` otherwise."""
        try:
            resp = await self.client.get(url, headers=self.headers)
        except httpx.HTTPError as exc:
            UPSTREAM_ERRORS.labels(upstream).inc()
            return Unavailable(f"the {upstream} service cannot be reached right now ({type(exc).__name__})")
        if resp.status_code == 404 and not_found is not None:
            return not_found
        if resp.status_code != 200:
            UPSTREAM_ERRORS.labels(upstream).inc()
            try:
                detail = str(resp.json().get("detail") or resp.reason_phrase)
            except ValueError:
                detail = resp.reason_phrase
            return Unavailable(f"the {upstream} service answered {resp.status_code}: {detail}")
        return resp.json()

    async def worker(self, user_id: str, what: str, not_found: Any = None) -> Any:
        url = f"{self.settings.worker_base}/v1/users/{quote(user_id, safe='')}/{what}"
        return await self._get("engagement", url, not_found)

    async def position(self, user_id: str) -> tuple[str, dict[str, Any]] | Unavailable | None:
        """(period, the student's position) on the first board of ``BOARD_PERIODS`` they are on; None: none."""
        missing = object()
        for period in BOARD_PERIODS:
            url = f"{self.settings.leaderboards_base}/v1/leaderboards/global/{period}/users/{quote(user_id, safe='')}"
            answer = await self._get("leaderboard", f"{url}?neighbours={NEIGHBOURS}", not_found=missing)
            if answer is missing:
                continue
            return answer if isinstance(answer, Unavailable) else (period, answer)
        return None

    async def query(self, name: str, params: dict[str, str]) -> list[dict[str, Any]] | Unavailable:
        """A named query's rows (``analytics/queries``), run in a thread: the ClickHouse driver blocks."""
        s = self.settings

        def fetch() -> list[dict[str, Any]]:
            client = connect(s, s.clickhouse_database)
            try:
                return run(client, name, params).records()
            finally:
                client.disconnect()

        try:
            return await asyncio.to_thread(fetch)
        except Exception as exc:  # any driver or server error costs this panel only
            UPSTREAM_ERRORS.labels("warehouse").inc()
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Unavailable(f"the warehouse query {name} failed ({type(exc).__name__}: {first_line[:200]})")


def student_app(settings: Settings, *, clock: Clock | None = None) -> Starlette:
    """The student part of the dashboards, mounted at ``/s`` by ``dashboards.app`` (and usable alone)."""
    now: Clock = clock or _utc_now
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), trim_blocks=True
    )
    headers = {
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'none'",
    }

    def html(request: Request, template: str, code: int, **context: Any) -> HTMLResponse:
        body = env.get_template(f"student/{template}").render(root=request.scope.get("root_path", ""), **context)
        return HTMLResponse(body, status_code=code, headers=headers)

    def problem(request: Request, status: int, outcome: str, title: str, message: str) -> HTMLResponse:
        PAGES.labels(outcome).inc()
        return html(request, "error.html", status, status=status, title=title, message=message)

    async def render(request: Request, token: str, asked: str | None) -> Response:
        try:
            user_id = _subject(token, load_secret(settings.dashboards_secret), now())
        except TokenExpired as exc:
            return problem(request, 401, "expired", "This link has expired", f"{str(exc).capitalize()}.")
        except TokenError as exc:
            return problem(request, 401, "invalid", "This link is not valid", f"{str(exc).capitalize()}.")
        if asked is not None and asked != user_id:
            message = "This link opens your own dashboard only; it cannot show another student's."
            return problem(request, 403, "forbidden", "Not your dashboard", message)
        page = await _gather(settings, user_id, now())
        if page is None:
            message = "We have not seen any activity from you yet. Open a lesson, then come back here."
            return problem(request, 404, "not_found", "No activity yet", message)
        PAGES.labels("ok").inc()
        return html(request, "page.html", 200, page=page, is_unavailable=lambda v: isinstance(v, Unavailable))

    async def own_page(request: Request) -> Response:
        return await render(request, request.path_params["token"], None)

    async def named_page(request: Request) -> Response:
        return await render(request, request.path_params["token"], request.path_params["user_id"])

    return Starlette(
        routes=[
            Mount("/static", StaticFiles(directory=HERE / "static"), name="student-static"),
            Route("/{token}", own_page, methods=["GET"]),
            Route("/{token}/users/{user_id}", named_page, methods=["GET"]),
        ]
    )


async def _gather(settings: Settings, user_id: str, at: datetime) -> StudentPage | None:
    """Every upstream read at once; None when the engagement API does not know the student."""
    gone = object()
    async with httpx.AsyncClient(timeout=settings.dashboards_upstream_timeout_seconds) as client:
        up = Upstreams(settings, client)
        engagement, profile, inbox, position, courses, activity = await asyncio.gather(
            up.worker(user_id, "engagement", not_found=gone),
            up.worker(user_id, "profile"),
            up.worker(user_id, "inbox"),
            up.position(user_id),
            up.query("student_course_progress", {"user_id": user_id}),
            up.query("student_week_activity", {"user_id": user_id, "as_of": at.astimezone(UTC).date().isoformat()}),
        )
    if engagement is gone:
        return None
    return student_page(user_id, engagement, profile, position, courses, activity, inbox, at)
