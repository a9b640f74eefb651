"""`engage bench sdk`: the JS tracker SDK in a real headless Chromium, beside a naive page, in the same run.

Kafka and ClickHouse of the bench's own (free ports, a run dir under ``run_dir``, stopped by PID at the end), the
collector as an ``engage collector`` child process, the SDK built with npm, Debian's Chromium. The naive page is
what an app writes from the curl example: one ``fetch`` POST per event, no retry, no queue
(``engage.sdkcheck.pages``).

1. **Coverage through a flaky network**: each page tracks ``events`` events through its own fault-injecting proxy
   (the same seeded deck for both: 20 % of requests dropped, 5 % cut mid-request, 5 % cut mid-response, the rest
   delayed up to 150 ms), is reloaded twice and is offline for a fifth of the run (``engage.sdkcheck.scenario``).
   Coverage = distinct tracked ids in ``behavior_events FINAL`` / ids tracked; duplicates = rows in FINAL beyond
   one per id. The behaviour-events sink runs after both pages are done.
2. **Events per second one page tracks and delivers**: ``burst`` events tracked as fast as the page can, straight
   to the collector (no proxy); the page's own clock from the first track call to the collector's last answer.
3. **The SDK's size**: ``dist/engage.min.js`` gzipped (level 9), what a browser downloads.
"""

from __future__ import annotations

import gzip
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from config.settings import Settings, get_settings
from engage.bench.report import Figure, Report

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

    from engage.sdkcheck.scenario import Burst, Flaky, Stored

COVERAGE_AIM = 0.999


@dataclass(frozen=True)
class SdkBenchConfig:
    events: int = 2_000  # per flaky run (each page)
    per: int = 10  # events per tick of the flaky run...
    every_ms: int = 40  # ...every this many ms: 250 events/s
    burst: int = 5_000  # per burst (each page); a multiple of the SDK's default batch of 50


def gzipped_size(path: Path) -> int:
    """Bytes of the file gzipped at level 9, as a web server would send it."""
    return len(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))


@contextmanager
def _servers(base: Settings, console: Console) -> Iterator[tuple[Settings, str]]:
    """Kafka, ClickHouse (own ports and run dir, stopped by PID) and a collector child; yields (settings, its URL).

    The run dir is removed after a clean run and kept (its logs) after a failed one."""
    from config.settings import settings_env
    from deploy.infra import Infra
    from deploy.process import free_ports
    from engage.children import child, wait_http
    from kafka_io.admin import ensure_topics
    from schemas.topics import catalogue

    run_id = uuid.uuid4().hex[:6]
    work = base.run_dir / f"bench-sdk-{run_id}"
    kafka, controller, clickhouse, clickhouse_http, collector = free_ports(5)
    s = base.model_copy(
        update={
            "run_dir": work,
            "kafka_port": kafka,
            "kafka_controller_port": controller,
            "clickhouse_port": clickhouse,
            "clickhouse_http_port": clickhouse_http,
            "collector_port": collector,
            "clickhouse_database": f"bench_sdk_{run_id}",
            "topic_prefix": f"bench-sdk-{run_id}",
            "sink_metrics_port": 0,
        }
    )
    infra = Infra.from_settings(s)
    ok = False
    try:
        for started in infra.up():
            console.print(f"{started.name} on its own ports, ready in {started.seconds_to_ready:.1f} s")
        ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
        log = work / "collector.log"
        with child([sys.executable, "-m", "engage.cli", "collector"], log, settings_env(s)) as proc:
            url = f"http://127.0.0.1:{s.collector_port}"
            wait_http(f"{url}/readyz", proc, log=log)
            yield s, url
        ok = True
    finally:
        infra.down()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"kept {work} (logs) after the failure")


@contextmanager
def _browser(profile: Path) -> Iterator[WebDriver]:
    from engage.chromium import check_binaries, start_browser

    started = start_browser(check_binaries(), profile)
    try:
        yield started.driver
    finally:
        started.stop()


# The flaky runs: (name, reloads and an offline spell as well as the proxy's faults).
SCENARIOS = (("proxy", False), ("proxy+reloads+offline", True))


@dataclass(frozen=True)
class FlakyRun:
    tracker: str
    scenario: str
    result: Flaky
    user: str
    fates: dict[str, int]  # what the proxy did to the requests

    def coverage(self, stored: Stored) -> float:
        """The share of the ids the page tracked that are in ClickHouse."""
        return len(stored.ids & set(self.result.tracked)) / len(self.result.tracked)


