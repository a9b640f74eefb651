"""The truth about each synthetic student, to score the engine's churn predictions against.

It describes what happened within the simulated days only: a student whose drop-out day lies beyond
them did not churn in the data the engine saw, so it is recorded as not churning.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from engage.simulator.behaviour import Timeline
from engage.simulator.population import Population


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Day indexes count local calendar days from the population's start date.

    ``churn_day`` is the first day without any learning (unenrolling churners still visit that day to
    unenrol); ``last_active_day`` is the last day with any event, ``None`` if the student never showed up.
    The preferences a personalisation profile should recover: ``preferred_format`` (chosen for ~74 % of the
    student's content views and finished more often), ``study_hours`` (local hours their sessions start in,
    ascending) and ``responsive_trigger`` (the intervention group they open more: engage.simulator.triggers).
    """

    user_id: str
    archetype: str
    churns: bool
    churn_day: int | None
    last_active_day: int | None
    active_days: int
    start_day: int
    unenrols: bool
    timezone: str
    preferred_format: str = ""
    study_hours: tuple[int, ...] = ()
    responsive_trigger: str = ""


def ground_truth(population: Population, days: int) -> list[GroundTruth]:
    """One record per student, for the simulated days 0 .. days-1."""
    records = []
    for student in population.students:
        timeline = Timeline(student)
        active = [day for day in range(days) if timeline.active(day)]
        churns = student.churn_day is not None and student.churn_day < days
        records.append(
            GroundTruth(
                user_id=student.user_id,
                archetype=student.archetype,
                churns=churns,
                churn_day=student.churn_day if churns else None,
                last_active_day=active[-1] if active else None,
                active_days=len(active),
                start_day=student.start_day,
                unenrols=churns and student.unenrols,
                timezone=student.timezone,
                preferred_format=student.preferred_format,
                study_hours=student.study_hours,
                responsive_trigger=student.responsive_trigger,
            )
        )
    return records


def write_ground_truth(records: Iterable[GroundTruth], path: str | Path) -> Path:
    """Write the records as CSV if ``path`` ends in ``.csv`` (empty cells for None), else as JSON lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = [f.name for f in dataclasses.fields(GroundTruth)]
    with path.open("w", newline="", encoding="utf-8") as out:
        if path.suffix == ".csv":
            writer = csv.DictWriter(out, fieldnames=fields)
            writer.writeheader()
            writer.writerows(dataclasses.asdict(r) for r in records)
        else:
            out.writelines(json.dumps(dataclasses.asdict(r)) + "\n" for r in records)
    return path
