"""Driving the pages of ``engage.sdkcheck.pages`` in a real browser, and counting what reached ClickHouse.

The flaky run: the page tracks ``total`` events while it is reloaded twice and taken offline and back online
(DevTools network emulation); then the test or the bench waits until nothing is pending and reads back, from
the page's localStorage, every id it tracked. The burst run: the page's own timing of ``total`` events.
Coverage is then the share of tracked ids the behaviour-events sink stored in ``behavior_events FINAL``.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from selenium.webdriver.remote.webdriver import WebDriver

from config.settings import Settings
from schemas.topics import catalogue
from sinks.behavior_events import BehaviorEventsSink
from sinks.clickhouse.client import connect
from sinks.runner import SinkRunner

WRITE_KEY = "wk_demo_web"


def wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Polls ``check`` until it returns something truthy (returned), or fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def page_url(site: str, tracker: str, run: str, *, endpoint: str, user: str, total: int, per: int, every: int) -> str:
    query = {"endpoint": endpoint, "key": WRITE_KEY, "user": user, "total": total, "per": per, "every": every}
    return f"{site}/{tracker}/{run}?{urlencode(query)}"


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


@dataclass(frozen=True)
class Flaky:
    """What the page said after a flaky run."""

    tracked: list[str]  # every id the page tracked, in no particular order
    loads: int  # page loads (1 + reloads)
    rejected: str | None  # the JSON list the SDK page's onRejected collected (None: nothing)
    seconds: float  # from the first load until nothing was pending


def flaky_run(driver: WebDriver, url: str, total: int, *, disrupt: bool = True) -> Flaky:
    """Loads ``url`` (a steady page) and, with ``disrupt``, runs the script: reload at 25 %, offline from 45 % to
    65 % (the page keeps tracking), reload at 80 %; then waits until the page's ``pending()`` is 0."""
    began = time.monotonic()

    def reached(share: float) -> None:
        n = round(total * share)
        wait(f"{n} events tracked", lambda: _count(driver) >= n, 30)

    driver.get(url)
    driver.execute_cdp_cmd("Network.enable", {})
    if disrupt:
        reached(0.25)
        driver.refresh()
        reached(0.45)
        _network(driver, offline=True)
        wait("the page to see it is offline", lambda: driver.execute_script("return !navigator.onLine;"), 10)
        reached(0.65)
        _network(driver, offline=False)
        reached(0.80)
        driver.refresh()
    reached(1.0)
    wait("nothing pending", lambda: driver.execute_script("return window.pending && window.pending() === 0;"), 60)
    return Flaky(
        tracked=_tracked_ids(driver),
        loads=int(driver.execute_script("return Number(localStorage.getItem('loads'));")),
        rejected=driver.execute_script("return localStorage.getItem('rejected');"),
        seconds=time.monotonic() - began,
    )


@dataclass(frozen=True)
class Burst:
    """A burst run, timed by the page itself (performance.now())."""

    tracked: int
    accepted: int
    tracking_ms: float  # from the first track call to the return of the last
    delivered_ms: float  # from the first track call to the collector's last answer

    @property
    def events_per_second(self) -> float:
        """Accepted events per second of the run: what the page got into the collector."""
        return self.accepted / (self.delivered_ms / 1000) if self.delivered_ms > 0 else float("nan")


def burst_run(driver: WebDriver, url: str, timeout: float = 60.0) -> Burst:
    driver.get(url)
    try:
        result = wait("the burst to be delivered", lambda: driver.execute_script("return window.result;"), timeout)
    except TimeoutError as error:
        progress = driver.execute_script("return window.progress && window.progress();")
        raise TimeoutError(f"{error}; the page says {progress}") from error
    return Burst(int(result["tracked"]), int(result["accepted"]), result["tracking_ms"], result["delivered_ms"])


@dataclass(frozen=True)
class Stored:
    """One user's events in ``behavior_events FINAL``."""

    ids: set[str]
    rows: int

    @property
    def duplicates(self) -> int:
        """Rows beyond one per event id: FINAL collapses resends of one event, so any left are real doubles."""
        return self.rows - len(self.ids)


def sink_until(settings: Settings, users: Iterable[str], want: set[str], timeout: float = 60.0) -> dict[str, Stored]:
    """Runs the behaviour-events sink until every wanted id is in ClickHouse (or the deadline); per user, what is.

    Everything the collector accepted is already in Kafka; each pass reads until the topic has been quiet for 2 s.
    """
    users = list(users)
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    client = connect(settings)
    deadline = time.monotonic() + timeout
    group = f"sdk-sink-{uuid.uuid4().hex[:6]}"
    while True:
        SinkRunner(
            BehaviorEventsSink(settings),
            bootstrap=settings.kafka,
            topic=topics.events.name,
            dead_letters=None,
            group_id=group,
            batch_seconds=0.3,
        ).run(idle_exit_seconds=2.0)
        rows = client.execute(
            f"SELECT user_id, event_id FROM {settings.clickhouse_database}.behavior_events FINAL "
            "WHERE user_id IN %(users)s",
            {"users": tuple(users)},
        )
        ids: dict[str, set[str]] = {u: set() for u in users}
        counts: Counter[str] = Counter()
        for user, event_id in rows:
            ids[user].add(event_id)
            counts[user] += 1
        if want <= set().union(*ids.values()) or time.monotonic() > deadline:
            return {u: Stored(ids[u], counts[u]) for u in users}
