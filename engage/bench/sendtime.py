"""`engage bench sendtime`: does send-time optimisation find students active? Measured on simulated students,
whose active hours are known (``engage/simulator``: each student's study hours, chronotype and habits).

Pure Python, no Kafka, no servers. For the same simulated students in the same run:

1. Every student's events of their first ``learn_days`` local days are folded into a ``UserRecord`` by
   ``processors.pipeline.ingest``, as the worker folds them: the record's activity histogram (its zone and
   dedupe as in the worker) and the cohorts' ``CohortActivity`` (per course, and all students). The histograms
   are then frozen (a live worker would keep learning; frozen is the harder test).
2. ``moments`` intervention moments per student are drawn uniformly over the next ``eval_days`` (seeded). The
   deadline is the earliest allowed instant (the moment, or the end of quiet hours) + ``deadline_hours``.
3. Each moment is decided by ``processors.pipeline.policy_decision``, the worker's own call (a high-tier
   assessment, no history, no holdout, the tier's deadline set to ``deadline_hours``), under four send times:
   **immediately** (the tier without send-time optimisation: now, or the end of quiet hours), at a **random**
   allowed instant before the deadline, by **STO** (the worker's slot: the student's histogram and their
   cohort's), and by the **cohort profile alone** (the same with the student's own histogram emptied: what
   personalisation adds). The 4 h deadline reads as "what STO would give the critical tier", which the default
   policy sends at once.
4. Outcome: the student is **active within 1 h after the send** (any active event, in the simulator's own
   subsequent behaviour, which does not react to sends: this measures finding students at their active hours,
   not a causal effect of the message).

Rates are per moment; each comparison is STO minus the baseline (percentage points) and STO / baseline, with
a 95 % interval from a paired bootstrap over students (students resampled with all their moments, the same
resample for both policies: moments of one student are not independent), percentile method.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from engage.bench.report import Figure, Report
from engage.simulator import DEFAULT_START, Population, Timeline
from processors.notify.sendtime import ActivityHistogram, CohortActivity, SendTimeConfig
from processors.pipeline import UserRecord, ingest, policy_decision
from processors.policy import PolicyConfig, QuietHours, quiet_hours_end
from processors.signals import snapshot
from processors.state import UserState
from processors.streaks import ACTIVE_EVENT_TYPES
from schemas.signals import RiskAssessment, SignalSnapshot

POLICIES = ("immediate", "random", "sto", "cohort_only")
BASELINES = ("immediate", "random", "cohort_only")


@dataclass(frozen=True)
class SendTimeBenchConfig:
    students: int = 3_000
    seed: int = 2026
    learn_days: int = 28
    eval_days: int = 14
    moments: int = 8  # intervention moments per student
    deadline_hours: tuple[float, ...] = (24.0, 4.0)  # the policy's high/medium/low deadline, and critical's
    window_hours: float = 1.0  # "active within this long after the send"
    bootstrap: int = 2_000
    send_time: SendTimeConfig = field(default_factory=SendTimeConfig)


@dataclass(frozen=True)
class Comparison:
    baseline: str
    sto: float  # rate
    base: float
    uplift_pp: float  # (sto - base) * 100
    uplift_low: float
    uplift_high: float
    ratio: float
    ratio_low: float
    ratio_high: float


@dataclass(frozen=True)
class DeadlineResult:
    deadline_hours: float
    moments: int
    rates: dict[str, float]
    comparisons: list[Comparison]
    by_archetype: dict[str, dict[str, float]]  # archetype -> policy -> rate (and "moments")
    deferred_share: float  # moments that fell in quiet hours (sent at their end by the immediate policy)
    past_deadline: int  # STO slots quiet hours forced past the deadline


@dataclass(frozen=True)
class SendTimeMeasurement:
    students: int
    students_active_after: int  # students with any activity in the evaluation days
    observations_median: float  # active hours learnt per student (decayed), median
    json_bytes: tuple[int, int]  # the learnt histograms' compact JSON (what a record would hold): median, largest
    results: list[DeadlineResult]


@dataclass(slots=True)
class _Student:
    archetype: str
    zone: ZoneInfo
    record: UserRecord  # as the worker keeps it after the learning days
    snap: SignalSnapshot  # at the start of the evaluation days (the zone the policy decides in)
    eval_start: float  # epoch seconds: local midnight of the first evaluation day
    eval_end: float
    active: list[float]  # epoch seconds of active events in the evaluation days, sorted


def _students(config: SendTimeBenchConfig, activity: CohortActivity) -> list[_Student]:
    population = Population.generate(config.students, seed=config.seed, start=DEFAULT_START)
    out = []
    for student in population.students:
        zone = ZoneInfo(student.timezone)
        record = UserRecord(state=UserState(user_id=student.user_id))
        active: list[float] = []
        timeline = Timeline(student)
        for day in range(config.learn_days + config.eval_days):
            times, events = timeline.timed_events(day)
            if day < config.learn_days:
                if events:
                    ingest(record, student.user_id, events, activity)  # the worker's fold
                continue
            active += [
                float(when) for when, e in zip(times, events, strict=True) if e["event_type"] in ACTIVE_EVENT_TYPES
            ]
        first = datetime.combine(DEFAULT_START + timedelta(days=config.learn_days), datetime.min.time(), zone)
        last = datetime.combine(
            DEFAULT_START + timedelta(days=config.learn_days + config.eval_days), datetime.min.time(), zone
        )
        active.sort()
        snap = snapshot(record.state, first)
        out.append(_Student(student.archetype, zone, record, snap, first.timestamp(), last.timestamp(), active))
    return out


def _bench_policy(policy: PolicyConfig, hours: float, optimised: bool) -> PolicyConfig:
    """The high tier with the bench's deadline, nobody held out, send-time optimisation on or off."""
    tiers = {**policy.tiers, "high": policy.tiers["high"].model_copy(update={"deadline_hours": hours})}
    return policy.model_copy(
        update={"tiers": tiers, "holdout_share": 0.0, "send_time_tiers": ["high"] if optimised else []}
    )


