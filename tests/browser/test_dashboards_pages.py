"""The admin and student dashboards in a real headless Chromium, on the real services: simulated students' events go
through Kafka to a worker process (engagement API), the leaderboard service and the desk, and through a sink process
into ClickHouse; the dashboards app serves the pages. What a person would check in the browser: logging in, every
page free of console errors and of serious or critical axe violations, its figures equal to ClickHouse's and the
engagement API's, live numbers arriving over server-sent events, the row actions working, the keyboard path, the
student page on a phone-sized screen, the 401/403/404 pages, and a failing query costing only its panel.

One data set, one worker and one app server for the whole module; a new browser per test (no shared cookies).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import httpx
import orjson
import pytest
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from config.settings import PROJECT_ROOT, Settings, settings_env
from dashboards.server import running as dashboards_running
from dashboards.student import student_link
from deploy.infra import Infra
from deploy.process import free_port
from desk.runner import running as desk_running
from kafka_io.admin import ensure_topics
from leaderboards.runner import running as leaderboards_running
from processors.streaks import ACTIVE_EVENT_TYPES
from schemas.topics import catalogue
from sinks.behavior_events import landing_rows
from sinks.clickhouse.client import connect, insert_columns
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING
from tests.browser.harness import axe_violations, console_errors, describe, screenshot, tab_through
from tests.integration.test_worker import _send, _simulated
from tests.integration.workers import SERVER_KEY, WorkerProcess, wait_for, workers

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ADMIN_KEY = "ak_demo_admin"
STUDENTS, DAYS, SEED = 24, 7, 11
T = TypeVar("T")
_OFFSETS = itertools.count(1_000_000)  # the landing rows' Kafka offsets, past any the sink wrote


@dataclass
class Stack:
    settings: Settings
    url: str  # the dashboards app
    worker: WorkerProcess
    leaderboards_url: str
    users: list[str]
    client: Any  # ClickHouse, on the module's database

    def engagement(self, user: str) -> dict[str, Any]:
        answer = self.worker.engagement(user)
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def latest_risks(self) -> dict[str, float]:
        """Each student's 7-day risk in their newest risk update in the warehouse (what the at-risk list ranks)."""
        rows = self.client.execute(
            f"SELECT user_id, argMax(risk_7d, as_of) FROM {self.settings.clickhouse_database}.risk_updates "
            "GROUP BY user_id"
        )
        return {user: round(float(r), 1) for user, r in rows}


class Sinks:
    """`engage sink events risk-updates interventions` as its own process, stopped by its PID."""

    def __init__(self, settings: Settings, log: Path) -> None:
        env = {**os.environ, **settings_env(settings)}
        with log.open("ab") as out:
            argv = [sys.executable, "-m", "engage.cli", "sink", "events", "risk-updates", "interventions"]
            self.proc = subprocess.Popen(argv, env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)
        self.log = log

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _caught_up(stack: Stack, unique_events: int, waiting: list[str]) -> bool:
    """Every event stored, and every student's newest stored risk is the one the worker answers; what is still
    awaited goes into ``waiting`` (for the failure message)."""
    waiting.clear()
    db = stack.settings.clickhouse_database
    stored = stack.client.execute(f"SELECT uniqExact(event_id) FROM {db}.behavior_events")[0][0]
    if stored < unique_events:
        waiting.append(f"events stored: {stored} of {unique_events}")
        return False
    risks = stack.latest_risks()
    for user in stack.users:
        answer = stack.worker.engagement(user)
        if answer.status_code != 200 or (answer.json().get("risk") or {}).get("risk_7d") is None:
            waiting.append(f"{user}: the worker answered {answer.status_code} {answer.text[:200]}")
            return False
        if risks.get(user) != round(answer.json()["risk"]["risk_7d"], 1):
            waiting.append(f"{user}: stored risk {risks.get(user)}, the worker's {answer.json()['risk']['risk_7d']}")
            return False
    return True


