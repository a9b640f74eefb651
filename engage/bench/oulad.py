"""`engage bench oulad`: real students through the live pipeline, a model trained on some presentations and
judged on others, beside the heuristic, per cut-off day.

1. Replays the training and the test presentations (merged in event-time order, compressed in time) into a
   fresh topic set; one worker (event clock) computes signals and daily snapshots, the sinks store them.
2. Trains on the training presentations' point-in-time rows (``engage model train`` with a split by group).
3. For each cut-off day d and each test enrolment registered at d (registered on or before d, not yet
   unregistered), takes the snapshot the live system stored for day d and scores it with the heuristic and
   with the model (the scorer's own code), then reports ROC AUC and PR AUC for two labels: A = final result
   Withdrawn, B = unregisters within 30 days after d.
"""

from __future__ import annotations

import heapq
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from config.settings import Settings, settings_env
from deploy.process import free_port
from engage.chaos.supervisor import Supervisor
from engage.children import wait_for_sinks, wait_http
from engage.oulad.dataset import Enrolment, OuladDataset
from engage.oulad.mapping import MappingReport
from engage.oulad.replay import publish_calendars, replay_days
from kafka_io.admin import ensure_topics, group_lag
from kafka_io.producer import EventProducer
from models.features import snapshot_from_row
from models.heuristic import HeuristicModel
from models.lightgbm_model import LightGBMRiskModel
from models.metrics import pr_auc, roc_auc
from models.registry import ModelRegistry
from models.training import TrainConfig, train
from models.training_data import Warehouse, build, load_warehouse
from schemas.topics import catalogue
from sinks.clickhouse.client import connect
from sinks.clickhouse.migrations import migrate

CUTOFFS = (14, 28, 56, 84, 126)
LOOK_BACK_DAYS = 8  # a cut-off takes the student's newest snapshot of that day or the 7 before
TRAIN = ("BBB-2013B", "DDD-2013B", "FFF-2013B")
TEST = ("AAA-2013J", "BBB-2013J", "DDD-2013J", "EEE-2013J", "FFF-2013J", "GGG-2013J")


@dataclass(frozen=True)
class OuladBenchConfig:
    train_dir: Path
    test_dir: Path
    train_presentations: tuple[str, ...] = TRAIN
    test_presentations: tuple[str, ...] = TEST
    day_seconds: float = 1.0
    cutoffs: tuple[int, ...] = CUTOFFS
    reuse_database: str | None = None  # evaluate a finished replay again (another model), without replaying
    in_course_only: bool = True  # train on the days the cut-offs ask about: courses running (TrainConfig)
    tune: bool = True  # the model's settings by cross-validation grouped by training presentation (TrainConfig)
    monotone: bool = True  # monotone constraints where the direction is known (TrainConfig)


@dataclass
class CutoffResult:
    day: int
    label: str
    population: int
    positive_rate: float
    roc_auc: dict[str, float] = field(default_factory=dict)
    pr_auc: dict[str, float] = field(default_factory=dict)


def _merged(*streams: Iterator[tuple[date, list[dict[str, Any]]]]) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    """Several replays as one, day by day (presentations of both sets overlap in time)."""
    current: date | None = None
    bucket: list[dict[str, Any]] = []
    for day, events in heapq.merge(*streams, key=lambda item: item[0]):
        if current is not None and day != current:
            yield current, bucket
            bucket = []
        current = day
        bucket.extend(events)
    if current is not None:
        yield current, bucket


def _replay(settings: Settings, config: OuladBenchConfig, train: OuladDataset, test: OuladDataset,
            console: Console, log_dir: Path) -> MappingReport:  # fmt: skip
    """Replay both sets into the pipeline and wait until the worker and the sinks caught up.

    The worker and the sinks run under a supervisor, as systemd or Kubernetes would run them: one that exits
    (code 75: Kafka did not acknowledge its state) is started again, resumes from the state Kafka holds, and the
    restart is reported; the replay goes on meanwhile (Kafka keeps the events)."""
    report = MappingReport()
    env = settings_env(settings)
    url = f"http://{settings.worker_host}:{settings.worker_web_port}"
    supervisor = Supervisor(restart_delay=1.0)
    try:
        worker = supervisor.add("worker", [sys.executable, "-m", "engage.cli", "worker"], env, log_dir / "worker.log")
        supervisor.add("sinks", [sys.executable, "-m", "engage.cli", "sink", "all"], env, log_dir / "sink.log")
        assert worker.proc is not None
        wait_http(f"{url}/healthz", worker.proc, timeout=90, log=log_dir / "worker.log")
        topics = catalogue(settings.topic_prefix, settings.event_partitions)
        started = time.monotonic()
        sent = days = 0
        with EventProducer(settings.kafka, topics, source="oulad-bench") as producer:
            publish_calendars(producer, train)
            publish_calendars(producer, test)
            for day, events in _merged(replay_days(train, report), replay_days(test, report)):
                day_started = time.monotonic()
                producer.send(events)
                sent += len(events)
                days += 1
                _supervise(supervisor, console)
                if days % 50 == 0:
                    lag = group_lag(settings.kafka, f"{settings.topic_prefix}-worker", topics.events.name)
                    console.print(
                        f"  {day}: {sent:,} events sent, {time.monotonic() - started:.0f} s, worker lag {lag:,}"
                    )
                time.sleep(max(0.0, config.day_seconds - (time.monotonic() - day_started)))
            if producer.flush(120):
                raise RuntimeError("Kafka did not acknowledge every replayed event")
        sending = time.monotonic() - started
        _wait_caught_up(settings, topics.events.name, supervisor, console, timeout=max(3600.0, sent / 200))
        time.sleep(3 * settings.silence_tick_seconds + 2)  # the last day's silence pass and debounced scores
        restarts = {m.name: m.starts - 1 for m in supervisor.procs.values() if m.starts > 1}
        console.print(
            f"  replayed {sent:,} events over {days} days: sent in {sending:.0f} s, folded after "
            f"{time.monotonic() - started:.0f} s; restarts: {restarts or 'none'}"
        )
        wait_for_sinks(settings, timeout=600)
    finally:
        supervisor.stop_all()
    return report


