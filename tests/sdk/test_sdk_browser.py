"""Tracking coverage through a flaky network, in a real browser, counted in ClickHouse.

Headless Chromium loads a page that tracks N events with the built SDK bundle, sending to the real collector
through a fault-injecting proxy (20 % of requests dropped, some cut mid-request or mid-response, the rest delayed);
during the run the page is reloaded twice and taken offline and back online (DevTools network emulation).
Coverage = distinct tracked event ids in behavior_events FINAL / events the page tracked; no id twice in FINAL.
The proxy, the page and the run's script are engage.sdkcheck's, shared with `engage bench sdk`.
"""

from __future__ import annotations

import uuid

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from config.settings import Settings
from deploy.infra import Infra
from engage.sdkcheck.fault_proxy import fault_proxy
from engage.sdkcheck.npm import build
from engage.sdkcheck.pages import coverage_app
from engage.sdkcheck.scenario import flaky_run, page_url, sink_until
from tests.browser.harness import console_errors, serve_asgi
from tests.integration.helpers import running_collector

pytestmark = [pytest.mark.browser, pytest.mark.integration]

N = 2000


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
        endpoint = f"http://127.0.0.1:{proxy.port}"
        url = page_url(site, "sdk", "steady", endpoint=endpoint, user=user, total=N, per=10, every=40)
        run = flaky_run(browser, url, N)
        errors = [e for e in console_errors(browser) if "engage.min.js" in str(e.get("message"))]

    tracked = run.tracked
    assert len(tracked) == N and len(set(tracked)) == N
    assert run.loads == 3, "the page was not reloaded twice"
    assert run.rejected in (None, "[]"), run.rejected
    assert errors == []
    assert proxy.counts["dropped"] > 0 and proxy.counts["cut_request"] > 0 and proxy.counts["cut_response"] > 0, (
        proxy.counts
    )

    stored = sink_until(settings, [user], set(tracked))[user]
    coverage = len(stored.ids & set(tracked)) / len(tracked)
    print(f"\n[sdk] coverage {coverage:.4%} of {N} events; proxy {dict(proxy.counts)}; rows in FINAL {stored.rows}")
    assert coverage >= 0.999, f"coverage {coverage:.4%}: {len(set(tracked) - stored.ids)} of {N} events missing"
    assert stored.duplicates == 0, f"{stored.duplicates} duplicate rows in behavior_events FINAL"
    assert stored.ids <= set(tracked), "events in ClickHouse the page never tracked"