@pytest.fixture(scope="module")
def stack(infra: Infra, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    run = tmp_path_factory.mktemp("dash-browser")
    tag = uuid.uuid4().hex[:8]
    s = settings.model_copy(
        update={
            "topic_prefix": f"dashb-{tag}",
            "run_dir": run,
            "clickhouse_database": f"dashb_{tag}",
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
            "sink_batch_seconds": 0.2,
            "sink_metrics_port": 0,
            "leaderboard_port": free_port(),
            "leaderboard_snapshot_seconds": 0.0,
            "worker_web_port": free_port(),
            "desk_port": free_port(),
            "desk_store_path": run / "desk.sqlite3",
            "dashboards_port": free_port(),
            "dashboards_secret_path": run / "dashboards.key",
            "dashboards_poll_seconds": 1.0,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    client = connect(s)
    migrate(client, s.clickhouse_database)
    events = _simulated(STUDENTS, DAYS, seed=SEED)
    users = sorted({e["user_id"] for e in events})
    sinks = Sinks(s, run / "sinks.log")
    try:
        with (
            workers(s, [s.worker_web_port], run) as (worker,),
            leaderboards_running(s) as board,
            desk_running(s),
            dashboards_running(s) as url,
        ):
            began = time.monotonic()
            _send(s, events)
            stack = Stack(s, url, worker, board.url, users, connect(s, s.clickhouse_database))
            unique = len({e["event_id"] for e in events})
            waiting: list[str] = []
            assert wait_for(lambda: _caught_up(stack, unique, waiting), timeout=120, interval=1.0), (
                f"the pipeline did not catch up: {waiting}\nworker alive: {worker.proc and worker.proc.poll() is None}"
                f"\n--- worker log\n{worker.log.read_text()[-3000:]}\n--- sinks log\n"
                + (run / "sinks.log").read_text()[-2000:]
            )
            assert sinks.alive()
            print(f"\n[stack] {len(events)} events of {len(users)} students stored in {time.monotonic() - began:.1f} s")
            yield stack
    finally:
        sinks.stop()
        client.execute(f"DROP DATABASE IF EXISTS {s.clickhouse_database}")


# --- helpers --------------------------------------------------------------------------------------------------


class Records(logging.Handler):
    """The messages logged to a logger while attached (uvicorn's own loggers do not reach pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def until(read: Callable[[], T | None], timeout: float = 30.0, what: str = "the condition") -> T:
    """Polls read() until it returns something truthy; fails with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = read()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)


def flash_after(browser: WebDriver, submit: WebElement) -> WebElement:
    """Click ``submit`` and return the flash message of the page it leads to. A flash the page already showed is
    not it: read while the form is still posting (a slow machine), it is the previous action's message."""
    old = browser.find_elements(By.ID, "flash")
    submit.click()

    def fresh() -> list[WebElement] | None:
        if old and not _stale(old[0]):
            return None  # still the page from before the click
        return browser.find_elements(By.ID, "flash")

    return until(fresh, 15, "the flash message")[0]


# ChromeDriver sometimes reports an element of a page being replaced this way instead of as stale (a clean-clone
# run failed on it; selenium's issue 15401 sees it in a few percent of runs): it means the same.
_GONE = ("does not belong to the document", "No node with given id found")


def _stale(element: WebElement) -> bool:
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as exc:
        if any(said in str(exc.msg) for said in _GONE):
            return True
        raise
    return False


def path_of(driver: WebDriver) -> str:
    return urlparse(driver.current_url).path


def login(driver: WebDriver, stack: Stack) -> None:
    """Types the key into the login form and submits it, as a person would."""
    driver.get(f"{stack.url}/admin")  # not logged in: sent to the login page
    until(lambda: path_of(driver) == "/login", 10, "the redirect to /login")
    field = driver.find_element(By.ID, "key")
    field.send_keys(ADMIN_KEY)
    driver.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    until(lambda: path_of(driver) == "/admin", 15, "the redirect to /admin after logging in")


def number(driver: WebDriver, element_id: str) -> str:
    value: str = driver.find_element(By.ID, element_id).get_attribute("data-value") or ""
    return value


def check_page(driver: WebDriver, name: str) -> None:
    """What every page must pass: one h1, a skip link that moves focus to main, no console error, axe-clean, a
    full-page screenshot."""
    assert len(driver.find_elements(By.TAG_NAME, "h1")) == 1, f"{name}: not exactly one h1"
    first = tab_through(driver, 1)[0]
    assert first is not None and first.tag == "a" and first.text == "Skip to content", f"{name}: first tab {first}"
    assert first.outline_visible, f"{name}: the skip link shows no focus outline"
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    assert driver.execute_script("return document.activeElement.id") == "main", f"{name}: the skip link"
    violations = axe_violations(driver)
    assert not violations, f"{name}:\n{describe(violations)}"
    errors = console_errors(driver)
    assert not errors, f"{name}: console errors {errors}"
    screenshot(driver, name, full_page=True)


def overview_now(driver: WebDriver) -> dict[str, str]:
    """The overview's four numbers and the moment they describe, read at once (no update can come in between)."""
    shown: dict[str, str] = driver.execute_script(
        """
        const out = {at: document.getElementById('last-update').getAttribute('datetime')};
        for (const id of ['active-now', 'active-today', 'active-week', 'events-per-minute']) {
          out[id] = document.getElementById(id).getAttribute('data-value');
        }
        return out;
        """
    )
    return shown


def warehouse_now(stack: Stack, at: str, database: str | None = None) -> dict[str, str]:
    """The four live numbers at `at`, counted here from the raw events table (not the query or the daily view
    the page reads): students with an event in the 5 minutes up to `at`, events in its last 60 s, students with an
    active event on its UTC day and in the 7 UTC days up to it."""
    moment = datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    active = ", ".join(f"'{t}'" for t in sorted(ACTIVE_EVENT_TYPES))
    now = f"toDateTime('{moment}', 'UTC')"
    row = stack.client.execute(
        f"""SELECT
            uniqExactIf(user_id, event_time > {now} - 300 AND event_time <= {now}),
            uniqExactIf(user_id, toDate(event_time) = toDate({now}) AND event_type IN ({active})),
            uniqExactIf(user_id, toDate(event_time) > toDate({now}) - 7 AND toDate(event_time) <= toDate({now})
                        AND event_type IN ({active})),
            uniqExactIf(event_id, event_time > {now} - 60 AND event_time <= {now})
        FROM {database or stack.settings.clickhouse_database}.behavior_events"""
    )[0]
    return dict(zip(("active-now", "active-today", "active-week", "events-per-minute"), map(str, row), strict=True))


def walk_ins(stack: Stack, n: int, database: str | None = None) -> list[str]:
    """n new students logging in 5 s ago, written into the warehouse as the events sink writes them (its row
    builder, into the landing table, so the daily views fire); returns their ids."""
    now, users, rows = datetime.now(UTC), [f"walk-in-{uuid.uuid4().hex[:6]}-{i}" for i in range(n)], []
    for user in users:
        event = {
            "event_id": f"{user}-login",
            "user_id": user,
            "event_type": "login",
            "event_time": (now - timedelta(seconds=5)).isoformat(),
            "platform": "web",
            "payload": {"method": "password"},
        }
        value = orjson.dumps({"schema_version": 1, "user_id": user, "source": "t", "events": [event]})
        rows += landing_rows(value, 0, next(_OFFSETS))
    table = f"{database or stack.settings.clickhouse_database}.{BEHAVIOR_EVENTS_LANDING.name}"
    columns = [list(c) for c in zip(*rows, strict=True)]
    insert_columns(stack.client, table, BEHAVIOR_EVENTS_LANDING.column_names, columns)
    return users


def at_risk_rows(driver: WebDriver) -> list[tuple[str, float]]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#at-risk tbody tr[data-user]")
    return [
        (
            r.get_attribute("data-user") or "",
            float(r.find_element(By.CSS_SELECTOR, "td.num").get_attribute("data-value") or "nan"),
        )
        for r in rows
    ]


# --- 1. every admin page --------------------------------------------------------------------------------------


def test_admin_logs_in_through_the_form_and_every_page_passes(browser: WebDriver, stack: Stack) -> None:
    login(browser, stack)
    assert "engage_session" not in browser.execute_script("return document.cookie")  # HttpOnly: no script sees it
    cookie = browser.get_cookie("engage_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    student = max(stack.latest_risks().items(), key=lambda kv: kv[1])[0]
    pages = {
        "overview": "/admin",
        "at-risk": "/admin/at-risk",
        "student": f"/admin/students/{student}",
        "effectiveness": "/admin/effectiveness",
        "cohorts": "/admin/cohorts",
        "predictions": "/admin/predictions",
        "experiments": "/admin/experiments",
    }
    for name, path in pages.items():
        browser.get(f"{stack.url}{path}")
        assert path_of(browser) == path, f"{name}: ended on {browser.current_url}"
        check_page(browser, name)
        alerts = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "[role=alert]") if a.is_displayed()]
        assert not alerts, f"{name}: panels failed: {alerts}"
        current = browser.find_elements(By.CSS_SELECTOR, "nav[aria-label='Admin pages'] a[aria-current=page]")
        assert len(current) == 1, f"{name}: the navigation marks {len(current)} links as the current page"


# --- 2. the figures -------------------------------------------------------------------------------------------


def test_the_figures_are_the_warehouses_and_the_engagement_apis(browser: WebDriver, stack: Stack) -> None:
    walk_ins(stack, 2)  # so that "now" and "per minute" are not zero
    login(browser, stack)
    shown = overview_now(browser)
    at = shown.pop("at")
    assert shown == warehouse_now(stack, at)
    assert int(shown["active-now"]) >= 2 and int(shown["active-week"]) > 2  # the comparison is not of zeros

    def listed() -> list[tuple[str, float]] | None:
        """The list, once it agrees with the warehouse and the worker (a re-score may be on its way to both)."""
        browser.get(f"{stack.url}/admin/at-risk")
        rows, stored = at_risk_rows(browser), stack.latest_risks()
        top_user, top_risk = rows[0]
        agree = top_risk == max(stored.values()) == round(stack.engagement(top_user)["risk"]["risk_7d"], 1)
        ranked = [r for _, r in rows] == sorted((r for _, r in rows), reverse=True)
        return rows if agree and ranked and len(rows) == len(stored) else None

    rows = until(listed, 30, "the at-risk list agreeing with the warehouse and the engagement API")
    assert 20 < len(rows) == len(stack.users) <= 50  # every student, on one page of 50

    # Ten a page, through the filter form, then the next page by its link: each page the slice of the whole list
    # read just before it. Re-scores keep landing (a clean-clone run saw one student's risk fall from 20.7 to
    # under 12.1 between the whole list and page 1), so a walk that saw the list change is walked again.
    pages = -(-len(rows) // 10)

    def paged() -> tuple[list[tuple[str, float]], list[tuple[str, float]]] | None:
        listed_now = until(listed, 30, "the at-risk list agreeing with the warehouse and the engagement API")
        size = browser.find_element(By.ID, "f-size")
        size.clear()
        size.send_keys("10")
        browser.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        until(lambda: "size=10" in browser.current_url, 10, "the filtered list")
        first = at_risk_rows(browser)
        assert browser.find_element(By.ID, "page-info").text == f"page 1 of {pages}" and len(first) == 10
        browser.find_element(By.CSS_SELECTOR, "a[rel=next]").click()
        until(lambda: "page=2" in browser.current_url, 10, "page 2")
        second = at_risk_rows(browser)
        assert browser.find_element(By.ID, "page-info").text == f"page 2 of {pages}" and len(second) == 10
        assert not {u for u, _ in first} & {u for u, _ in second}
        return (first, second) if (first, second) == (listed_now[:10], listed_now[10:20]) else None

    until(paged, 60, "pages of ten that are slices of the whole list")
    assert not console_errors(browser)


# --- 3. live updates ------------------------------------------------------------------------------------------


def test_live_numbers_arrive_over_server_sent_events(browser: WebDriver, stack: Stack) -> None:
    login(browser, stack)
    before = overview_now(browser)
    until(lambda: overview_now(browser)["at"] != before["at"], 20, "a live update (#last-update changing)")
    newcomers = walk_ins(stack, 3)

    def arrived() -> dict[str, str] | None:
        shown = overview_now(browser)
        if shown["active-now"] == before["active-now"]:
            return None
        at = shown.pop("at")
        return shown if shown == warehouse_now(stack, at) else None

    shown = until(arrived, 30, "the new students in the live numbers")
    assert int(shown["active-now"]) >= len(newcomers)
    text = browser.find_element(By.ID, "active-now").text.replace(",", "")
    assert text == shown["active-now"]  # the number shown, not only its attribute
    assert not console_errors(browser)


# --- 4. actions -----------------------------------------------------------------------------------------------


def test_recalculate_and_trigger_an_intervention_from_the_student_page(browser: WebDriver, stack: Stack) -> None:
    user = stack.users[3]
    login(browser, stack)
    page = f"{stack.url}/admin/students/{user}"
    browser.get(page)
    before = number(browser, "scored-at")
    assert before == stack.engagement(user)["scored_at"]

    flash = flash_after(browser, browser.find_element(By.CSS_SELECTOR, "#now form[action$='/recalculate'] button"))
    assert flash.text.startswith(f"Recalculated {user}: 7-day risk")
    after = number(browser, "scored-at")
    api = stack.engagement(user)
    assert after != before and after == api["scored_at"]
    assert number(browser, "student-risk") == str(api["risk"]["risk_7d"])
    assert f"7-day risk {api['risk']['risk_7d']:.1f} ({api['tier']})" in flash.text

    Select(browser.find_element(By.ID, "kind-detail")).select_by_value("human_outreach")
    flash = flash_after(browser, browser.find_element(By.CSS_SELECTOR, "#now form.intervene button[type=submit]"))
    assert flash.text.startswith(f"Triggered human_outreach for {user} (")
    intervention = flash.text.rsplit("(", 1)[1].rstrip(").")
    assert intervention.startswith(f"{user}:manual:human_outreach:")

    def listed() -> Any:  # the sink process stores the worker's request; the list reads the warehouse
        browser.get(page)
        return browser.find_elements(By.CSS_SELECTOR, f'#interventions tr[data-intervention="{intervention}"]')

    row = until(listed, 30, f"intervention {intervention} in the list")[0]
    assert "human outreach" in row.text and "triggered by" in row.text
    assert not console_errors(browser)


def test_recalculate_from_the_at_risk_row_comes_back_with_a_flash(browser: WebDriver, stack: Stack) -> None:
    login(browser, stack)
    browser.get(f"{stack.url}/admin/at-risk?size=10&page=2")
    row = browser.find_elements(By.CSS_SELECTOR, "#at-risk tbody tr[data-user]")[0]
    user = str(row.get_attribute("data-user"))
    before = stack.engagement(user)["scored_at"]
    flash = flash_after(browser, row.find_element(By.CSS_SELECTOR, "form[action$='/recalculate'] button"))
    assert flash.text.startswith(f"Recalculated {user}:")
    back = parse_qs(urlparse(browser.current_url).query)
    assert path_of(browser) == "/admin/at-risk" and back["page"] == ["2"] and back["size"] == ["10"]
    after = stack.engagement(user)
    said = re.search(r"7-day risk ([0-9.]+) \((\w+)\), scored at (\S+);", flash.text)
    assert said, flash.text
    assert (float(said.group(1)), said.group(2)) == (round(after["risk"]["risk_7d"], 1), after["tier"])
    scored = datetime.fromisoformat(said.group(3).replace("Z", "+00:00"))
    assert after["scored_at"] != before
    assert abs((scored - datetime.fromisoformat(after["scored_at"])).total_seconds()) < 0.01
    assert not console_errors(browser)


# --- 5. keyboard ----------------------------------------------------------------------------------------------


def test_the_at_risk_page_by_keyboard(browser: WebDriver, stack: Stack) -> None:
    login(browser, stack)
    browser.get(f"{stack.url}/admin/at-risk")
    top_tier = browser.find_element(By.CSS_SELECTOR, "#at-risk tbody tr[data-user] .tier").text
    order = tab_through(browser, 13)
    assert all(f is not None for f in order), order
    keys = [f.key for f in order if f is not None]
    nav = ["Overview", "At-risk students", "Interventions", "Cohorts", "Predictions", "Experiments"]
    assert keys[0] == "a:Skip to content"
    assert keys[1:7] == [f"a:{n}" for n in nav]
    assert keys[7] == "button:Log out"
    assert keys[8:13] == ["select#f-tier", "input#f-course", "input#f-tz", "input#f-size", "button:Apply filters"]
    hidden = [f.key for f in order if f is not None and not f.outline_visible]
    assert not hidden, f"no visible focus on {hidden}"
    # The filter works from the keyboard alone: back to the tier, pick one by typing, tab to the button, Enter.
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.TAB * 4).key_up(Keys.SHIFT).perform()
    assert browser.execute_script("return document.activeElement.id") == "f-tier"
    ActionChains(browser).send_keys(top_tier).perform()
    ActionChains(browser).send_keys(Keys.TAB * 4).send_keys(Keys.ENTER).perform()
    until(lambda: f"tier={top_tier}" in browser.current_url, 10, "the list filtered by the keyboard")
    tiers = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#at-risk tbody tr[data-user] .tier")]
    assert tiers and set(tiers) == {top_tier}, tiers


# --- 6. the student page --------------------------------------------------------------------------------------


def test_the_student_page_on_a_phone_and_a_laptop(browser: WebDriver, stack: Stack) -> None:
    user = stack.users[0]

    def on_board() -> bool:
        answer = httpx.get(f"{stack.leaderboards_url}/v1/leaderboards/global/all/users/{user}", headers=SERVER_KEY)
        return answer.status_code == 200

    assert wait_for(on_board, 60)
    link = student_link(stack.settings, user)
    api = stack.engagement(user)
    for width, height in ((390, 844), (1280, 900)):
        browser.set_window_size(width, height)
        browser.get(link)
        assert browser.execute_script("return window.innerWidth") <= width
        check_page(browser, f"student-{width}")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page is {overflow} px wider than a {width} px screen"
        assert number(browser, "xp") == str(api["gamification"]["xp"])
        assert number(browser, "streak-current") == str(api["streak"]["current_days"])
        assert number(browser, "streak-longest") == str(api["streak"]["longest_days"])
        assert not browser.find_elements(By.CSS_SELECTOR, "[role=alert]"), "a panel failed"


def problem_page(browser: WebDriver, url: str, status: int, title: str, name: str) -> str:
    browser.get(url)
    assert browser.find_element(By.TAG_NAME, "h1").text == title
    assert browser.find_element(By.ID, "problem").get_attribute("data-status") == str(status)
    message = browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    violations = axe_violations(browser)
    assert not violations, f"{name}:\n{describe(violations)}"
    # The only console entry: the browser noting the page's own status (what makes it a 401, 403 or 404 page).
    errors = [e["message"] for e in console_errors(browser)]
    assert len(errors) == 1 and errors[0].startswith(f"{url} - ") and f"status of {status}" in errors[0], errors
    screenshot(browser, name, full_page=True)
    return message


def test_bad_student_links_show_their_pages(browser: WebDriver, stack: Stack) -> None:
    link = student_link(stack.settings, stack.users[0])
    tampered = link[:-3] + ("xyz" if not link.endswith("xyz") else "abc")
    assert "altered" in problem_page(browser, tampered, 401, "This link is not valid", "student-401")
    other = problem_page(browser, f"{link}/users/{stack.users[1]}", 403, "Not your dashboard", "student-403")
    assert "cannot show another student" in other
    unknown = student_link(stack.settings, "nobody-at-all")
    assert "not seen any activity" in problem_page(browser, unknown, 404, "No activity yet", "student-404")


# --- 7. a failing panel ---------------------------------------------------------------------------------------


def test_a_failing_query_shows_in_its_panel_only(browser: WebDriver, stack: Stack, tmp_path: Path) -> None:
    s = stack.settings
    broken = f"dashb_broken_{uuid.uuid4().hex[:6]}"
    client = connect(s)
    migrate(client, broken)
    client.execute(f"DROP TABLE {broken}.user_daily_signals")
    walk_ins(stack, 2, broken)
    s2 = s.model_copy(update={"dashboards_port": free_port(), "dashboards_secret_path": tmp_path / "dash.key"})
    stopping = Records()
    try:
        with dashboards_running(s2, database=broken) as url:
            logging.getLogger("uvicorn.error").addHandler(stopping)  # after uvicorn has configured its loggers
            login(browser, Stack(s2, url, stack.worker, stack.leaderboards_url, stack.users, client))
            alert = browser.find_element(By.CSS_SELECTOR, "#tiers .panel-error[role=alert]")
            assert alert.is_displayed() and "user_daily_signals" in alert.text
            shown = overview_now(browser)  # the live numbers still render, from the tables that are there
            at = shown.pop("at")
            assert shown == warehouse_now(stack, at, broken) and int(shown["active-now"]) == 2
            assert browser.find_element(By.ID, "tier-counts").is_displayed()
            # Tiers that could not be read show a dash, not zeros that look real.
            counts = browser.find_elements(By.CSS_SELECTOR, "#tier-counts [data-tier] [data-value]")
            assert counts and {(c.text, c.get_attribute("data-value")) for c in counts} == {("\u2013", "")}
            check_page(browser, "overview-broken")
            browser.get(f"{url}/admin/students/{stack.users[0]}")
            history = browser.find_element(By.CSS_SELECTOR, "#history .panel-error[role=alert]")
            assert history.is_displayed() and "user_daily_signals" in history.text
            assert browser.find_element(By.ID, "interventions").is_displayed()
            assert number(browser, "xp") == str(stack.engagement(stack.users[0])["gamification"]["xp"])
            check_page(browser, "student-broken")
        # Leaving the overview closed its event stream: the server stopped without cutting one off.
        assert not [m for m in stopping.messages if "graceful shutdown" in m], stopping.messages
    finally:
        logging.getLogger("uvicorn.error").removeHandler(stopping)
        client.execute(f"DROP DATABASE IF EXISTS {broken}")
