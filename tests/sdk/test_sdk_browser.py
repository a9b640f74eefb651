"""Tracking coverage through a flaky network, in a real browser, counted in ClickHouse.

Headless Chromium loads a page that tracks N events with the built SDK bundle, sending to the real collector
through a fault-injecting proxy (20 % of requests dropped, some cut mid-request or mid-response, the rest delayed);
during the run the page is reloaded twice and taken offline and back online (DevTools network emulation).
Coverage = distinct tracked event ids in behavior_events FINAL / events the page tracked; no id twice in FINAL.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from config.settings import Settings
from deploy.infra import Infra
from schemas.topics import catalogue
from sinks.behavior_events import BehaviorEventsSink
from sinks.clickhouse.client import connect
from sinks.runner import SinkRunner
from tests.browser.harness import console_errors, serve_asgi
from tests.integration.helpers import running_collector
from tests.sdk.coverage_page import coverage_app
from tests.sdk.fault_proxy import fault_proxy
from tests.sdk.npm import build

pytestmark = [pytest.mark.browser, pytest.mark.integration]

N = 2000


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def _count(driver: WebDriver) -> int:
    return int(driver.execute_script("return Number(localStorage.getItem('count') || '0');"))


def _tracked_ids(driver: WebDriver) -> list[str]:
    chunks: list[str] = driver.execute_script(
        "return Object.keys(localStorage).filter(k => k.startsWith('tracked:')).map(k => localStorage.getItem(k));"
    )
    return [i for chunk in chunks for i in chunk.split(",") if i]


def _network(driver: WebDriver, offline: bool) -> None:
    conditions = {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1}
    driver.execute_cdp_cmd("Network.emulateNetworkConditions", conditions)


def _sink_until(settings: Settings, user: str, want: set[str], timeout: float = 60.0) -> tuple[set[str], int]:
    """Runs the behaviour-events sink until every wanted id is in ClickHouse (or the deadline); (ids, rows)."""
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    client = connect(settings)
    deadline = time.monotonic() + timeout
    group = f"sdk-sink-{uuid.uuid4().hex[:6]}"
    while True:
        SinkRunner(
            BehaviorEventsSink(settings),
            bootstrap=settings.kafka_bootstrap,
            topic=topics.events.name,
            dead_letters=None,
            group_id=group,
            batch_seconds=0.3,
        ).run(idle_exit_seconds=2.0)
        rows = client.execute(
            f"SELECT event_id FROM {settings.clickhouse_database}.behavior_events FINAL WHERE user_id = %(u)s",
            {"u": user},
        )
        found = {r[0] for r in rows}
        if want <= found or time.monotonic() > deadline:
            return found, len(rows)


def test_coverage_through_a_flaky_network_with_reloads_and_offline(
    infra: Infra, settings: Settings, browser: WebDriver
) -> None:
    bundle = build()
    user = f"sdk-{uuid.uuid4().hex[:10]}"
    with (
        running_collector(settings) as collector,
        fault_proxy(collector) as proxy,
        serve_asgi(coverage_app(bundle)) as site,
    ):
        query = {"endpoint": f"http://127.0.0.1:{proxy.port}", "key": "wk_demo_web", "user": user}
        browser.get(f"{site}/?{urlencode({**query, 'total': N, 'per': 10, 'every': 40})}")
        browser.execute_cdp_cmd("Network.enable", {})

        _wait("500 events tracked", lambda: _count(browser) >= 500, 30)
        browser.refresh()
        _wait("900 events tracked", lambda: _count(browser) >= 900, 30)
        _network(browser, offline=True)
        _wait("the page to see it is offline", lambda: browser.execute_script("return !navigator.onLine;"), 10)
        _wait("1300 events tracked (offline)", lambda: _count(browser) >= 1300, 30)
        _network(browser, offline=False)
        _wait("1600 events tracked", lambda: _count(browser) >= 1600, 30)
        browser.refresh()
        _wait(f"{N} events tracked", lambda: _count(browser) >= N, 30)
        _wait(
            "the SDK's queue to empty",
            lambda: browser.execute_script("return window.engage && window.engage.stats().queued === 0;"),
            60,
        )
        tracked = _tracked_ids(browser)
        loads = int(browser.execute_script("return Number(localStorage.getItem('loads'));"))
        rejected = browser.execute_script("return localStorage.getItem('rejected');")
        errors = [e for e in console_errors(browser) if "engage.min.js" in str(e.get("message"))]

    assert len(tracked) == N and len(set(tracked)) == N
    assert loads == 3, "the page was not reloaded twice"
    assert rejected in (None, "[]"), rejected
    assert errors == []
    assert proxy.counts["dropped"] > 0 and proxy.counts["cut_request"] > 0 and proxy.counts["cut_response"] > 0, (
        proxy.counts
    )

    stored, rows = _sink_until(settings, user, set(tracked))
    coverage = len(stored & set(tracked)) / len(tracked)
    print(f"\n[sdk] coverage {coverage:.4%} of {N} events; proxy {dict(proxy.counts)}; rows in FINAL {rows}")
    assert coverage >= 0.999, f"coverage {coverage:.4%}: {len(set(tracked) - stored)} of {N} events missing"
    assert rows == len(stored), f"{rows - len(stored)} duplicate rows in behavior_events FINAL"
    assert stored <= set(tracked), "events in ClickHouse the page never tracked"
