"""The student page on the real services: a worker process (engagement, profile, inbox), the leaderboard service
and ClickHouse, with known students' events. The page shows what those APIs answer; a link opens only its own
student's page (403), an altered or expired link gets 401 with a message, a student the worker does not know 404,
and an upstream that is down costs only its own panel."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from config.settings import Settings
from dashboards.student import student_app, student_link
from deploy.infra import Infra
from deploy.process import free_port
from kafka_io.admin import ensure_topics
from leaderboards.runner import running
from notifications.inbox import InboxItem, SqliteInbox
from schemas.topics import catalogue
from sinks.behavior_events import landing_rows
from sinks.clickhouse.client import connect, insert_columns
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING
from tests.integration.test_worker import _send
from tests.integration.workers import SERVER_KEY, WorkerProcess, wait_for, workers

pytestmark = pytest.mark.integration

T0 = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
LESSONS = {"dash-ann": 3, "dash-bob": 1, "dash-cid": 2}  # ranks on XP: ann, cid, bob


def _event(user: str, kind: str, minute: int, course: str | None = "course-1", **payload: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "event_id": f"{user}-{kind}-{minute}-{uuid.uuid4().hex[:6]}",
        "user_id": user,
        "event_type": kind,
        "event_time": (T0 + timedelta(minutes=minute)).isoformat(),
        "platform": "web",
        "payload": payload,
    }
    if course:
        e["course_id"] = course
    return e


def _events() -> list[dict[str, Any]]:
    events = [_event(u, "login", 0, None, method="password") for u in LESSONS]
    for user, n in LESSONS.items():
        events += [_event(user, "lesson_completed", m + 1, lesson_id=f"l{m}", duration_seconds=300.0) for m in range(n)]
    events.append(_event("dash-ann", "course_progress", 9, progress_pct=30.0, lessons_completed=3, lessons_total=10))
    return events


@dataclass
class Live:
    settings: Settings
    worker: WorkerProcess
    leaderboards_url: str


@pytest.fixture(scope="module")
def live(infra: Infra, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    run = tmp_path_factory.mktemp("student-page")
    s = settings.model_copy(
        update={
            "topic_prefix": f"dash-{uuid.uuid4().hex[:8]}",
            "run_dir": run,
            "clickhouse_database": f"dash_{uuid.uuid4().hex[:8]}",
            "broker_session_timeout_seconds": 6.0,
            "leaderboard_port": free_port(),
            "leaderboard_snapshot_seconds": 0.0,
            "worker_web_port": free_port(),
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    client = connect(s)
    migrate(client, s.clickhouse_database)
    events = _events()
    # The warehouse gets the events as the sinks write them (their own row builder, into the landing table).
    rows = [r for i, e in enumerate(events) for r in landing_rows(_batch(e), 0, i)]
    columns = [list(c) for c in zip(*rows, strict=True)]
    insert_columns(client, f"{s.clickhouse_database}.{BEHAVIOR_EVENTS_LANDING.name}",
                   BEHAVIOR_EVENTS_LANDING.column_names, columns)  # fmt: skip
    SqliteInbox.from_settings(s).add(
        InboxItem(
            "dash-ann", "iv-1", "6 days in a row", "<b>Keep it up</b>", datetime.now(UTC), "https://app.example/go"
        )
    )
    try:
        with workers(s, [s.worker_web_port], run) as (worker,), running(s) as service:
            _send(s, events)
            assert wait_for(lambda: _position(service.url, "dash-bob", "all") is not None, timeout=120)
            assert wait_for(lambda: _position(service.url, "dash-ann", "all") == (1, 70), timeout=60)
            yield Live(s, worker, service.url)
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")


def _batch(event: dict[str, Any]) -> bytes:
    return orjson.dumps({"schema_version": 1, "user_id": event["user_id"], "source": "t", "events": [event]})


def _position(base: str, user: str, period: str) -> tuple[int, int] | None:
    resp = httpx.get(f"{base}/v1/leaderboards/global/{period}/users/{user}", headers=SERVER_KEY, timeout=5)
    return (resp.json()["rank"], resp.json()["xp"]) if resp.status_code == 200 else None


class Page(HTMLParser):
    """Elements by id (attributes and text) and the attributes of every element, from the served HTML."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.text: dict[str, str] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if "id" in a:
            self.by_id[a["id"]] = a
            self.text.setdefault(a["id"], "")
            if tag not in ("progress", "rect", "line", "meta", "link"):
                self._open.append(a["id"])

    def handle_endtag(self, tag: str) -> None:
        pass  # text is collected until the document ends: enough for "contains" checks on a panel

    def handle_data(self, data: str) -> None:
        for i in self._open:
            self.text[i] += data

    def having(self, attribute: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if attribute in a]


def _get(app: Starlette, path: str) -> httpx.Response:
    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://dashboards.test") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def _site(s: Settings, clock: Any = None) -> Starlette:
    """Mounted at /s as ``dashboards.app`` mounts it."""
    return Starlette(routes=[Mount("/s", app=student_app(s, clock=clock))])


def _path(s: Settings, user: str, hours: float | None = None) -> str:
    return student_link(s, user, hours=hours).removeprefix(s.dashboards_url)