def _flaky(
    driver: WebDriver, bundle: Path, tracker: str, scenario: str, collector: str, cfg: SdkBenchConfig
) -> FlakyRun:
    """One page's flaky run on a fresh origin (its own localStorage and IndexedDB) and a fresh proxy (same deck)."""
    from engage.chromium import serve_asgi
    from engage.sdkcheck.fault_proxy import fault_proxy
    from engage.sdkcheck.pages import coverage_app
    from engage.sdkcheck.scenario import flaky_run, page_url

    user = f"bench-{tracker}-{uuid.uuid4().hex[:8]}"
    with fault_proxy(collector) as proxy, serve_asgi(coverage_app(bundle)) as site:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        url = page_url(site, tracker, "steady", endpoint=endpoint, user=user, total=cfg.events, per=cfg.per,
                       every=cfg.every_ms)  # fmt: skip
        result = flaky_run(driver, url, cfg.events, disrupt=dict(SCENARIOS)[scenario])
    return FlakyRun(tracker, scenario, result, user, dict(proxy.counts))


def _burst(driver: WebDriver, bundle: Path, tracker: str, collector: str, cfg: SdkBenchConfig) -> tuple[Burst, str]:
    from engage.chromium import serve_asgi
    from engage.sdkcheck.pages import coverage_app
    from engage.sdkcheck.scenario import burst_run, page_url

    user = f"bench-{tracker}-burst-{uuid.uuid4().hex[:8]}"
    with serve_asgi(coverage_app(bundle)) as site:
        url = page_url(site, tracker, "burst", endpoint=collector, user=user, total=cfg.burst, per=100, every=0)
        return burst_run(driver, url), user


def _coverage_figures(report: Report, runs: dict[tuple[str, str], FlakyRun], stored: dict[str, Stored],
                      cfg: SdkBenchConfig) -> None:  # fmt: skip
    rate = 1000 * cfg.per // cfg.every_ms
    for scenario, disrupt in SCENARIOS:
        sdk, naive = runs["sdk", scenario], runs["naive", scenario]
        share = {r.tracker: r.coverage(stored[r.user]) for r in (sdk, naive)}
        what = "proxy faults, 2 reloads, offline from 45 to 65 %" if disrupt else "proxy faults only"
        report.add(Figure(f"coverage: {what}", 100 * share["sdk"], "%", "naive page (one fetch per event)",
                          100 * share["naive"], aim=">= 99.9 %",
                          notes=f"{cfg.events:,} events tracked at {rate} events/s; proxy fates: SDK {sdk.fates}, "
                                f"naive {naive.fates}; until nothing was pending: SDK {sdk.result.seconds:.1f} s, "
                                f"naive {naive.result.seconds:.1f} s"))  # fmt: skip
        report.add(Figure(f"duplicate rows in behavior_events FINAL: {what}", stored[sdk.user].duplicates, "rows",
                          "naive page", stored[naive.user].duplicates, aim="0",
                          notes=f"rows: SDK {stored[sdk.user].rows:,}, naive {stored[naive.user].rows:,}"))  # fmt: skip
        if share["sdk"] < COVERAGE_AIM:
            report.problems.append(f"SDK coverage ({what}) {share['sdk']:.4%} is below {COVERAGE_AIM:.1%}")
    for r in runs.values():
        got, tracked = stored[r.user], set(r.result.tracked)
        report.context[f"flaky_{r.tracker}_{r.scenario}"] = {
            "tracked": len(tracked), "stored": len(got.ids & tracked), "rows_in_final": got.rows,
            "loads": r.result.loads, "seconds": round(r.result.seconds, 1), "proxy": r.fates,
            "rejected": r.result.rejected,
        }  # fmt: skip
        if got.ids - tracked:
            report.problems.append(f"{r.tracker}, {r.scenario}: {len(got.ids - tracked)} stored events not tracked")
        if r.tracker == "sdk" and got.duplicates:
            report.problems.append(f"{r.scenario}: {got.duplicates} duplicate rows of the SDK's events in FINAL")
        if r.tracker == "sdk" and r.result.rejected not in (None, "[]"):
            report.problems.append(f"{r.scenario}: the collector rejected SDK events: {r.result.rejected[:300]}")


