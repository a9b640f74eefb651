"""`engage bench leaderboard`: the leaderboard service at 1,000,000 students, on this machine, with a Kafka of the
bench's own (free ports, stopped by PID at the end).

1. ``students`` standings (one per student, generated as JSON: ``engage.bench.leaderboard_data``) are written to
   the standings topic; `engage leaderboards serve` starts as a child process and rebuilds from it: the rebuild
   time (the service's own ``engage_leaderboard_rebuild_seconds``), and its RSS beside an idle service's (same
   code, empty topic), which gives the memory per student. The served top 100 is checked against the one
   computed here from the generated data (a difference is a problem: exit 1).
2. While a child process streams ``rate`` standings/s, ``reads`` top-100 and ``reads`` random-student rank + 5
   neighbours requests go over HTTP (one keep-alive client, one request at a time, all-time global board: the
   1M-student one): p50/p99 against the aim (p99 < 50 ms), and whether the service kept up (its lag at the end).
3. Apply capacity: ``burst`` standings written at once; standings/s from the first write until all are applied.
4. The alternatives (``engage.bench.leaderboard_alternatives``), same students: SortedList in-process, a plain
   sorted list with bisect, and ClickHouse queries over a 1M-row table.
"""

from __future__ import annotations

import heapq
import json
import random
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from rich.console import Console

from config.settings import Settings, settings_env
from deploy import server
from deploy.infra import Infra
from deploy.process import free_port, free_ports
from engage.bench import leaderboard_alternatives as alt
from engage.bench.leaderboard_data import preload, standing, user_id
from engage.bench.report import Figure, Report, percentile
from engage.children import child, wait_http
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from schemas.topics import catalogue

AIM_MS = 50.0
SERVER_KEY = "sk_demo_backend"


@dataclass(frozen=True)
class LeaderboardBenchConfig:
    students: int = 1_000_000
    rate: int = 5_000  # standings/s streamed while reading
    reads: int = 3_000  # of each kind
    neighbours: int = 5
    burst: int = 200_000
    alternatives: bool = True
    alternative_runs: int = 2_000


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _answers(url: str) -> bool:
    """200 from ``url``; a slow answer (the service busy rebuilding) is a no, not an error."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TimeoutException:
        return False


def _metric(url: str, name: str) -> float:
    """Sum of a metric's samples on the service's /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


