"""`engage chaos` / `make chaos`: stream a known set of events while workers, sinks, Kafka and ClickHouse fail,
then check per student that nothing is missing and nothing is counted twice.

Own servers on free ports under its own run directory, stopped by PID at the end. The steps:
1. Kafka, ClickHouse, the collector, 2 workers and 2 sink processes (``sink all``) start.
2. Simulated students' events go through the collector, spread over ``seconds``; meanwhile the fault schedule
   (``schedule.fault_schedule``) SIGTERMs and SIGKILLs workers and sinks, and restarts Kafka and ClickHouse
   once each; the supervisor restarts whatever died.
3. When the stream ended and every fault ran, everything is running again; once the workers and sinks have
   caught up (consumer groups without lag), ``verify`` compares every student with ``reference``.

The notify case (``notifiers`` > 0): the provider stand-ins (SMTP, FCM, Twilio; not faulted) run beside, every
student has a contact, and ``notify-1..N`` deliver the workers' intervention requests while each is SIGKILLed once
mid-stream (and lives through the Kafka restart); after they caught up too, ``notify_check`` checks that every
request owed by then reached a provider once or became a dead letter, never both, duplicates within their bound.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import shutil
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.process import free_ports
from deploy.providers.process import standin_settings, start_providers
from engage.chaos import notify_check
from engage.chaos.feed import FeedStats, client_batches, feed
from engage.chaos.notify_check import NotifyVerdict
from engage.chaos.reference import Expected, expected_by_user
from engage.chaos.schedule import Fault, fault_schedule
from engage.chaos.servers import Clusters, OneNode, Servers
from engage.chaos.supervisor import Supervisor
from engage.chaos.verify import Verdict, verify
from engage.children import wait_http
from engage.simulator import Population, iter_event_days
from kafka_io.admin import Replication, ensure_topics, group_lag
from kafka_io.producer import EventProducer
from notifications.contacts import publish_contacts
from notifications.service import notify_group
from processors.gamification.rules import DEFAULT_RULES_PATH, rules_from_file
from processors.policy import policy_from_file
from schemas.contacts import Contact, PushToken
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import migrate
from sinks.clickhouse.tables import cluster_for
from sinks.positions import sink_lag

VERDICT_OK = "ALL-RECORDS-DELIVERED"
VERDICT_FAILED = "RECORDS-MISSING-OR-DOUBLED"
# A deferred request is owed once its send_after is this far in the past (the service polls every 0.2 s; a send
# takes well under a second against the stand-ins).
NOTIFY_MARGIN = timedelta(seconds=5)
FEED_BATCH = 50  # events per request the feed sends (a student's batches of one day go out concurrently)


@dataclass(frozen=True)
class ChaosConfig:
    students: int = 1_000
    days: int = 21
    seconds: float = 180.0  # how long the events stream (and the faults run)
    kills: int = 12  # SIGTERM/SIGKILLs of workers and sinks, besides the one during the ClickHouse outage
    seed: int = 2026
    workers: int = 2
    sinks: int = 2
    notifiers: int = 2  # `engage notify` processes (0: no notify case)
    broken_sink: bool = False  # run ``engage.chaos.broken_sink`` (commits before inserting) instead
    double_emitting_worker: bool = False  # run ``engage.chaos.broken_worker`` (each output twice, two ids) instead
    settle_timeout: float = 240.0
    run_dir: Path | None = None  # default .run/chaos-<tag>
    cache_dir: Path | None = None
    clusters: bool = False  # three brokers and a 2 x 2 ClickHouse cluster (``servers.Clusters``) instead of one each


@dataclass
class FaultRun:
    fault: Fault
    at: float  # when it actually ran, seconds after the stream started
    effect: str


@dataclass
class ChaosReport:
    config: ChaosConfig
    faults: list[FaultRun] = field(default_factory=list)
    feed: FeedStats = field(default_factory=FeedStats)
    restarts: dict[str, int] = field(default_factory=dict)
    settle_seconds: float = 0.0
    settle_waits: Counter[str] = field(default_factory=Counter)  # what settling waited for, in 2 s turns
    stuck: bool = False  # workers, sinks or notifiers never caught up (their lag never reached 0)
    verdict: Verdict | None = None
    notify: NotifyVerdict | None = None  # the notify case (None: no notifiers, or the run did not get there)

    @property
    def delivered(self) -> bool:
        ok = self.verdict is not None and self.verdict.delivered
        notified = not self.config.notifiers or (self.notify is not None and self.notify.delivered)
        return ok and notified and self.feed.lost_batches == 0 and not self.stuck


def _settings(config: ChaosConfig, ports: list[int]) -> Settings:
    """The run's settings; ``ports``: five free ports (Kafka, its controller, ClickHouse native and HTTP, collector)."""
    tag = uuid.uuid4().hex[:8]
    base = Settings()
    kafka, controller, clickhouse, clickhouse_http, collector = ports
    return base.model_copy(
        update={
            "run_dir": config.run_dir or PROJECT_ROOT / ".run" / f"chaos-{tag}",
            "cache_dir": config.cache_dir or base.cache_dir,
            "kafka_port": kafka,
            "kafka_controller_port": controller,
            "kafka_heap": "768m",
            "clickhouse_port": clickhouse,
            "clickhouse_http_port": clickhouse_http,
            "clickhouse_database": f"chaos_{tag}",
            "topic_prefix": f"chaos-{tag}",
            "collector_port": collector,
            "sink_metrics_port": 0,
            "sink_batch_seconds": 0.5,
        }
    )


