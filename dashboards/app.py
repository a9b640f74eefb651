"""The dashboards' web app: the admin pages behind a login, the live feed, static files, and the student page.

``create_app(settings, clock=...)`` wires the parts; the pages themselves are in ``dashboards.pages``, the login
in ``dashboards.auth``, the data in ``dashboards.data``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from access.keys import KeyRing
from config.settings import Settings
from dashboards import session as cookies
from dashboards.auth import REASONS, Gate, form
from dashboards.data import LiveFeed, Services, Warehouse
from dashboards.pages import AdminPages
from dashboards.student import student_app

Clock = Callable[[], datetime]
STATIC = Path(__file__).parent / "static"


def _now() -> datetime:
    return datetime.now(UTC)


def environment() -> Environment:
    return Environment(loader=PackageLoader("dashboards", "templates"), autoescape=select_autoescape(default=True))


def create_app(settings: Settings, *, clock: Clock = _now, database: str | None = None) -> Starlette:
    """The app ``engage dashboards serve`` runs. ``database``: another ClickHouse database than the settings'
    (the benchmark's and tests' throwaway ones)."""
    env = environment()
    secret = cookies.load_secret(settings.dashboards_secret)
    gate = Gate(KeyRing.from_settings(settings), secret, clock, settings.dashboards_session_hours)
    warehouse = Warehouse(settings, database)
    services = Services(settings)
    feed = LiveFeed(warehouse, clock, settings.dashboards_poll_seconds)
    admin = AdminPages(env, warehouse, services, feed, clock, settings.experiments_path, settings.model_registry)
    secure = settings.dashboards_url.startswith("https://")

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def home(request: Request) -> Response:
        return RedirectResponse("/admin", status_code=303)

    async def login_page(request: Request) -> Response:
        reason = REASONS.get(request.query_params.get("reason", ""), "")
        return admin.render(request, "login.html", None, active="", notice=reason, error="")

    async def login(request: Request) -> Response:
        try:
            fields = await form(request)
        except ValueError as exc:
            return admin.render(request, "login.html", None, 400, active="", notice="", error=str(exc))
        outcome = gate.login(fields.get("key", ""))
        if isinstance(outcome, str):
            return admin.render(request, "login.html", None, 401, active="", notice="", error=outcome)
        token, found = outcome
        answer = RedirectResponse("/admin", status_code=303)
        answer.set_cookie(
            cookies.COOKIE,
            token,
            max_age=int((found.expires_at - clock()).total_seconds()),
            path="/",
            httponly=True,
            samesite="strict",
            secure=secure,
        )
        return answer

    async def logout(request: Request) -> Response:
        answer = RedirectResponse("/login?reason=logout", status_code=303)
        answer.delete_cookie(cookies.COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    async def live(request: Request, session: cookies.Session) -> Response:
        """Server-sent events: the overview's numbers every poll interval (the feed reads ClickHouse once for all)."""

        async def events() -> AsyncIterator[str]:
            yield f"retry: {int(settings.dashboards_poll_seconds * 1000)}\n\n"
            while True:
                snapshot = await feed.latest()
                yield f"data: {json.dumps(snapshot.as_json())}\n\n"
                if await request.is_disconnected():
                    return
                await asyncio.sleep(settings.dashboards_poll_seconds)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/", home),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/admin", gate.required(admin.overview)),
        Route("/admin/live", gate.required(live)),
        Route("/admin/at-risk", gate.required(admin.at_risk)),
        Route("/admin/students/{user_id}", gate.required(admin.student)),
        Route("/admin/students/{user_id}/{action:str}", gate.required(admin.act), methods=["POST"]),
        Route("/admin/outreach/{item_id}", gate.required(admin.outreach)),
        Route("/admin/effectiveness", gate.required(admin.effectiveness)),
        Route("/admin/cohorts", gate.required(admin.cohorts)),
        Route("/admin/predictions", gate.required(admin.predictions)),
        Route("/admin/experiments", gate.required(admin.experiments)),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    routes.append(Mount("/s", app=student_app(settings, clock=clock)))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await services.aclose()

    return Starlette(routes=routes, lifespan=lifespan)
