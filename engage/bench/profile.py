"""`engage bench profile`: does the personalisation profile recover what the simulated students prefer?

Pure Python, no Kafka, no servers. The simulated students have known preferences (``engage.simulator``:
``GroundTruth.preferred_format``, ``study_hours``, ``responsive_trigger``). Their events are replayed in event
time, UTC day by UTC day, into one ``UserRecord`` each through ``processors.pipeline.ingest`` (the worker's
fold: per-format counters, activity histogram, the course cohorts' activity), and each student's profile is
built once a day by ``processors.pipeline.student_profile`` (the worker's daily profile: it also feeds the
cohort priors).

Interventions: the simulated days do not hold the engine's interventions, so the bench plays a uniform-random
policy: each day, each student who has started is sent an intervention with probability ``send_rate``, of a
trigger group drawn uniformly (an intervention type of that group), at a random time of the day; it is
recorded as the worker records a send (``TriggerStats.sent``), and the simulator says what became of it
(``engage.simulator.triggers.respond``: delivered, opened and clicked with known rates, a short session after
most clicks); those events go through the same fold, where opens and clicks are attributed to the send.

After ``checkpoints`` days (7, 14, 28) each student's profile is compared with their truth:
- **format**: the profile's ``preferred_format`` (highest posterior share) is the true one (students with at
  least one content view); beside it the raw majority of the student's own views (no prior), and the
  cohort-majority baseline (everyone gets the format most viewed over all students);
- **hour**: the profile's best study hour (``study_time.best_hours[0]``, local) is one of the student's study
  hours (students with any activity); baseline: the all-students activity profile's best local hour for
  everyone;
- **trigger**: ``preferred_trigger`` (highest posterior open rate) is the true group (students sent at least
  one intervention); baseline: the group with the highest pooled open rate over all students, for everyone.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from engage.simulator import GroundTruth, Population, ground_truth, iter_event_days
from engage.simulator.triggers import respond
from processors.notify.sendtime import CohortActivity
from processors.pipeline import UserRecord, ingest, student_profile
from processors.policy import PolicyConfig
from processors.profile import OPENED, ProfileCohorts
from processors.signals import snapshot
from processors.state import FORMATS
from schemas.interventions import InterventionType
from schemas.profile import TRIGGER_GROUPS, TRIGGER_OF, Profile

KINDS: dict[str, list[InterventionType]] = {
    g.value: [k for k, group in TRIGGER_OF.items() if group == g] for g in TRIGGER_GROUPS
}


@dataclass(frozen=True)
class ProfileBenchConfig:
    students: int = 800
    seed: int = 2026
    checkpoints: tuple[int, ...] = (7, 14, 28)
    send_rate: float = 0.4  # interventions per student and day


@dataclass
class Recovery:
    """One checkpoint: per target, (hits, students) for the profile, the raw shares and the baseline."""

    day: int
    format: dict[str, list[int]] = field(default_factory=dict)
    hour: dict[str, list[int]] = field(default_factory=dict)
    trigger: dict[str, list[int]] = field(default_factory=dict)


def share(pair: list[int]) -> float:
    """hits / students of a ``[hits, students]`` tally (NaN for none)."""
    return pair[0] / pair[1] if pair[1] else float("nan")


def raw_majority(prefs: list[float] | None) -> str | None:
    """The format of most of the student's own views (``UserState.prefs``), no prior; ties go to the first in
    ``FORMATS``; None without a view."""
    if not prefs or not any(prefs[: len(FORMATS)]):
        return None
    return FORMATS[max(range(len(FORMATS)), key=lambda i: prefs[i])]


def _assess(
    day: int,
    truths: dict[str, GroundTruth],
    profiles: dict[str, Profile],
    records: dict[str, UserRecord],
    activity: CohortActivity,
    as_of: datetime,
) -> Recovery:
    out = Recovery(day)
    views: Counter[str] = Counter()
    opened: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    for record in records.values():
        prefs = record.state.prefs
        if prefs:
            for i, f in enumerate(FORMATS):
                views[f] += int(prefs[i])
        for g, row in zip(TRIGGER_GROUPS, record.triggers.counts, strict=True):
            opened[g.value] += row[OPENED]
            sent[g.value] += row[0]
    majority_format = views.most_common(1)[0][0] if views else None
    cohort_hours = activity.profile(None, as_of.timestamp())
    by_hour = [sum(cohort_hours[d * 24 + h] for d in range(7)) for h in range(24)] if cohort_hours else None
    majority_hour = max(range(24), key=lambda h: by_hour[h]) if by_hour else None
    rates = {g: opened[g] / sent[g] for g in sent if sent[g]}
    majority_trigger = max(rates, key=lambda g: rates[g]) if rates else None
    tallies: dict[str, dict[str, list[int]]] = {"format": {}, "hour": {}, "trigger": {}}
    for name in tallies:
        for method in ("profile", "raw", "baseline"):
            tallies[name][method] = [0, 0]

    def count(target: str, method: str, hit: bool) -> None:
        tallies[target][method][0] += int(hit)
        tallies[target][method][1] += 1

    for uid, profile in profiles.items():
        truth, record = truths[uid], records[uid]
        prefs = record.state.prefs
        if profile.format_views:
            count("format", "profile", profile.preferred_format == truth.preferred_format)
            count("format", "raw", raw_majority(prefs) == truth.preferred_format)
            count("format", "baseline", majority_format == truth.preferred_format)
        if profile.study_time.best_hours and profile.study_time.student_share > 0:
            count("hour", "profile", profile.study_time.best_hours[0] in truth.study_hours)
            count("hour", "baseline", majority_hour in truth.study_hours)
        if any(row[0] for row in record.triggers.counts):
            count("trigger", "profile", profile.preferred_trigger == truth.responsive_trigger)
            own = {
                g.value: row[OPENED] / row[0]
                for g, row in zip(TRIGGER_GROUPS, record.triggers.counts, strict=True)
                if row[0]
            }
            count("trigger", "raw", max(own, key=lambda g: own[g]) == truth.responsive_trigger)
            count("trigger", "baseline", majority_trigger == truth.responsive_trigger)
    out.format, out.hour, out.trigger = tallies["format"], tallies["hour"], tallies["trigger"]
    return out


def measure(config: ProfileBenchConfig) -> list[Recovery]:
    """Replay, profile daily, and score the checkpoints (module docstring)."""
    population = Population.generate(config.students, config.seed)
    students = {s.user_id: s for s in population.students}
    truths = {t.user_id: t for t in ground_truth(population, max(config.checkpoints))}
    policy = PolicyConfig()
    activity = CohortActivity(policy.send_time)
    cohorts = ProfileCohorts()
    records: dict[str, UserRecord] = {}
    profiles: dict[str, Profile] = {}
    rng = random.Random(config.seed)
    start = datetime(population.start.year, population.start.month, population.start.day, tzinfo=UTC)
    days = max(config.checkpoints)
    results = []
    for day, events in iter_event_days(population, days):
        batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in events:
            batches[event["user_id"]].append(event)
        day_start = start + timedelta(days=day)
        for uid, student in students.items():  # the day's sends, answered by the simulator
            if uid not in records or rng.random() >= config.send_rate:
                continue
            group = rng.choice(list(KINDS))
            kind = rng.choice(KINDS[group])
            at = (day_start + timedelta(seconds=rng.random() * 86_400)).timestamp()
            intervention_id = f"bench-{uid}-{day}"
            records[uid].triggers.sent(intervention_id, kind, at)
            batches[uid].extend(respond(student, intervention_id, group, at))
        for uid, batch in batches.items():
            record = records.get(uid) or UserRecord.load(None, uid)
            ingest(record, uid, batch, activity)
            records[uid] = record
        as_of = day_start + timedelta(days=1)
        for uid, record in records.items():  # the daily profile, as the worker's first re-score of a day
            snap = snapshot(record.state, as_of)
            profiles[uid] = student_profile(record, uid, snap, cohorts, activity, policy, None)
        if day + 1 in config.checkpoints:
            results.append(_assess(day + 1, truths, profiles, records, activity, as_of))
    return results


def share_cell(pair: list[int]) -> str:
    """A ``[hits, students]`` tally as a table cell: the percentage, and the students it is of."""
    return f"{100 * share(pair):.1f} % ({pair[1]})" if pair[1] else "-"


def run(config: ProfileBenchConfig, console: Console, out: Path) -> list[Recovery]:
    results = measure(config)
    table = Table(title=f"profile recovery of the simulated truth: {config.students} students, seed {config.seed}")
    for column in ("day", "target", "profile", "raw shares", "cohort majority"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for r in results:
        for name, tally in (("format", r.format), ("best hour", r.hour), ("trigger", r.trigger)):
            table.add_row(
                str(r.day), name, share_cell(tally["profile"]), share_cell(tally["raw"]), share_cell(tally["baseline"])
            )
    console.print(table)
    console.print("cells: share of students whose truth was recovered (students assessed)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({"config": asdict(config), "results": [asdict(r) for r in results]}))
    console.print(f"wrote {out}")
    return results


def bench_profile(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/profile.json"),
    students: Annotated[int, typer.Option(help="Simulated students")] = ProfileBenchConfig.students,
    seed: Annotated[int, typer.Option(help="Population seed")] = ProfileBenchConfig.seed,
    send_rate: Annotated[float, typer.Option(help="Interventions per student and day")] = ProfileBenchConfig.send_rate,
) -> None:
    """How often the learned profile recovers each simulated student's format, best hour and trigger."""
    config = ProfileBenchConfig(students=students, seed=seed, send_rate=send_rate)
    run(config, Console(width=max(Console().width, 120)), out)