def _population(config: ChaosConfig) -> Population:
    """The simulated students, their days ending two days ago (no event can look like the future)."""
    end = date.today() - timedelta(days=2)
    return Population.generate(config.students, seed=config.seed, start=end - timedelta(days=config.days - 1))


def _events(population: Population, config: ChaosConfig) -> list[list[dict[str, Any]]]:
    """The known set: every simulated student-day."""
    return [events for _, events in iter_event_days(population, config.days)]


def _unordered(days: list[list[dict[str, Any]]]) -> list[list[str]]:
    """The events the feed cannot promise to deliver in order: a student's events of one day when they take more
    than one batch (the feed sends a day's batches over several connections at once); the reference treats
    each group as arriving in any order (``reference.expected_by_user``)."""
    out = []
    for events in days:
        per_user: dict[str, list[list[dict[str, Any]]]] = {}
        for batch in client_batches(events, FEED_BATCH):
            per_user.setdefault(batch[0]["user_id"], []).append(batch)
        out += [[e["event_id"] for b in batches for e in b] for batches in per_user.values() if len(batches) > 1]
    return out


def _notify_policy(run_dir: Path) -> Path:
    """The shipped policy without quiet hours and with send-time optimisation for the low tier only: most requests
    go out at once (``send``), so sends are in flight while the notifiers are SIGKILLed, and the low tier's are
    deferred to the student's best slot (hours away: they must stay scheduled in the ledger)."""
    policy = policy_from_file().model_copy(update={"quiet_hours": None, "send_time_tiers": ["low"]})
    path = run_dir / "policy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(policy.model_dump_json(indent=2), encoding="utf-8")
    return path


