"""The admin dashboard on a real ClickHouse (and a real worker for the actions), over HTTP: the login guards every
page, the overview shows what the warehouse holds and streams it live, the at-risk list pages and sorts in the
database, recalculating a student changes what the page shows, and a failing query breaks only its own panel."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from dashboards import session as cookies
from dashboards import signing
from dashboards.server import running
from deploy.infra import Infra
from deploy.process import free_port
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import migrate
from tests.analytics.conftest import RISK, Warehouse, event, risk
from tests.integration.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
ADMIN_KEY = "ak_demo_admin"
STUDENTS = 120  # risk 0.0, 0.8, ... : more than two pages of 50


@dataclass
class Site:
    url: str
    settings: Settings
    database: str


def _warehouse(settings: Settings) -> Warehouse:
    database = f"dash_{uuid.uuid4().hex[:8]}"
    migrate(connect(settings), database)
    return Warehouse(connect(settings, database), database, "server-18.16")


def _load(w: Warehouse) -> None:
    """A small warehouse whose live numbers are known: see test_overview_numbers_are_the_warehouses."""
    at = lambda seconds: (NOW - timedelta(seconds=seconds)).isoformat()  # noqa: E731
    w.events(
        event("live-1", "2026-11-12") | {"event_time": at(20)},  # last minute
        event("live-1", "2026-11-12") | {"event_time": at(200)},  # now, not the last minute
        event("live-2", "2026-11-12") | {"event_time": at(45)},  # last minute
        event("live-3", "2026-11-12", hour=7),  # today
        event("live-4", "2026-11-09"),  # this week
        event("live-5", "2026-11-01"),  # before the week
    )
    w.contract(RISK, *(risk(f"r{i:03d}", "2026-11-12", round(i * 0.8, 1), hour=8) for i in range(STUDENTS)))


def _site(settings: Settings, tmp: Path, database: str, **overrides: Any) -> Any:
    s = settings.model_copy(
        update={"dashboards_port": free_port(), "dashboards_secret_path": tmp / "dash.key", "run_dir": tmp, **overrides}
    )
    return s, running(s, clock=lambda: NOW, database=database)


@pytest.fixture(scope="module")
def site(settings: Settings, infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    w = _warehouse(settings)
    _load(w)
    s, server = _site(settings, tmp_path_factory.mktemp("dash"), w.database)
    with server as url:
        yield Site(url, s, w.database)
    w.client.execute(f"DROP DATABASE IF EXISTS {w.database}")


def login(site: Site, key: str = ADMIN_KEY) -> httpx.Client:
    client = httpx.Client(base_url=site.url, timeout=30)
    answer = client.post("/login", data={"key": key})
    assert answer.status_code == 303 and answer.headers["location"] == "/admin", answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict") and "Path=/" in cookie
    return client


def value(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*data-value="([^"]*)"', html)
    assert found, f"#{element_id} with a data-value is not on the page"
    return found.group(1)


def test_every_admin_page_needs_a_login(site: Site) -> None:
    for path in ("/admin", "/admin/at-risk", "/admin/students/r001", "/admin/cohorts", "/admin/live"):
        answer = httpx.get(f"{site.url}{path}")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login"), path
    wrong = httpx.post(f"{site.url}/login", data={"key": "sk_not_a_key_at_all"})
    assert wrong.status_code == 401 and "That key is not valid" in wrong.text
    write = httpx.post(f"{site.url}/login", data={"key": "wk_demo_web"})
    assert write.status_code == 401 and "A write key cannot open the admin pages" in write.text
    assert httpx.get(f"{site.url}/healthz").status_code == 200


def test_a_tampered_or_expired_cookie_is_refused(site: Site) -> None:
    client = login(site)
    good = client.cookies[cookies.COOKIE]
    assert client.get("/admin").status_code == 200
    body, mac = good.split(".")
    forged = signing._b64(signing._unb64(body).replace(b'"role":"admin"', b'"role":"server"')) + "." + mac
    secret = cookies.load_secret(site.settings.dashboards_secret)
    expired, _ = cookies.issue("cfg_x", "demo-admin", "admin", secret, NOW - timedelta(hours=13), 12)
    for token, reason in ((forged, "invalid"), (expired, "expired"), (good[:-2] + "AA", "invalid")):
        answer = httpx.get(f"{site.url}/admin", cookies={cookies.COOKIE: token})
        assert answer.status_code == 303 and answer.headers["location"] == f"/login?reason={reason}"
        page = httpx.get(f"{site.url}{answer.headers['location']}")
        assert ("expired" if reason == "expired" else "not accepted") in page.text
    logged_out = client.post("/logout")
    assert logged_out.status_code == 303 and client.get("/admin").status_code == 303


def test_overview_numbers_are_the_warehouses(site: Site) -> None:
    page = login(site).get("/admin")
    assert page.status_code == 200
    # now (5 min): live-1, live-2; today: live-1..3; week: those and live-4; the last minute: 2 events
    got = {k: value(page.text, k) for k in ("active-now", "active-today", "active-week", "events-per-minute")}
    assert got == {"active-now": "2", "active-today": "3", "active-week": "4", "events-per-minute": "2"}
    assert 'id="tiers-chart"' in page.text and 'role="img"' in page.text
    for tier in ("critical", "high", "medium", "low", "minimal"):  # the legend names every tier in words
        assert re.search(rf'class="legend">{tier}: \d+', page.text), tier
    assert 'class="skip-link" href="#main"' in page.text and '<main id="main"' in page.text


def test_live_updates_arrive_as_server_sent_events(site: Site) -> None:
    client = login(site)
    started = time.monotonic()
    with client.stream("GET", "/admin/live", timeout=10) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                break
    assert time.monotonic() - started < 6
    import json

    data = json.loads(line[6:])
    assert (data["active_now"], data["active_today"], data["active_week"], data["events_per_minute"]) == (2, 3, 4, 2)
    assert sum(data["tiers"].values()) == STUDENTS


def rows(html: str) -> list[tuple[str, float]]:
    found = re.findall(r'<tr data-user="([^"]+)">.*?<td class="num" data-value="([^"]+)"', html, re.S)
    return [(u, float(r)) for u, r in found]


def test_the_at_risk_list_pages_and_sorts_in_the_database(site: Site) -> None:
    client = login(site)
    first, second = client.get("/admin/at-risk"), client.get("/admin/at-risk?page=2")
    one, two = rows(first.text), rows(second.text)
    assert len(one) == 50 and len(two) == 50 and not {u for u, _ in one} & {u for u, _ in two}
    risks = [r for _, r in one + two]
    assert risks == sorted(risks, reverse=True) and risks[0] == round((STUDENTS - 1) * 0.8, 1)
    assert 'id="page-info">page 1 of 3<' in first.text and 'rel="next"' in first.text
    assert 'rel="prev"' in second.text
    ascending = rows(client.get("/admin/at-risk?sort=risk&dir=asc&size=10").text)
    assert [u for u, _ in ascending] == [f"r{i:03d}" for i in range(10)]
    critical = rows(client.get("/admin/at-risk?tier=critical&size=200").text)
    assert critical and all(r >= 80 for _, r in critical) and len(critical) == sum(i * 0.8 >= 80 for i in range(120))
    bad = client.get("/admin/at-risk?sort=nonsense")
    assert bad.status_code == 400 and "sort must be one of risk, last_seen, user" in bad.text


def test_a_failing_query_breaks_only_its_panel(settings: Settings, site: Site, tmp_path: Path) -> None:
    w = _warehouse(settings)
    _load(w)
    w.client.execute(f"DROP TABLE {w.database}.user_daily_signals")
    _, server = _site(settings, tmp_path, w.database)
    try:
        with server as url:
            client = httpx.Client(base_url=url, timeout=30)
            assert client.post("/login", data={"key": ADMIN_KEY}).status_code == 303
            page = client.get("/admin")
            assert page.status_code == 200
            alert = re.search(r'<div class="panel-error" role="alert">(.*?)</div>', page.text, re.S)
            assert alert and "user_daily_signals" in alert.group(1)
            assert value(page.text, "active-today") == "3"  # the live numbers still render
            student = client.get("/admin/students/r010")
            assert (
                student.status_code == 200 and 'role="alert"' in student.text and 'id="interventions"' in student.text
            )
    finally:
        w.client.execute(f"DROP DATABASE IF EXISTS {w.database}")


def test_recalculate_on_a_real_worker_changes_the_shown_score(settings: Settings, site: Site, tmp_path: Path) -> None:
    from tests.integration.test_worker import _send, _settings, _simulated

    ws = _settings(settings, tmp_path / "worker")
    (tmp_path / "worker").mkdir(exist_ok=True)
    worker = WorkerProcess(ws, free_port(), tmp_path / "worker.log").start()
    try:
        events = _simulated(3, 3, seed=7)
        _send(ws, events)
        user = events[0]["user_id"]
        assert wait_for(lambda: worker.engagement(user).status_code == 200, 60)
        _, server = _site(settings, tmp_path, site.database, dashboards_worker_url=worker.url)
        with server as url:
            client = httpx.Client(base_url=url, timeout=30)
            assert client.post("/login", data={"key": ADMIN_KEY}).status_code == 303
            before = value(client.get(f"/admin/students/{user}").text, "scored-at")
            time.sleep(1.1)  # scored_at has second resolution in places: make a new score distinguishable
            done = client.post(f"/admin/students/{user}/recalculate", data={"back": f"/admin/students/{user}"})
            assert done.status_code == 303 and done.headers["location"] == f"/admin/students/{user}"
            after_page = client.get(done.headers["location"])
            assert 'id="flash"' in after_page.text and f"Recalculated {user}" in after_page.text
            after = value(after_page.text, "scored-at")
            assert after and after != before
            triggered = client.post(
                f"/admin/students/{user}/intervene", data={"intervention_type": "gentle_reminder", "back": "/admin"}
            )
            assert triggered.status_code == 303
            assert f"Triggered gentle_reminder for {user}" in client.get("/admin").text
            unknown = client.get("/admin/students/nobody-at-all")
            assert unknown.status_code == 404 and "Unknown student" in unknown.text
    finally:
        worker.stop()


def test_the_report_pages_render_every_panel(site: Site) -> None:
    client = login(site)
    expected = {
        "/admin/effectiveness": ('id="uplift"', 'id="funnel"'),
        "/admin/cohorts": ('id="retention"', 'id="growth"', 'id="growth-chart"'),
        "/admin/predictions": ('id="model"', 'id="by-version"', 'id="accuracy"', 'id="calibration"'),
        "/admin/experiments": ('id="experiment-send-time-high-tier"', 'id="experiment-medium-tier-trigger"'),
    }
    for path, sections in expected.items():
        page = client.get(path)
        assert page.status_code == 200, path
        errors = re.findall(r'class="panel-error" role="alert">(.*?)</div>', page.text, re.S)
        assert not errors, (path, errors)
        for section in sections:
            assert section in page.text, (path, section)
        assert page.text.count("<h1>") == 1 and 'aria-current="page"' in page.text
    cohorts = client.get("/admin/cohorts").text
    assert re.search(r'class="legend">DAU: \d+', cohorts)  # DAU, WAU and MAU named in words