class Bench:
    def __init__(self, base: Settings, console: Console, cfg: LeaderboardBenchConfig) -> None:
        self.console, self.cfg = console, cfg
        run_id = uuid.uuid4().hex[:6]
        self.work = base.run_dir / f"bench-leaderboard-{run_id}"
        self.work.mkdir(parents=True, exist_ok=True)
        kafka, controller, ch, ch_http = free_ports(4)
        self.settings = base.model_copy(
            update={
                "run_dir": self.work,
                "kafka_port": kafka,
                "kafka_controller_port": controller,
                "clickhouse_port": ch,
                "clickhouse_http_port": ch_http,
                "topic_prefix": f"lb-{run_id}",
                "server_keys": [f"bench:{SERVER_KEY}"],
            }
        )
        self.day = datetime.now(UTC).date()
        self.report = Report(f"Leaderboards: {cfg.students:,} students, reads while {cfg.rate:,} standings/s stream in")

    @contextmanager
    def kafka(self) -> Iterator[None]:
        kafka = Infra.from_settings(self.settings).kafka
        started = server.start(kafka)
        self.console.print(f"kafka on 127.0.0.1:{self.settings.kafka_port}, ready in {started.seconds_to_ready:.1f} s")
        try:
            yield
        finally:
            server.stop(kafka)

    def topics_for(self, prefix: str) -> Settings:
        s = self.settings.model_copy(update={"topic_prefix": prefix, "leaderboard_port": free_port()})
        ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
        return s

    @contextmanager
    def service(self, s: Settings, name: str, ready_timeout: float = 900.0) -> Iterator[tuple[str, int]]:
        url, log = f"http://127.0.0.1:{s.leaderboard_port}", self.work / f"{name}.log"
        with child([sys.executable, "-m", "engage.cli", "leaderboards", "serve"], log, settings_env(s)) as proc:
            wait_http(f"{url}/healthz", proc, timeout=60, log=log)
            deadline = time.monotonic() + ready_timeout
            while not _answers(f"{url}/readyz"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the leaderboard service did not become ready; see {log}")
                time.sleep(0.5)
            yield url, proc.pid

    # ---- 1. preload and rebuild ------------------------------------------------------------------------------
    def preload(self, s: Settings) -> list[int]:
        topics = catalogue(s.topic_prefix, s.event_partitions)
        totals: list[int] = []
        started = time.monotonic()
        with EventProducer(s.kafka, topics, source="bench-leaderboard") as producer:
            for key, value, total in preload(self.cfg.students, self.day):
                producer.send_encoded(key, value, topic=topics.standings.name)
                totals.append(total)
            if producer.flush(300) or producer.stats.failed:
                raise RuntimeError(f"Kafka did not take the preload ({producer.stats.last_error})")
        self.console.print(f"preloaded {len(totals):,} standings in {time.monotonic() - started:.1f} s")
        return totals

    def check_top(self, url: str, totals: list[int]) -> None:
        expected = heapq.nsmallest(100, ((-t, user_id(i)) for i, t in enumerate(totals)))
        got = httpx.get(f"{url}/v1/leaderboards/global/all?limit=100", headers=self._auth, timeout=30).json()
        served = [(-r["xp"], r["user_id"]) for r in got["rows"]]
        if served != expected or got["students"] != len(totals):
            self.report.problems.append(f"served top 100 / size differ from the generated data ({got['students']:,})")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {SERVER_KEY}"}

    # ---- 2. reads under load ---------------------------------------------------------------------------------
    def reads(self, url: str) -> tuple[list[float], list[float], int]:
        rng = random.Random(5)
        top: list[float] = []
        position: list[float] = []
        errors = 0
        with httpx.Client(base_url=url, headers=self._auth, timeout=10) as client:
            for i in range(2 * self.cfg.reads):
                if i % 2:
                    path = f"/v1/leaderboards/global/all/users/{user_id(rng.randrange(self.cfg.students))}"
                    path += f"?neighbours={self.cfg.neighbours}"
                else:
                    path = "/v1/leaderboards/global/all?limit=100"
                started = time.perf_counter()
                answer = client.get(path)
                spent = time.perf_counter() - started
                errors += answer.status_code != 200
                (position if i % 2 else top).append(spent)
        return top, position, errors

    def run(self) -> Report:
        cfg, rep = self.cfg, self.report
        with self.kafka():
            idle_settings = self.topics_for(f"{self.settings.topic_prefix}-idle")
            with self.service(idle_settings, "idle") as (_url, pid):
                idle_rss = _rss(pid)
            s = self.topics_for(f"{self.settings.topic_prefix}-main")
            totals = self.preload(s)
            started = time.monotonic()
            with self.service(s, "service") as (url, pid):
                wall = time.monotonic() - started
                rebuild = _metric(url, "engage_leaderboard_rebuild_seconds")
                rss = _rss(pid)
                self.check_top(url, totals)
                rep.add(Figure("rebuild from the topic", rebuild, "s", aim="(1M standings)",
                               notes=f"{cfg.students / rebuild:,.0f} standings/s; process start to ready "
                                     f"{wall:.1f} s"))  # fmt: skip
                rep.add(Figure("service RSS after rebuild", rss / 2**20, "MiB", "idle service", idle_rss / 2**20))
                per = (rss - idle_rss) / cfg.students
                notes = "all boards: global + 1-2 courses x all/day/week, dicts and sorted lists"
                rep.add(Figure("memory per student", per, "bytes", aim="design figure", notes=notes))
                self._under_load(s, url, pid)
                self._burst(s, url)
                rep.add(Figure("service RSS at the end", _rss(pid) / 2**20, "MiB"))
        if cfg.alternatives:
            self._alternatives(totals)
        rep.context = {"config": cfg.__dict__, "day": self.day.isoformat(), "work": str(self.work)}
        return rep

    def _under_load(self, s: Settings, url: str, pid: int) -> None:
        cfg, rep = self.cfg, self.report
        seconds = max(30.0, cfg.reads * 2 * 0.004 + 10)  # enough to cover the reads with margin
        out = self.work / "stream.json"
        argv = [sys.executable, "-m", "engage.bench.leaderboard_data", "stream", str(s.kafka), s.topic_prefix,
                str(s.event_partitions), str(cfg.students), str(cfg.rate), str(seconds), str(out)]  # fmt: skip
        applied_before = _metric(url, 'engage_leaderboard_standings_total{outcome="applied"}')
        with child(argv, self.work / "stream.log") as streamer:
            time.sleep(3.0)  # the stream at its pace before the first read
            t0 = time.monotonic()
            top, position, errors = self.reads(url)
            read_seconds = time.monotonic() - t0
            rss_under_load = _rss(pid)
            code = streamer.wait(timeout=seconds + 120)
        if code != 0:
            raise RuntimeError(f"the stream exited with {code}; see {self.work / 'stream.log'}")
        sent = json.loads(out.read_text())
        target = applied_before + sent["sent"]
        ended = time.monotonic()
        while _metric(url, 'engage_leaderboard_standings_total{outcome="applied"}') < target:
            if time.monotonic() - ended > 120:
                rep.problems.append("the service did not apply every streamed standing within 120 s")
                break
            time.sleep(0.1)
        behind = time.monotonic() - ended
        for name, times in (("top 100", top), (f"rank + {cfg.neighbours} neighbours", position)):
            p50, p99 = percentile(times, 0.5) * 1000, percentile(times, 0.99) * 1000
            rep.add(Figure(f"{name}: p50", p50, "ms", aim=f"p99 < {AIM_MS:.0f} ms"))
            rep.add(Figure(f"{name}: p99", p99, "ms", aim=f"< {AIM_MS:.0f} ms {'met' if p99 < AIM_MS else 'MISSED'}",
                           notes=f"{len(times):,} reads over HTTP, max {max(times) * 1000:.1f} ms"))  # fmt: skip
        if errors:
            rep.problems.append(f"{errors} reads were not answered 200")
        rep.add(Figure("standings streamed during the reads", sent["sent"] / sent["seconds"], "/s",
                       aim=f"offered {cfg.rate:,}/s", notes=f"{sent['sent']:,} in {sent['seconds']:.1f} s; reads "
                       f"took {read_seconds:.1f} s; all applied {behind:.1f} s after the stream ended"))  # fmt: skip
        rep.add(Figure("service RSS under load", rss_under_load / 2**20, "MiB"))

    def _burst(self, s: Settings, url: str) -> None:
        cfg = self.cfg
        topics = catalogue(s.topic_prefix, s.event_partitions)
        rng = random.Random(11)
        before = _metric(url, 'engage_leaderboard_standings_total{outcome="applied"}')
        started = time.monotonic()
        with EventProducer(s.kafka, topics, source="bench-leaderboard-burst") as producer:
            for n in range(cfg.burst):
                key, value, _ = standing(rng, rng.randrange(cfg.students), 100_000_000 + n, self.day)
                producer.send_encoded(key, value, topic=topics.standings.name)
            producer.flush(120)
        written = time.monotonic() - started
        applied = before
        while applied < before + cfg.burst and time.monotonic() - started < 600:
            time.sleep(0.05)
            applied = _metric(url, 'engage_leaderboard_standings_total{outcome="applied"}')
        spent = time.monotonic() - started
        self.report.add(Figure("apply capacity (burst)", (applied - before) / spent, "standings/s",
                               aim=f">= {cfg.rate:,}/s", notes=f"{cfg.burst:,} written in {written:.1f} s, all "
                               f"applied after {spent:.1f} s"))  # fmt: skip

    def _alternatives(self, totals: list[int]) -> None:
        runs, rep = self.cfg.alternative_runs, self.report
        self.console.print("alternatives: SortedList and a plain sorted list in-process, then ClickHouse ...")
        for measured in (alt.sorted_list(totals, runs), alt.plain_list(totals, runs)):
            rep.add(Figure(f"{measured.name}: change p99", measured.change.p99_ms * 1000, "µs",
                           notes=f"p50 {measured.change.p50_ms * 1000:.1f} µs; built in "
                                 f"{measured.build_seconds:.1f} s"))  # fmt: skip
            rep.add(Figure(f"{measured.name}: rank+neighbours p99", measured.rank.p99_ms * 1000, "µs",
                           notes=f"p50 {measured.rank.p50_ms * 1000:.1f} µs"))  # fmt: skip
        ch = alt.clickhouse(self.settings, totals, max(50, runs // 10))
        rep.add(Figure("ClickHouse 1 row/student: top 100 p99", ch.top100.p99_ms, "ms",
                       notes=f"p50 {ch.top100.p50_ms:.1f} ms; 1M rows loaded in {ch.load_seconds:.1f} s"))  # fmt: skip
        rep.add(Figure("ClickHouse 1 row/student: rank p99", ch.rank.p99_ms, "ms",
                       notes=f"p50 {ch.rank.p50_ms:.1f} ms (rank only: neighbours are two more queries)"))  # fmt: skip
        rep.add(Figure("ClickHouse argMax over updates: top 100 p99", ch.top100_argmax.p99_ms, "ms",
                       notes=f"p50 {ch.top100_argmax.p50_ms:.1f} ms; 1M + 50k appended standings"))  # fmt: skip
        rep.add(Figure("ClickHouse argMax over updates: rank p99", ch.rank_argmax.p99_ms, "ms",
                       notes=f"p50 {ch.rank_argmax.p50_ms:.1f} ms"))  # fmt: skip


def run(base: Settings, console: Console, out: Path, cfg: LeaderboardBenchConfig) -> Report:
    report = Bench(base, console, cfg).run()
    report.print(console)
    for problem in report.problems:
        console.print(f"[red]problem:[/red] {problem}")
    console.print(f"results: {report.save(out)}")
    return report