def _rate_figure(report: Report, bursts: dict[str, tuple[Burst, str]], stored: dict[str, Stored],
                 cfg: SdkBenchConfig) -> None:  # fmt: skip
    for tracker, (b, user) in bursts.items():
        report.context[f"burst_{tracker}"] = {
            **asdict(b), "events_per_second": b.events_per_second, "stored": len(stored[user].ids),
            "rows_in_final": stored[user].rows,
        }  # fmt: skip
    sdk, naive = bursts["sdk"][0], bursts["naive"][0]
    if sdk.accepted < sdk.tracked:
        report.problems.append(f"SDK burst: {sdk.accepted} of {sdk.tracked} accepted")
    report.add(Figure("events/s one page tracks and delivers", sdk.events_per_second, "events/s",
                      "naive page (one fetch per event)", naive.events_per_second,
                      notes=f"a burst of {cfg.burst:,} events, 100 tracked per task, straight to the collector; "
                            f"accepted / (first track -> last answer): SDK {sdk.accepted:,} in "
                            f"{sdk.delivered_ms:,.0f} ms (batches of 50, gzip, each event kept in IndexedDB until "
                            f"accepted; its track() calls took {sdk.tracking_ms:,.0f} ms), naive {naive.accepted:,} "
                            f"in {naive.delivered_ms:,.0f} ms (the browser refused the other "
                            f"{naive.tracked - naive.accepted:,} requests: too many at once)"))  # fmt: skip


def run(base: Settings, console: Console, out: Path, cfg: SdkBenchConfig | None = None) -> Report:
    from engage.sdkcheck.npm import build
    from engage.sdkcheck.scenario import sink_until

    cfg = cfg or SdkBenchConfig()
    report = Report("engage bench sdk (the JS tracker in headless Chromium)", context={"config": asdict(cfg)})
    began = time.monotonic()
    bundle = build()
    raw, packed = bundle.stat().st_size, gzipped_size(bundle)
    console.print(f"built {bundle.name}: {raw:,} bytes, {packed:,} gzipped")
    runs: dict[tuple[str, str], FlakyRun] = {}
    bursts: dict[str, tuple[Burst, str]] = {}
    with _servers(base, console) as (s, collector):
        with _browser(s.run_dir / "chromium-profile") as driver:
            for scenario, _ in SCENARIOS:
                for tracker in ("naive", "sdk"):
                    console.print(f"{tracker} page: {cfg.events:,} events, {scenario} ...")
                    runs[tracker, scenario] = _flaky(driver, bundle, tracker, scenario, collector, cfg)
            for tracker in ("naive", "sdk"):
                console.print(f"{tracker} page: a burst of {cfg.burst:,} events straight to the collector ...")
                bursts[tracker] = _burst(driver, bundle, tracker, collector, cfg)
        console.print("behaviour-events sink into ClickHouse ...")
        users = [r.user for r in runs.values()] + [u for _, u in bursts.values()]
        want = {i for r in runs.values() if r.tracker == "sdk" for i in r.result.tracked}
        stored = sink_until(s, users, want)
    _coverage_figures(report, runs, stored, cfg)
    _rate_figure(report, bursts, stored, cfg)
    size = f"dist/engage.min.js {raw:,} bytes minified, {packed:,} bytes gzipped (level 9)"
    report.add(Figure("SDK bundle, gzipped", packed / 1000, "kB", aim="< 10 kB", notes=size))
    report.context["seconds"] = round(time.monotonic() - began, 1)
    report.print(console)
    for problem in report.problems:
        console.print(f"  [bold red]problem[/bold red]: {problem}")
    console.print(f"saved {report.save(out)} ({report.context['seconds']} s)")
    return report


def bench_sdk(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/sdk.json"),
    events: Annotated[int, typer.Option(help="Events each page tracks through the flaky proxy")] = 2_000,
    burst: Annotated[int, typer.Option(help="Events each page tracks in the throughput burst")] = 5_000,
) -> None:
    """Tracking coverage through a flaky network, events/s per page, and the gzipped size of the JS SDK."""
    if events < 100 or burst < 100:
        raise typer.BadParameter("--events and --burst must be at least 100")
    cfg = SdkBenchConfig(events=events, burst=burst)
    report = run(get_settings(), Console(width=max(Console().width, 120)), out, cfg)
    raise typer.Exit(1 if report.problems else 0)


__all__ = ["SdkBenchConfig", "bench_sdk", "gzipped_size", "run"]