def _supervise(supervisor: Supervisor, console: Console) -> None:
    """Restart what exited (after the supervisor's delay), and say so with the exit code."""
    for name in supervisor.tick():
        managed = supervisor.procs[name]
        console.print(f"  [yellow]{name} exited with {managed.exits[-1]}: restarted ({managed.starts - 1} so far)[/]")


def _wait_caught_up(settings: Settings, topic: str, supervisor: Supervisor, console: Console, timeout: float) -> None:
    """Until the workers' group committed every event (a worker commits only what its state holds durably), whoever
    runs it: the progress survives a restart, unlike a worker's own counters."""
    group, deadline = f"{settings.topic_prefix}-worker", time.monotonic() + timeout
    shown = time.monotonic()
    while (lag := group_lag(settings.kafka, group, topic)) > 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker still had {lag:,} messages to fold after {timeout:.0f} s")
        _supervise(supervisor, console)
        if time.monotonic() - shown > 60:
            console.print(f"  catching up: {lag:,} messages left")
            shown = time.monotonic()
        time.sleep(1.0)


def _finite(value: Any) -> Any:
    """NaN (e.g. an AUC with no positives) as null: JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _user_prefixes(presentations: tuple[str, ...]) -> tuple[str, ...]:
    """The product user ids of a presentation's enrolments start with this (``Enrolment.user_id``)."""
    return tuple(f"oulad-{key}-" for key in presentations)


def _cutoff_days(test: OuladDataset, cutoffs: tuple[int, ...]) -> set[date]:
    """The days whose snapshots ``evaluate`` may read: each cut-off of each presentation and the week before."""
    return {
        p.start + timedelta(days=d - back)
        for p in test.presentations.values()
        for d in cutoffs
        for back in range(LOOK_BACK_DAYS)
    }


def _registered_at(e: Enrolment, d: int) -> bool:
    return (
        e.registered_day is not None
        and e.registered_day <= d
        and (e.unregistered_day is None or e.unregistered_day > d)
    )


def _as_of(rows: dict[tuple[str, date], dict[str, Any]], user: str, day: date) -> dict[str, Any] | None:
    """The snapshot stored for ``day``, else the latest of the 7 days before (a replay running behind can skip
    a day's silence re-score; what was known then is still what was known on ``day``)."""
    for back in range(LOOK_BACK_DAYS):
        row = rows.get((user, day - timedelta(days=back)))
        if row is not None:
            return row
    return None


def evaluate(test: OuladDataset, rows: dict[tuple[str, date], dict[str, Any]], model: LightGBMRiskModel,
             cutoffs: tuple[int, ...]) -> list[CutoffResult]:  # fmt: skip
    heuristic = HeuristicModel()
    out = []
    for d in cutoffs:
        members, snapshots = [], []
        for e in test.enrolments.values():
            if not _registered_at(e, d):
                continue
            row = _as_of(rows, e.user_id, test.presentations[e.presentation].start + timedelta(days=d))
            if row is None:
                continue  # no snapshot in the week up to that day: nothing was known of the student yet
            members.append(e)
            snapshots.append(snapshot_from_row(row))
        h = np.asarray([a.risk_30d for a in heuristic.score_many(snapshots)])
        m = np.asarray([a.risk_30d for a in model.score_many(snapshots)])
        labels = {
            "A": np.asarray([int(e.withdrawn) for e in members]),
            "B": np.asarray(
                [int(e.unregistered_day is not None and d < e.unregistered_day <= d + 30) for e in members]
            ),
        }
        for name, y in labels.items():
            out.append(
                CutoffResult(
                    d, name, len(members), float(y.mean()) if len(y) else float("nan"),
                    {"heuristic": roc_auc(h, y), "model": roc_auc(m, y)},
                    {"heuristic": pr_auc(h, y), "model": pr_auc(m, y)},
                )
            )  # fmt: skip
    return out


