"""Stands in for the student page at /s until ``dashboards.student`` is merged: every path answers 404."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def _student_placeholder() -> Starlette:
    async def not_here(request: Request) -> Response:
        return PlainTextResponse("the student page is not installed", status_code=404)

    return Starlette(routes=[Route("/{rest:path}", not_here)])