_HIGH = RiskAssessment(risk_7d=70.0, risk_30d=70.0, tier="high", confidence=1.0, model_version="bench")


def _decided_at(
    student: _Student, record: UserRecord, policy: PolicyConfig, now: datetime, activity: CohortActivity
) -> tuple[datetime, datetime]:
    """(send time, deadline) of the worker's decision for this student at ``now``."""
    decision = policy_decision(record, record.state.user_id, _HIGH, student.snap, policy, now, now, activity)
    request = decision.request
    if request is None:  # pragma: no cover - a fresh history and no holdout always decide a request
        raise RuntimeError(f"no request decided for {record.state.user_id}: {decision.outcome} {decision.detail}")
    return request.send_after or request.created_at, request.deadline


def _active_within(student: _Student, at: float, seconds: float) -> bool:
    i = bisect.bisect_left(student.active, at)
    return i < len(student.active) and student.active[i] < at + seconds


def _random_allowed(rng: random.Random, start: datetime, deadline: datetime, quiet: QuietHours | None,
                    zone: ZoneInfo) -> datetime:  # fmt: skip
    """A uniformly random instant of [start, deadline] outside quiet hours (start is allowed: the fallback)."""
    span = (deadline - start).total_seconds()
    for _ in range(1_000):
        t = start + timedelta(seconds=rng.random() * span)
        if quiet_hours_end(quiet, t, zone) is None:
            return t
    return start