def _contacts(population: Population, seed: int) -> list[Contact]:
    """A contact per student: a verified e-mail for all, push tokens for about a third. No phone numbers: the
    Twilio record carries no intervention id, so an SMS sent twice could not be told from two SMS; without them
    every send lands where it names its request (e-mail header, push data, the inbox item's id)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for s in population.students:
        tokens = (
            [PushToken(token=f"chaos-{s.user_id}", platform="android", registered_at=now)]
            if rng.random() < 1 / 3
            else []
        )
        out.append(
            Contact(
                user_id=s.user_id,
                email=f"{s.user_id}@students.example",
                email_verified=True,
                push_tokens=tokens,
                locale=s.locale,
                timezone=s.timezone,
            )
        )
    return out


class _Chaos:
    def __init__(self, config: ChaosConfig, console: Console) -> None:
        self.config = config
        self.console = console
        ports = free_ports(5 + config.workers + 3)  # all at once: see free_ports
        # Every process gets the same settings: the notifiers' channels point at the stand-ins.
        settings = standin_settings(_settings(config, ports[:5]), (ports[-3], ports[-2], ports[-1]))
        if config.notifiers:
            settings = settings.model_copy(update={"policy_path": _notify_policy(settings.run_dir)})
        self.servers: Servers
        self.servers, self.settings = (Clusters if config.clusters else OneNode).of(settings)
        self.supervisor = Supervisor()
        self.report = ChaosReport(config)
        self.log_dir = self.settings.run_dir / "logs"
        self.worker_ports = ports[5 : 5 + config.workers]
        self.notifiers = [f"notify-{i}" for i in range(1, config.notifiers + 1)]
        self._starting: list[threading.Thread] = []  # servers starting again after their restart
        self._kill_sinks_at: float | None = None  # halfway through the ClickHouse outage

    # --- processes ---------------------------------------------------------------------------------------
    def _start_processes(self) -> None:
        env = settings_env(self.settings)
        py = sys.executable
        self.supervisor.add("collector", [py, "-m", "engage.cli", "collector"], env, self.log_dir / "collector.log")
        broken = self.config.double_emitting_worker
        run = ["-m", "engage.chaos.broken_worker" if broken else "engage.cli", "worker", "--loglevel", "info"]
        for i, port in enumerate(self.worker_ports, 1):
            worker_env = settings_env(self.settings.model_copy(update={"worker_web_port": port}))
            self.supervisor.add(f"worker-{i}", [py, *run], worker_env, self.log_dir / f"worker-{i}.log")
        sink = ["-m", "engage.chaos.broken_sink"] if self.config.broken_sink else ["-m", "engage.cli", "sink", "all"]
        for i in range(1, self.config.sinks + 1):
            self.supervisor.add(f"sink-{i}", [py, *sink], env, self.log_dir / f"sink-{i}.log")
        for name in self.notifiers:  # metrics port 0: none (two on one port would clash)
            argv = [py, "-m", "engage.cli", "notify", "--instance", name, "--metrics-port", "0"]
            self.supervisor.add(name, argv, env, self.log_dir / f"{name}.log")
        collector = self.supervisor.procs["collector"]
        assert collector.proc is not None
        wait_http(f"{self._collector_url}/readyz", collector.proc, log=collector.log)
        for i, port in enumerate(self.worker_ports, 1):
            worker = self.supervisor.procs[f"worker-{i}"]
            assert worker.proc is not None
            wait_http(f"http://127.0.0.1:{port}/healthz", worker.proc, timeout=90, log=worker.log)

    @property
    def _collector_url(self) -> str:
        return f"http://{self.settings.collector_host}:{self.settings.collector_port}"

    # --- faults ------------------------------------------------------------------------------------------
    def _apply(self, fault: Fault, started: float, step: str) -> float | None:
        """Run one step of a fault; for a server's stop, the time its start is due (seconds after ``started``)."""
        at = time.monotonic() - started
        due = None
        if fault.action in ("SIGTERM", "SIGKILL"):
            pid = self.supervisor.signal(fault.target, signal.Signals[fault.action])
            effect = f"pid {pid}" if pid else "already down (restarting)"
            self.report.faults.append(FaultRun(fault, at, effect))
        else:
            t0 = time.monotonic()
            if step == "stop":
                if fault.target == "kafka" and self.servers.holds_workers_during_kafka_outage:
                    self.supervisor.paused = True  # a worker started without Kafka only dies again
                effect = f"{self.servers.fail(fault.target)} in {time.monotonic() - t0:.1f} s"
                due = time.monotonic() - started + fault.down_seconds
                self.report.faults.append(FaultRun(fault, at, effect))
                if fault.target == "clickhouse":
                    self._kill_sinks_at = due - fault.down_seconds / 2
            else:  # in the background: other faults keep their times while the server starts (Kafka: ~20 s)
                run = next(r for r in reversed(self.report.faults) if r.fault is fault)
                run.effect += f"; down {at - run.at:.1f} s"
                thread = threading.Thread(target=self._start_server, args=(fault, run, started))
                thread.start()
                self._starting.append(thread)
                effect = "starting again"
        self.console.print(f"  {at:6.1f} s  {fault.describe():<40} {effect}")
        return due

    def _start_server(self, fault: Fault, run: FaultRun, started: float) -> None:
        t0 = time.monotonic()
        took = self.servers.recover(fault.target)
        if fault.target == "kafka":
            self.supervisor.paused = False
        run.effect += f"{took}; ready {time.monotonic() - t0:.1f} s after its start"
        self.console.print(f"  {time.monotonic() - started:6.1f} s  {fault.target} ready again")

    def _wait(self, seconds: float, started: float) -> None:
        """Sleep while supervising (restarting what died)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name in self.supervisor.tick():
                self.console.print(f"  {time.monotonic() - started:6.1f} s  restarted {name}")
            time.sleep(0.1)

    def _run_faults(self, schedule: list[Fault], started: float, feeding: threading.Thread) -> None:
        """Each fault at its time; a server comes back ``down_seconds`` after it stopped, while other faults
        (the sink killed during the ClickHouse outage) keep their own times."""
        steps: list[tuple[float, int, str, Fault]] = [(f.at, i, "stop", f) for i, f in enumerate(schedule)]
        heapq.heapify(steps)
        while steps or feeding.is_alive() or any(t.is_alive() for t in self._starting):
            if self._kill_sinks_at is not None and time.monotonic() - started >= self._kill_sinks_at:
                self._kill_sinks_at = None
                for name in self.supervisor.procs:
                    if name.startswith("sink-"):
                        self._apply(Fault(time.monotonic() - started, "SIGKILL", name), started, "kill")
                continue
            if steps and time.monotonic() - started >= steps[0][0]:
                if steps[0][3].action == "restart-clickhouse" and steps[0][2] == "stop" and self.supervisor.paused:
                    self._wait(0.1, started)  # Kafka is not back yet: no events would flow during the outage
                    continue
                _, i, step, fault = heapq.heappop(steps)
                due = self._apply(fault, started, step)
                if due is not None:
                    heapq.heappush(steps, (due, i, "start", fault))
                continue
            self._wait(0.1, started)

    # --- settle and verify -------------------------------------------------------------------------------
    def _notify_owes(self) -> int:
        """Requests the notifiers have not taken in yet (group lag) plus those the ledger holds as due by now
        (deferred or capped requests whose time passed, allowing ``NOTIFY_MARGIN`` for the send itself)."""
        if not self.notifiers:
            return 0
        topics = catalogue(self.settings.topic_prefix, self.settings.event_partitions)
        lag = group_lag(self.settings.kafka, notify_group(self.settings), topics.interventions.name)
        ledger = notify_check.read_ledger(self.settings.kafka, topics.notification_ledger.name)
        return lag + notify_check.owed_now(ledger, datetime.now(UTC) - NOTIFY_MARGIN)

    def _settle(self) -> float:
        """Until every process runs and the workers, sinks and notifiers have committed everything (twice in a
        row), and the notifiers owe no due request."""
        started = time.monotonic()
        topics = catalogue(self.settings.topic_prefix, self.settings.event_partitions)
        group = f"{self.settings.topic_prefix}-worker"
        calm = 0
        waited = self.report.settle_waits
        while time.monotonic() - started < self.config.settle_timeout:
            self._wait(2.0, started)
            if not all(m.running for m in self.supervisor.procs.values()):
                calm = 0
                waited["a process restarting"] += 1
                continue
            try:
                lags = {
                    "workers": group_lag(self.settings.kafka, group, topics.events.name),
                    "sinks": sum(sink_lag(self.settings).values()),
                    "notifiers": self._notify_owes(),
                }
            except Exception as exc:
                calm = 0
                waited[f"{type(exc).__name__} reading the lag"] += 1
                continue
            waited.update(name for name, n in lags.items() if n)
            calm = calm + 1 if not any(lags.values()) else 0
            if calm >= 2:
                return time.monotonic() - started
        self.report.stuck = True
        return time.monotonic() - started

    def _verify(self, expected_at: Callable[[datetime], dict[str, Expected]]) -> Verdict:
        """Verify; while something differs, look again a few times (debounced re-scores, sink batch windows).

        Each look takes the reference at its own instant: streaks and windows count to the student's 'today', which
        a local midnight between the reference and the workers' answers would move on one side only."""
        headers = {"Authorization": f"Bearer {self.settings.server_keys[0].partition(':')[2]}"}
        url = f"http://127.0.0.1:{self.worker_ports[0]}"
        client = connect(self.settings)
        topics = catalogue(self.settings.topic_prefix, self.settings.event_partitions)
        outputs = {
            "risk_updates": topics.risk_updates.name,
            "intervention_requests": topics.interventions.name,
            "streak_milestones": topics.streak_milestones.name,
        }

        def check() -> Verdict:
            return verify(
                expected_at(datetime.now(UTC)),
                url,
                headers,
                client,
                self.settings.clickhouse_database,
                bootstrap=self.settings.kafka,
                output_topics=outputs,
                game_topics=(topics.xp_awards.name, topics.achievements.name),
            )

        verdict = check()
        for _ in range(5):
            if verdict.delivered:
                break
            self._wait(3.0, time.monotonic())
            verdict = check()
        return verdict

    def _verify_notify(self, record_dir: Path) -> NotifyVerdict:
        """The notify case (``notify_check``): what was owed at the cutoff against what the providers accepted."""
        s, topics = self.settings, catalogue(self.settings.topic_prefix, self.settings.event_partitions)
        cutoff = datetime.now(UTC) - NOTIFY_MARGIN
        requests = notify_check.read_requests(s.kafka, topics.interventions.name)
        ledger = notify_check.read_ledger(s.kafka, topics.notification_ledger.name)
        outcomes = notify_check.read_outcomes(s.kafka, topics.intervention_outcomes.name)
        sends = notify_check.read_sends(record_dir, s.inbox)
        crashes = sum(len(self.supervisor.procs[name].exits) for name in self.notifiers)
        return notify_check.judge(
            notify_check.plan(requests, ledger, cutoff),
            sends,
            outcomes.get("dead_lettered", set()),
            outcomes.get("digested", set()),
            crashes,
            s.notify_max_in_flight,
        )

    # --- the run -----------------------------------------------------------------------------------------
    def run(self) -> ChaosReport:
        config, console = self.config, self.console
        broken = [what for what, on in (("sink", config.broken_sink), ("worker", config.double_emitting_worker)) if on]
        where = " on 3 Kafka brokers and a 2 x 2 ClickHouse cluster" if config.clusters else ""
        console.rule(f"[bold]chaos run{where}{''.join(f' with a deliberately broken {what}' for what in broken)}")
        s = self.settings
        try:  # the servers stop whatever fails, their own start included (down() stops every recorded pid)
            for started_server in self.servers.up():
                console.print(f"  {started_server.name:<11} pid {started_server.pid}")
            topics = catalogue(s.topic_prefix, s.event_partitions).all()
            ensure_topics(s.kafka, topics, replication=Replication(*s.kafka_replication))
            migrate(connect(s), s.clickhouse_database, cluster_for(s.clickhouse_cluster))
            record_dir = self.settings.run_dir / "providers"
            population = _population(config)
            with ExitStack() as stack:  # the stand-ins stop after everything that could send to them
                try:
                    if self.notifiers:
                        providers = stack.enter_context(start_providers(self.settings, record_dir))
                        console.print(f"  providers   pid {providers.proc.pid} (SMTP, FCM, Twilio stand-ins)")
                        self._publish_contacts(population)
                    self._run_stream(population, record_dir)
                finally:
                    self.report.restarts = {name: m.starts - 1 for name, m in self.supervisor.procs.items()}
                    self.supervisor.stop_all()
        finally:
            self.servers.down()
        return self.report

    def _publish_contacts(self, population: Population) -> None:
        topics = catalogue(self.settings.topic_prefix, self.settings.event_partitions)
        producer = EventProducer(self.settings.kafka, topics, source="chaos")
        try:
            contacts = _contacts(population, self.config.seed)
            if publish_contacts(producer, topics.contacts.name, contacts):
                raise RuntimeError("Kafka did not acknowledge the students' contacts")
        finally:
            producer.close()

    def _run_stream(self, population: Population, record_dir: Path) -> None:
        config, console = self.config, self.console
        self._start_processes()
        days = _events(population, config)
        workers = [f"worker-{i}" for i in range(1, config.workers + 1)]
        sinks = [f"sink-{i}" for i in range(1, config.sinks + 1)]
        schedule = fault_schedule(config.seed, config.seconds, workers, sinks, config.kills, notifiers=self.notifiers)
        console.print(
            f"  streaming {sum(map(len, days)):,} events of {config.students:,} students x {config.days} days "
            f"over {config.seconds:.0f} s through the collector; {len(schedule)} faults scheduled (seed "
            f"{config.seed}); logs in {self.log_dir}"
        )
        key = self.settings.write_keys[0].partition(":")[2]
        stats = self.report.feed
        feeding = threading.Thread(
            target=lambda: asyncio.run(
                feed(
                    f"{self._collector_url}/v1/events",
                    key,
                    days,
                    config.seconds,
                    stats,
                    seed=config.seed,
                    batch_size=FEED_BATCH,
                )
            ),
            name="chaos-feed",
            daemon=True,  # a run that times out or is interrupted must not be kept alive by its feed
        )
        started = time.monotonic()
        feeding.start()
        self._run_faults(schedule, started, feeding)
        feeding.join()
        console.print(
            f"  stream done in {stats.seconds:.0f} s: {len(stats.accepted_ids):,} events accepted, "
            f"{stats.retries:,} requests retried, {stats.sent_twice} batches sent twice on purpose"
        )
        self.report.settle_seconds = self._settle()
        if self.report.stuck:
            console.print(
                f"  [red]workers, sinks and notifiers did not catch up in {config.settle_timeout:.0f} s[/red] "
                f"(waited for: {dict(self.report.settle_waits)})"
            )
        else:
            console.print(
                f"  workers, sinks and notifiers caught up {self.report.settle_seconds:.0f} s after the stream"
                + (f" (waited for: {dict(self.report.settle_waits)})" if self.report.settle_waits else "")
            )
        accepted = stats.accepted_ids
        rules = rules_from_file(self.settings.gamification_rules_path or DEFAULT_RULES_PATH)  # the workers' rules
        unordered, sent = _unordered(days), [e for day in days for e in day if e["event_id"] in accepted]

        def expected_at(now: datetime) -> dict[str, Expected]:
            return expected_by_user(sent, now, rules, unordered)

        self.report.verdict = self._verify(expected_at)
        if self.notifiers:
            self.report.notify = self._verify_notify(record_dir)