def test_the_page_shows_what_the_engagement_api_and_the_leaderboards_answer(live: Live) -> None:
    s = live.settings
    engagement = live.worker.engagement("dash-ann").json()
    resp = _get(_site(s), _path(s, "dash-ann"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store" and resp.headers["referrer-policy"] == "no-referrer"
    page = Page(resp.text)
    game, streak = engagement["gamification"], engagement["streak"]
    assert page.by_id["xp"]["data-value"] == str(game["xp"]) == "70"
    assert page.by_id["level"]["data-value"] == str(game["level"])
    assert float(page.by_id["level-progress"]["value"]) == pytest.approx(game["progress_to_next_level_pct"])
    assert page.by_id["streak-current"]["data-value"] == str(streak["current_days"])
    assert page.by_id["streak-longest"]["data-value"] == str(streak["longest_days"])
    assert page.by_id["freezes"]["data-value"] == str(streak["freezes_held"])
    assert f"{streak['current_days']} day" in page.text["streak-current"]  # the number is text, not only data
    assert page.by_id["achievements-count"]["data-value"] == str(game["achievements_unlocked"])
    assert {a["data-achievement"] for a in page.having("data-achievement")} == {
        a["achievement_id"] for a in game["recent_achievements"]
    }
    # The rank is the leaderboard service's, on the board and period the panel names.
    board = page.by_id["leaderboard-position"]
    rank_xp = _position(live.leaderboards_url, "dash-ann", board["data-period"])
    assert rank_xp is not None and board["data-value"] == str(rank_xp[0]) == "1"
    assert [r["data-rank"] for r in page.having("data-rank")] == ["1", "2", "3"]  # ann, then two below
    assert "dash-bob" not in resp.text and "dash-cid" not in resp.text  # neighbours by rank only
    # The warehouse's week and course progress, and the inbox the worker serves.
    days = {d["data-day"]: d["data-value"] for d in page.having("data-day")}
    assert days[T0.date().isoformat()] == "5"  # login, 3 lessons, a progress report
    assert page.by_id["weekly-activity"]["role"] == "img"
    assert [(c["data-course"], c["data-value"]) for c in page.having("data-course")] == [("course-1", "30.0")]
    assert [i["data-item"] for i in page.having("data-item")] == ["iv-1"]
    assert "<b>Keep it up</b>" not in resp.text and "&lt;b&gt;Keep it up&lt;/b&gt;" in resp.text  # escaped
    # T0 is three hours back: in the first three hours of a UTC day the events were yesterday, and the page
    # rightly says the streak needs today (a clean-clone run at 01:00 UTC found streak_at_risk).
    today = T0.date() == datetime.now(UTC).date()
    kinds = ("near_level", "habit", "keep_going") if today else ("streak_at_risk",)
    assert page.by_id["next-step"]["data-kind"] in kinds
    assert 'role="alert"' not in resp.text
    css = _get(_site(s), "/s/static/student.css")
    assert css.status_code == 200 and "@media" in css.text


def test_a_link_opens_its_own_student_only(live: Live) -> None:
    s = live.settings
    own = _path(s, "dash-ann")
    assert _get(_site(s), f"{own}/users/dash-ann").status_code == 200
    other = _get(_site(s), f"{own}/users/dash-bob")
    assert other.status_code == 403 and "cannot show another student" in other.text
    assert "dash-bob" not in other.text.replace(own, "")


def test_altered_and_expired_links_are_refused_with_a_message(live: Live) -> None:
    s = live.settings
    own = _path(s, "dash-ann")
    token = own.removeprefix("/s/")
    forged = student_link(s.model_copy(update={"dashboards_secret_path": s.run_dir / "another.key"}), "dash-bob")
    for bad in (f"/s/{token[:-3]}xyz", forged.removeprefix(s.dashboards_url), "/s/not-a-token"):
        resp = _get(_site(s), bad)
        assert resp.status_code == 401 and "This link is not valid" in resp.text and 'role="alert"' in resp.text
    later = datetime.now(UTC) + timedelta(hours=s.student_link_hours, minutes=1)
    expired = _get(_site(s, clock=lambda: later), own)
    assert expired.status_code == 401 and "This link has expired" in expired.text
    assert "ask for a new one" in expired.text
    assert _get(_site(s, clock=lambda: later - timedelta(minutes=2)), own).status_code == 200


def test_a_student_the_worker_does_not_know_is_404(live: Live) -> None:
    resp = _get(_site(live.settings), _path(live.settings, "dash-nobody"))
    assert resp.status_code == 404 and "not seen any activity" in resp.text


def test_an_upstream_that_is_down_costs_its_panel_only(live: Live, tmp_path: Path) -> None:
    nothing_listens = free_port()
    s = live.settings.model_copy(update={"leaderboard_port": nothing_listens, "clickhouse_port": free_port()})
    resp = _get(_site(s), _path(s, "dash-ann"))
    assert resp.status_code == 200
    page = Page(resp.text)
    assert page.by_id["xp"]["data-value"] == "70"  # the worker still answers
    assert resp.text.count('class="panel-error" role="alert"') == 3  # leaderboard, courses, week
    assert "the leaderboard service cannot be reached" in resp.text
    assert "the warehouse query student_week_activity failed" in resp.text
    assert [i["data-item"] for i in page.having("data-item")] == ["iv-1"]
    no_worker = s.model_copy(update={"worker_web_port": free_port()})
    down = _get(_site(no_worker), _path(no_worker, "dash-ann"))
    assert down.status_code == 200 and "the engagement service cannot be reached" in down.text
