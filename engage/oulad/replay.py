"""`engage replay oulad`: stream an OULAD directory through the live pipeline, in event-time order.

Every presentation's events are merged by calendar day (2013B and 2013J overlap) and sent day by day with
the producer library, one message per student per day, like an app flushing its batch. History is
compressed in time (``day_seconds`` per day, 0 = as fast as Kafka takes it); the workers must run with the
event clock (``ENGAGE_WORKER_CLOCK=event``) so "now" is the replayed day. The collector is not used: it
refuses events older than ``collector_max_event_age_days`` by design, and 2013 is older.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from config.settings import Settings
from engage.oulad.dataset import Click, OuladDataset
from engage.oulad.mapping import (
    MappingReport,
    course_calendar,
    registration_events,
    study_day_events,
    submission_event,
)
from kafka_io.producer import EventProducer
from schemas.topics import catalogue


def _local_date(event: dict[str, Any]) -> date:
    return datetime.fromisoformat(event["event_time"]).date()


def replay_days(data: OuladDataset, report: MappingReport | None = None) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    """(calendar day, that day's events of every presentation, in event-time order), day after day."""
    report = report if report is not None else MappingReport()
    other: dict[date, list[dict[str, Any]]] = defaultdict(list)
    clicks: dict[date, dict[tuple[str, int], list[Click]]] = defaultdict(lambda: defaultdict(list))
    for key, presentation in data.presentations.items():
        for c in data.clicks(key):
            if (key, c.student) in data.enrolments:
                clicks[presentation.start + timedelta(days=c.day)][(key, c.student)].append(c)
    for enrolment in data.enrolments.values():
        for e in registration_events(enrolment, data.presentations[enrolment.presentation]):
            other[_local_date(e)].append(e)
    for s in data.submissions:
        assessment = data.assessments[s.assessment_id]
        submitter = data.enrolments.get((assessment.presentation, s.student))
        if submitter is None:
            continue
        event = submission_event(submitter, data.presentations[assessment.presentation], assessment, s)
        if event is None:
            report.submissions_without_score += 1
        else:
            other[_local_date(event)].append(event)
    for day in sorted(set(clicks) | set(other)):
        events = list(other.pop(day, []))
        for (key, student), rows in clicks.pop(day, {}).items():
            presentation = data.presentations[key]
            events += study_day_events(
                data.enrolments[(key, student)], presentation, (day - presentation.start).days, rows, data.sites
            )
        events.sort(key=lambda e: datetime.fromisoformat(e["event_time"]))
        for e in events:
            report.by_type[e["event_type"]] += 1
        report.events += len(events)
        yield day, events


def publish_calendars(producer: EventProducer, data: OuladDataset) -> None:
    """Each presentation's calendar on the courses topic, before any of its events (workers read it live)."""
    for presentation in data.presentations.values():
        calendar = course_calendar(presentation, data.assessments.values())
        producer.send_encoded(
            calendar.course_id.encode(), calendar.model_dump_json().encode(), topic=producer.topics.courses.name
        )
    if producer.flush(30):
        raise RuntimeError("Kafka did not acknowledge the course calendars")


@dataclass
class ReplayResult:
    days: int = 0
    events_sent: int = 0
    failed: int = 0
    seconds: float = 0.0
    report: MappingReport = field(default_factory=MappingReport)


def replay(data: OuladDataset, settings: Settings, console: Console, day_seconds: float = 0.0) -> ReplayResult:
    result = ReplayResult()
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    days = replay_days(data, result.report)
    first = min(p.start for p in data.presentations.values()) - timedelta(days=200)
    last = max(p.start + timedelta(days=p.length_days) for p in data.presentations.values())
    started = time.monotonic()
    columns = (
        TextColumn("[bold]replaying[/bold] {task.fields[day]}"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[events]:,} events"),
        TimeRemainingColumn(),
    )
    with (
        EventProducer(settings.kafka, topics, source="oulad-replay") as producer,
        Progress(*columns, console=console) as progress,
    ):
        publish_calendars(producer, data)
        task = progress.add_task("days", total=(last - first).days, day="", events=0)
        for day, events in days:
            day_started = time.monotonic()
            producer.send(events)
            result.events_sent += len(events)
            result.days += 1
            progress.update(task, completed=max(0, (day - first).days), day=day.isoformat(), events=result.events_sent)
            if day_seconds > 0:
                time.sleep(max(0.0, day_seconds - (time.monotonic() - day_started)))
        if producer.flush(120):
            raise RuntimeError("Kafka did not acknowledge every replayed event within 120 s")
        result.failed = producer.stats.failed
    result.seconds = time.monotonic() - started
    return result