def _bootstrap(
    successes: dict[str, np.ndarray], moments: np.ndarray, baseline: str, draws: int, rng: np.random.Generator
) -> Comparison:
    sto, base = successes["sto"], successes[baseline]
    total = moments.sum()
    sto_rate, base_rate = sto.sum() / total, base.sum() / total
    n = len(moments)
    diffs, ratios = [], []
    for chunk in range(0, draws, 200):
        idx = rng.integers(0, n, size=(min(200, draws - chunk), n))
        m = moments[idx].sum(axis=1)
        s, b = sto[idx].sum(axis=1) / m, base[idx].sum(axis=1) / m
        diffs.append(s - b)
        ratios.append(np.divide(s, b, out=np.full_like(s, np.nan), where=b > 0))
    d, r = np.concatenate(diffs), np.concatenate(ratios)
    if np.isnan(r).all():  # the baseline found nobody in any resample: no ratio
        low_high = (float("nan"), float("nan"))
    else:
        low_high = (float(np.nanpercentile(r, 2.5)), float(np.nanpercentile(r, 97.5)))
    return Comparison(
        baseline=baseline,
        sto=float(sto_rate),
        base=float(base_rate),
        uplift_pp=float((sto_rate - base_rate) * 100),
        uplift_low=float(np.percentile(d, 2.5) * 100),
        uplift_high=float(np.percentile(d, 97.5) * 100),
        ratio=float(sto_rate / base_rate) if base_rate > 0 else float("nan"),
        ratio_low=low_high[0],
        ratio_high=low_high[1],
    )


