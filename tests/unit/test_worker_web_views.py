"""The worker's web server mounts only the app's own pages: none of Faust's views (tables, router, stats)."""

from __future__ import annotations

import asyncio

import faust
import pytest
from faust.web import Request, Response, View

from streams.worker.faust_internals import serve_only_our_views


def _mounted(app: faust.App) -> set[str]:
    """The paths the web server answers once started (the aiohttp driver's routes after ``init_server``)."""

    async def init() -> set[str]:
        app.web.init_server()
        return {resource.canonical for resource in app.web.web_app.router.resources()}  # type: ignore[attr-defined]

    return asyncio.run(init())


def _app(name: str, **options: object) -> faust.App:
    """An app with one page of its own, every Faust view switched on that a setting can switch on."""
    app = faust.App(name, broker="kafka://127.0.0.1:1", debug=True, web_metrics_enabled=True, **options)
    app.Table("records", default=None, key_type=bytes, value_type=bytes)

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    return app


def test_only_the_apps_own_pages_are_mounted() -> None:
    app = _app("web-views-ours")
    serve_only_our_views(app)
    assert _mounted(app) == {"/healthz"}


def test_a_faust_environment_variable_does_not_bring_the_tables_back() -> None:
    """Faust's environment variables override what the app passes: the patch does not rest on any setting."""
    app = _app("web-views-env", web_tables_enabled=False, env={"APP_WEB_TABLES_ENABLED": "true"})
    assert app.conf.web_tables_enabled  # the variable won over the argument
    serve_only_our_views(app)
    assert _mounted(app) == {"/healthz"}


def test_without_it_faust_serves_every_record_and_its_own_pages() -> None:
    """The reason for the patch: if Faust ever stops mounting these by default, this says it may go."""
    app = _app("web-views-faust")
    mounted = _mounted(app)
    assert {"/table/{name}/{key}/", "/router/{name}/{key}/", "/", "/graph/", "/performance/"} <= mounted
    assert "/healthz" in mounted


def test_it_refuses_once_the_views_are_mounted() -> None:
    app = _app("web-views-late")
    _mounted(app)
    with pytest.raises(RuntimeError, match="mounted already"):
        serve_only_our_views(app)