def run_chaos(config: ChaosConfig, console: Console) -> ChaosReport:
    chaos = _Chaos(config, console)
    report = chaos.run()
    show(report, console)
    if report.delivered:  # keep the logs; the servers' data (~0.5 GB a full run) only matters when a run failed
        for path in chaos.settings.run_dir.iterdir():
            if path.is_dir() and path.name != "logs":
                shutil.rmtree(path, ignore_errors=True)
    else:
        console.print(f"  everything of the run is kept for inspection in {chaos.settings.run_dir}")
    return report


def show(report: ChaosReport, console: Console) -> None:
    """The fault schedule that ran, what survived it, the per-check verdict, and the final line."""
    faults = Table(title="Faults survived", title_justify="left")
    for col in ("at", "fault", "target", "effect"):
        faults.add_column(col)
    for run in report.faults:
        faults.add_row(f"{run.at:.1f} s", run.fault.action, run.fault.target, run.effect)
    console.print(faults)
    console.print("  restarts by the supervisor: " + ", ".join(f"{k} {v}" for k, v in report.restarts.items()))
    verdict = report.verdict
    if verdict is None:
        console.print(f"[bold red]{VERDICT_FAILED}[/bold red] (no verdict: the run did not finish)")
        return
    checks = Table(title=f"Per student checks ({verdict.users:,} students)", title_justify="left")
    checks.add_column("check")
    checks.add_column("students wrong", justify="right")
    for name, wrong in verdict.by_check().items():
        checks.add_row(name, f"[red]{wrong}[/red]" if wrong else "0")
    console.print(checks)
    for name, value in verdict.totals.items():
        console.print(f"  {name}: {value:,}")
    if verdict.skipped:  # the feed let these students' events arrive out of order where the order decides
        skips = ", ".join(f"{check} {n}" for check, n in sorted(verdict.skipped.items()))
        console.print(f"  skipped where the arrival order decides (students): {skips}")
    else:
        console.print("  skipped where the arrival order decides: none")
    for d in verdict.differences[:10]:
        console.print(f"  [red]{d.user_id}[/red] {d.check}: expected {d.expected}, found {d.observed}")
    if report.notify is not None:
        if report.notify.delivered:
            console.print("  [green]notify: every owed request sent once or dead-lettered, within the bound[/green]")
        else:
            console.print("  [red]notify: requests lost, doubled beyond the bound, or sent and dead-lettered[/red]")
        for line in report.notify.lines():
            console.print(f"    {line}")
        check = report.notify.check
        for what, ids in (("lost", report.notify.lost), ("sent and dead-lettered", check.sent_and_dead),
                          ("unexpected", check.unexpected)):  # fmt: skip
            if ids:
                console.print(f"    [red]{what}:[/red] {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")
    elif report.config.notifiers:
        console.print("  [red]notify: no verdict[/red]")
    if report.stuck:
        console.print("  [red]the workers, sinks or notifiers never caught up with the stream (see the logs)[/red]")
    if report.feed.lost_batches:
        console.print(f"  [red]{report.feed.lost_batches} batches never accepted by the collector[/red]")
    console.print(
        f"[bold green]{VERDICT_OK}[/bold green]" if report.delivered else f"[bold red]{VERDICT_FAILED}[/bold red]"
    )