def measure_sendtime(config: SendTimeBenchConfig, policy: PolicyConfig | None = None) -> SendTimeMeasurement:
    """The whole measurement (no printing): learn, draw moments, send by each policy, compare."""
    policy = (policy or PolicyConfig()).model_copy(update={"send_time": config.send_time})
    quiet = policy.quiet_hours
    activity = CohortActivity(config.send_time)
    students = _students(config, activity)
    cutoff = min(s.eval_start for s in students)
    half_life = config.send_time.half_life_days
    window = config.window_hours * 3600
    longest = max(config.deadline_hours) * 3600
    rng = random.Random(config.seed)
    moments_of = [
        [
            s.eval_start + rng.random() * max(0.0, s.eval_end - s.eval_start - longest - window)
            for _ in range(config.moments)
        ]
        for s in students
    ]
    results = []
    for hours in config.deadline_hours:
        optimised, immediate = _bench_policy(policy, hours, True), _bench_policy(policy, hours, False)
        picks = random.Random(f"{config.seed}:{hours}")
        successes = {p: np.zeros(len(students), dtype=np.int64) for p in POLICIES}
        deferred = past_deadline = 0
        for i, student in enumerate(students):
            newcomer = replace(student.record, state=replace(student.record.state, activity=ActivityHistogram()))
            for moment in moments_of[i]:
                now = datetime.fromtimestamp(moment, UTC)
                deferred += quiet_hours_end(quiet, now, student.zone) is not None
                start, deadline = _decided_at(student, student.record, immediate, now, activity)
                sto, _ = _decided_at(student, student.record, optimised, now, activity)
                cohort_only, _ = _decided_at(student, newcomer, optimised, now, activity)
                past_deadline += sto > deadline
                sends = {
                    "immediate": start,
                    "random": _random_allowed(picks, start, deadline, quiet, student.zone),
                    "sto": sto,
                    "cohort_only": cohort_only,
                }
                for name, at in sends.items():
                    successes[name][i] += _active_within(student, at.timestamp(), window)
        moments = np.full(len(students), config.moments, dtype=np.int64)
        total = int(moments.sum())
        boot = np.random.default_rng(config.seed)
        comparisons = [_bootstrap(successes, moments, b, config.bootstrap, boot) for b in BASELINES]
        by_archetype: dict[str, dict[str, float]] = {}
        for name in sorted({s.archetype for s in students}):
            members = np.array([s.archetype == name for s in students])
            count = int(moments[members].sum())
            by_archetype[name] = {"moments": count, **{p: float(successes[p][members].sum() / count) for p in POLICIES}}
        results.append(
            DeadlineResult(
                deadline_hours=hours,
                moments=total,
                rates={p: float(successes[p].sum() / total) for p in POLICIES},
                comparisons=comparisons,
                by_archetype=by_archetype,
                deferred_share=deferred / total,
                past_deadline=past_deadline,
            )
        )
    masses = sorted(s.record.state.activity.mass(cutoff, half_life) for s in students)
    sizes = sorted(len(orjson.dumps(s.record.state.activity.to_dict())) for s in students)
    return SendTimeMeasurement(
        students=len(students),
        students_active_after=sum(1 for s in students if s.active),
        observations_median=masses[len(masses) // 2] if masses else 0.0,
        json_bytes=(sizes[len(sizes) // 2], sizes[-1]) if sizes else (0, 0),
        results=results,
    )


def _interval(low: float, high: float, digits: int = 1) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def run_sendtime_bench(
    console: Console, out: Path | None, config: SendTimeBenchConfig, policy: PolicyConfig | None = None
) -> SendTimeMeasurement:
    """Measure, print the figures (rates, uplifts with intervals, per archetype) and save them as JSON."""
    policy = policy or PolicyConfig()
    measurement = measure_sendtime(config, policy)
    st = config.send_time
    report = Report(
        f"Send-time optimisation on simulated students: active within {config.window_hours:g} h after the send",
        context={
            "config": {**asdict(config), "send_time": st.model_dump()},
            "quiet_hours": policy.quiet_hours.model_dump(mode="json") if policy.quiet_hours else None,
            "students": measurement.students,
            "students_active_in_evaluation": measurement.students_active_after,
            "observations_median": measurement.observations_median,
            "histogram_json_bytes_median_max": measurement.json_bytes,
            "results": [asdict(r) for r in measurement.results],
            "interval": f"95 %, paired bootstrap over students (percentile), {config.bootstrap} resamples",
        },
    )
    for result in measurement.results:
        for c in result.comparisons:
            report.add(
                Figure(
                    f"STO vs {c.baseline}, deadline {result.deadline_hours:g} h",
                    c.sto * 100,
                    "%",
                    c.baseline,
                    c.base * 100,
                    notes=f"uplift {c.uplift_pp:+.1f} pp {_interval(c.uplift_low, c.uplift_high)}, "
                    f"ratio {c.ratio:.2f}x {_interval(c.ratio_low, c.ratio_high, 2)} (95 %, bootstrap over students)",
                )
            )
    report.print(console)
    console.print(
        f"  {measurement.students:,} students ({measurement.students_active_after:,} active in the "
        f"{config.eval_days} evaluation days), {config.moments} moments each; histograms learnt from "
        f"{config.learn_days} days (median {measurement.observations_median:.1f} active hours, decayed, "
        f"half-life {st.half_life_days:g} d; cohort counts as {st.min_observations:g}); a histogram's JSON: "
        f"median {measurement.json_bytes[0]} bytes, largest {measurement.json_bytes[1]}"
    )
    for result in measurement.results:
        table = Table(title=f"deadline {result.deadline_hours:g} h: rate per archetype (moments)")
        for column in ("archetype", "moments", *POLICIES):
            table.add_column(column, justify="left" if column == "archetype" else "right")
        for name, row in result.by_archetype.items():
            table.add_row(name, f"{row['moments']:,.0f}", *(f"{row[p] * 100:.1f} %" for p in POLICIES))
        table.add_row("all", f"{result.moments:,}", *(f"{result.rates[p] * 100:.1f} %" for p in POLICIES))
        console.print(table)
        console.print(
            f"  {result.deferred_share * 100:.1f} % of the moments fell in quiet hours (sent at their end); "
            f"{result.past_deadline} STO slots pushed past the deadline by quiet hours"
        )
    if out is not None:
        console.print(f"wrote {report.save(out)}")
    return measurement


def summary_lines(measurement: SendTimeMeasurement) -> Sequence[str]:
    """One line per comparison, for the README and the tests' eyes."""
    lines = []
    for result in measurement.results:
        for c in result.comparisons:
            lines.append(
                f"{result.deadline_hours:g} h: STO {c.sto * 100:.1f} % vs {c.baseline} {c.base * 100:.1f} %: "
                f"{c.uplift_pp:+.1f} pp {_interval(c.uplift_low, c.uplift_high)}, {c.ratio:.2f}x "
                f"{_interval(c.ratio_low, c.ratio_high, 2)}"
            )
    return lines