def _settings(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {params[k]}" for k in ("num_leaves", "min_data_in_leaf", "feature_fraction") if k in params)


def run_oulad_bench(
    settings: Settings, config: OuladBenchConfig, console: Console, out: Path | None
) -> list[CutoffResult]:
    tag = config.reuse_database.removeprefix("oulad_") if config.reuse_database else uuid.uuid4().hex[:8]
    log_dir = settings.run_dir / f"bench-oulad-{tag}"
    s = settings.model_copy(
        update={
            "topic_prefix": f"oulad-{tag}",
            "clickhouse_database": f"oulad_{tag}",
            "worker_clock": "event",
            "worker_store": "memory://",
            "worker_web_port": free_port(),
            "silence_tick_seconds": max(0.1, config.day_seconds / 4),
            "score_debounce_seconds": min(0.3, config.day_seconds / 3),
            "model_registry_dir": log_dir / "models",
        }
    )
    train_data = OuladDataset.load(config.train_dir, config.train_presentations)
    test_data = OuladDataset.load(config.test_dir, config.test_presentations)
    report = MappingReport()
    if config.reuse_database is None:
        ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
        migrate(connect(s), s.clickhouse_database)
        console.print(
            f"replaying {len(train_data.enrolments):,} training and {len(test_data.enrolments):,} test enrolments "
            f"({config.day_seconds} s per day) into {s.topic_prefix}.* and {s.clickhouse_database} ..."
        )
        report = _replay(s, config, train_data, test_data, console, log_dir)
    else:
        console.print(f"evaluating the replay stored in {s.clickhouse_database} again")
    client = connect(s, s.clickhouse_database)
    # Every snapshot of the training presentations, but of the test ones only the days the cut-offs read: all
    # nine presentations' rows at once (3.4 million) would not fit in this machine's memory as Python rows.
    warehouse = load_warehouse(client, user_prefix=_user_prefixes(config.train_presentations))
    tested = load_warehouse(
        client, user_prefix=_user_prefixes(config.test_presentations), days=_cutoff_days(test_data, config.cutoffs)
    )
    warehouse = Warehouse(warehouse.rows + tested.rows, warehouse.outcomes | tested.outcomes, warehouse.data_end)
    training = build(warehouse)
    registry = ModelRegistry(s.model_registry)
    log_dir.mkdir(parents=True, exist_ok=True)
    train_config = TrainConfig(
        train_prefixes=_user_prefixes(config.train_presentations),
        test_prefixes=_user_prefixes(config.test_presentations),
        in_course_only=config.in_course_only,
        tune=config.tune,
        monotone=config.monotone,
    )
    result = train(training, train_config, registry, note="engage bench oulad")
    model = LightGBMRiskModel(registry.get(result.version))
    rows = {(r["user_id"], r["day"]): r for r in warehouse.rows}
    results = evaluate(test_data, rows, model, config.cutoffs)
    table = Table(title="OULAD: model vs heuristic on unseen presentations (risk_30d), per cut-off day")
    for col in ("day", "label", "population", "positive rate", "ROC AUC heuristic", "ROC AUC model",
                "PR AUC heuristic", "PR AUC model"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r.day), r.label, f"{r.population:,}", f"{r.positive_rate:.3f}",
                      f"{r.roc_auc['heuristic']:.3f}", f"{r.roc_auc['model']:.3f}",
                      f"{r.pr_auc['heuristic']:.3f}", f"{r.pr_auc['model']:.3f}")  # fmt: skip
    console.print(table)
    console.print(f"events: {report.events:,} ({dict(report.by_type)}); model {result.version}, rows {result.rows}")
    meta = registry.get(result.version).metadata
    for h, shares in meta["importance"].items():
        top = ", ".join(f"{name} {share:.0%}" for name, share in list(shares.items())[:10])
        console.print(f"{h}-day model: settings {_settings(meta['params'][h])}; largest shares of the gain: {top}")
        for row in meta["cross_validation"].get(h, []):
            folds = ", ".join(f"{a:.3f}" for a in row["roc_auc"])
            console.print(
                f"  grouped CV {_settings(row['settings'])}: mean ROC AUC {row['mean_roc_auc']:.3f} ({folds})"
            )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        doc = {"cutoffs": [r.__dict__ for r in results], "model": result.version, "training_metrics": result.metrics,
               "params": meta["params"], "cross_validation": meta["cross_validation"],
               "importance": meta["importance"]}  # fmt: skip
        out.write_text(json.dumps(_finite(doc), indent=2, default=float))
        console.print(f"wrote {out}")
    return results
