"""`engage templates lint|preview`: the face of ``processors.notify.templates`` (no logic of its own but the
simulated student a preview can be built from).

Preview with ``--user``: the context comes from a **simulated student** when the id is one of the simulator's
population (``engage simulate``'s seed and size, ``--seed`` / ``--students``): their first ``--days`` days of
events are folded into a record with the worker's own code (``processors.pipeline.ingest``), snapshotted at the
end of the last day, scored by the heuristic (its top factors become the reason), and the locale is the
student's own unless ``--locale`` is given. An id the population does not hold falls back to the sample
student ``engaged`` (the same context the lint renders against), and the preview says so. Without ``--user``
the sample student named by ``--sample`` is used. Previews never read Kafka or ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engage.simulator import DEFAULT_START, Population, Timeline
from models.heuristic import HeuristicModel
from processors.notify.context import (
    SAMPLE_LINKS,
    SAMPLE_STUDENTS,
    build_context,
    preview_request,
    sample_context,
    sample_offer,
)
from processors.notify.templates import TemplateCatalog, TemplateProblem
from processors.pipeline import UserRecord, ingest
from processors.policy import PolicyConfig
from processors.signals import snapshot
from schemas.interventions import InterventionType


@dataclass(frozen=True, slots=True)
class PreviewContext:
    context: dict[str, Any]
    locale: str
    source: str  # words: where the context came from


def lint(directory: Path, policy: PolicyConfig) -> tuple[TemplateCatalog, list[TemplateProblem]]:
    """Every problem of the templates under ``directory`` (and the policy's (type, channel) pairs without en)."""
    return TemplateCatalog.check(directory, policy=policy)


def simulated_context(
    user_id: str,
    intervention_type: InterventionType,
    *,
    seed: int = 42,
    students: int = 500,
    days: int = 28,
    locale: str | None = None,
    policy: PolicyConfig | None = None,
) -> PreviewContext | None:
    """The context of simulated student ``user_id`` after ``days`` simulated days, or None if no such student.

    ``locale`` overrides the student's own."""
    population = Population.generate(students, seed=seed, start=DEFAULT_START)
    student = next((s for s in population.students if s.user_id == user_id), None)
    if student is None:
        return None
    record = UserRecord.load(None, user_id)
    timeline = Timeline(student)
    for day in range(days):
        events = timeline.events(day)
        if events:
            ingest(record, user_id, events)
    zone = ZoneInfo(student.timezone)
    end_of_last_day = datetime.combine(DEFAULT_START + timedelta(days=days - 1), datetime.max.time(), zone)
    as_of = end_of_last_day.replace(hour=20, minute=0, second=0, microsecond=0).astimezone(UTC)
    snap = snapshot(record.state, as_of)
    assessment = HeuristicModel().score(snap)
    request = preview_request(intervention_type, snap, policy, assessment)
    offer = sample_offer(as_of) if intervention_type == InterventionType.discount_offer else None
    chosen = locale or student.locale
    context = build_context(request, snap, SAMPLE_LINKS, factors=assessment.factors, offer=offer, locale=chosen)
    source = (
        f"simulated student {user_id} (seed {seed}, {students} students; {student.archetype}, {student.timezone}, "
        f"{student.locale}) after {days} days; heuristic risk {assessment.risk_7d:.0f} ({assessment.tier})"
    )
    return PreviewContext(context, chosen, source)


def preview_context(
    intervention_type: InterventionType,
    *,
    user_id: str | None,
    sample: str,
    locale: str | None,
    seed: int,
    students: int,
    days: int,
    policy: PolicyConfig,
) -> PreviewContext:
    """The context a preview renders: the simulated student if there is one, else the named sample student."""
    if sample not in SAMPLE_STUDENTS:
        raise ValueError(f"unknown sample student {sample!r}; known: {sorted(SAMPLE_STUDENTS)}")
    if user_id is not None:
        found = simulated_context(
            user_id, intervention_type, seed=seed, students=students, days=days, locale=locale, policy=policy
        )
        if found is not None:
            return found
        sample_note = f"no simulated student {user_id!r} (seed {seed}, {students} students): sample student {sample!r}"
    else:
        sample_note = f"sample student {sample!r}"
    chosen = locale or "en"
    return PreviewContext(sample_context(intervention_type, sample, chosen, policy), chosen, sample_note)
