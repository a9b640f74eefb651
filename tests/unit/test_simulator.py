"""The synthetic population: deterministic by seed, valid under the event contract, and behaviourally
distinct per archetype, with a ground truth that matches the events it produced."""

from __future__ import annotations

import csv
import json
import statistics
from collections import defaultdict
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from engage.simulator import (
    ARCHETYPES,
    ZONES,
    GroundTruth,
    Population,
    Student,
    Timeline,
    events_for_day,
    ground_truth,
    iter_event_days,
    write_ground_truth,
)
from schemas.events import EVENT_TYPES, parse_event

START = date(2024, 9, 2)
DAYS = 42
Event = dict[str, Any]


def day_of(event: Event) -> int:
    """The local day index, from the deterministic event id ``sim-NNNNNN-<day>-<seq>``."""
    return int(event["event_id"].split("-")[2])


def local_time(event: Event) -> datetime:
    return datetime.fromisoformat(event["event_time"])


@pytest.fixture(scope="module")
def population() -> Population:
    return Population.generate(200, seed=42, start=START)


@pytest.fixture(scope="module")
def stream(population: Population) -> list[tuple[int, list[Event]]]:
    return list(iter_event_days(population, DAYS))


@pytest.fixture(scope="module")
def by_user(stream: list[tuple[int, list[Event]]]) -> dict[str, list[Event]]:
    users: dict[str, list[Event]] = defaultdict(list)
    for _, events in stream:
        for event in events:
            users[event["user_id"]].append(event)
    return users


@pytest.fixture(scope="module")
def truth(population: Population) -> dict[str, GroundTruth]:
    return {record.user_id: record for record in ground_truth(population, DAYS)}


def students_of(population: Population, archetype: str) -> list[Student]:
    found = [s for s in population.students if s.archetype == archetype]
    assert found, f"no {archetype} student in the population"
    return found


# --- determinism ------------------------------------------------------------------------------------------


def test_same_seed_gives_the_same_students_and_events() -> None:
    first, second = Population.generate(60, seed=7), Population.generate(60, seed=7)
    assert first == second
    assert list(iter_event_days(first, 10)) == list(iter_event_days(second, 10))


def test_another_seed_gives_other_students() -> None:
    assert Population.generate(60, seed=7).students != Population.generate(60, seed=8).students


def test_a_day_is_the_same_however_it_is_reached(population: Population) -> None:
    for student in population.students[:20]:
        walked = Timeline(student)
        in_order = [walked.events(day) for day in range(12)]
        jumping = Timeline(student)
        assert jumping.events(9) == in_order[9]
        assert jumping.events(3) == in_order[3]  # going back replays from day 0
        assert events_for_day(student, 11) == in_order[11]


# --- the contract ----------------------------------------------------------------------------------------


def test_every_event_validates_and_every_type_occurs(stream: list[tuple[int, list[Event]]]) -> None:
    seen = set()
    for _, events in stream:
        for event in events:
            parsed = parse_event(event)
            seen.add(parsed.event_type)
    assert seen == set(EVENT_TYPES)


def test_event_ids_are_unique(stream: list[tuple[int, list[Event]]]) -> None:
    ids = [event["event_id"] for _, events in stream for event in events]
    assert len(ids) == len(set(ids)) > 10_000


def test_the_stream_is_in_event_time_order_day_by_day(
    population: Population, stream: list[tuple[int, list[Event]]]
) -> None:
    assert [day for day, _ in stream] == list(range(DAYS))
    instants = [local_time(event) for _, events in stream for event in events]
    assert instants == sorted(instants)
    for day, events in stream[1:-1]:  # inner batches are exactly one UTC day
        utc_day = datetime.combine(START + timedelta(days=day), datetime.min.time(), ZoneInfo("UTC"))
        assert all(utc_day <= local_time(e) < utc_day + timedelta(days=1) for e in events)
    timelines = [Timeline(s) for s in population.students]
    assert len(instants) == sum(len(t.events(day)) for t in timelines for day in range(DAYS))


def test_event_time_is_the_students_local_study_time(population: Population, by_user: dict[str, list[Event]]) -> None:
    for student in population.students:
        zone = ZoneInfo(student.timezone)
        for event in by_user[student.user_id]:
            when = local_time(event)
            assert when.astimezone(zone).replace(tzinfo=None) == when.replace(tzinfo=None)
            assert when.date() == START + timedelta(days=day_of(event))
            assert when.hour >= 5
            assert (event["timezone"], event["locale"]) == (student.timezone, student.locale)


def test_london_is_on_gmt_in_january_and_bst_in_july(population: Population) -> None:
    keen = replace(students_of(population, "highly_engaged")[0], timezone="Europe/London")

    def offsets(start: date, days: int) -> dict[int, set[str]]:
        student, found = replace(keen, start=start), defaultdict(set)
        timeline = Timeline(student)
        for day in range(days):
            for event in timeline.events(day):
                found[day].add(event["event_time"][-6:])
        return found

    january, july = offsets(date(2024, 1, 8), 14), offsets(date(2024, 7, 8), 14)
    assert january and july
    assert set().union(*january.values()) == {"+00:00"}
    assert set().union(*july.values()) == {"+01:00"}
    around_the_change = offsets(date(2024, 3, 24), 14)  # clocks go forward on Sunday 31 March 2024
    assert all(found == ({"+00:00"} if day < 7 else {"+01:00"}) for day, found in around_the_change.items())


def test_catalogue_zones_change_clocks_only_at_night() -> None:
    """Event times from 05:00 on rely on it (the simulator takes each local day's offset at noon)."""
    for zone in ZONES:
        tz = ZoneInfo(zone.name)
        day = date(2024, 1, 1)
        while day < date(2027, 1, 1):
            early = datetime(day.year, day.month, day.day, 5, tzinfo=tz).utcoffset()
            late = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=tz).utcoffset()
            assert early == late, (zone.name, day)
            day += timedelta(days=1)


def test_sessions_progress_and_quizzes_are_consistent(by_user: dict[str, list[Event]]) -> None:
    for events in by_user.values():
        started: dict[str, datetime] = {}
        enrolled: set[str] = set()
        completed: dict[str, int] = defaultdict(int)
        for event in events:
            kind, payload, course = event["event_type"], event.get("payload", {}), event["course_id"]
            if kind == "session_started":
                started[event["session_id"]] = local_time(event)
            elif kind == "session_ended":
                took = (local_time(event) - started.pop(event["session_id"])).total_seconds()
                assert payload["duration_seconds"] == took > 0
            elif kind == "enrolled":
                assert course not in enrolled
                enrolled.add(course)
            elif kind in ("lesson_started", "lesson_completed", "quiz_submitted"):
                assert course in enrolled
            if kind == "course_progress":
                assert payload["lessons_completed"] > completed[course]
                completed[course] = payload["lessons_completed"]
            if kind == "quiz_submitted":
                assert payload["passed"] == (payload["score"] >= payload["max_score"] / 2)
        assert not started, "every session ends"


def test_an_active_day_has_a_realistic_number_of_events(by_user: dict[str, list[Event]]) -> None:
    per_day: dict[tuple[str, int], int] = defaultdict(int)
    for user, events in by_user.items():
        for event in events:
            per_day[user, day_of(event)] += 1
    sizes = list(per_day.values())
    assert min(sizes) >= 4 and max(sizes) <= 45
    assert 8 <= statistics.mean(sizes) <= 25


# --- archetypes -----------------------------------------------------------------------------------------


def test_every_archetype_is_in_the_default_mix(population: Population) -> None:
    assert {s.archetype for s in population.students} == set(ARCHETYPES)
    assert len({s.timezone for s in population.students}) >= 8
    assert {d.platform for s in population.students for d in s.devices} == {"web", "ios", "android"}


def test_a_mix_chooses_the_archetypes() -> None:
    only = Population.generate(30, seed=1, mix={"weekend_only": 1.0})
    assert {s.archetype for s in only.students} == {"weekend_only"}
    with pytest.raises(ValueError, match="unknown archetypes"):
        Population.generate(3, seed=1, mix={"hard_worker": 1.0})
    with pytest.raises(ValueError, match="weights"):
        Population.generate(3, seed=1, mix={"steady": 0.0})


def test_archetypes_differ_in_how_often_they_study(truth: dict[str, GroundTruth]) -> None:
    active: dict[str, list[int]] = defaultdict(list)
    for record in truth.values():
        active[record.archetype].append(record.active_days)
    mean = {name: statistics.mean(days) for name, days in active.items()}
    assert mean["highly_engaged"] > mean["steady"] > mean["slowly_fading"]
    assert mean["highly_engaged"] > 0.8 * DAYS
    assert mean["sporadic"] < 0.35 * DAYS
    assert mean["binge_then_quit"] < mean["slowly_fading"]


def test_binge_students_are_intense_then_silent(
    population: Population, by_user: dict[str, list[Event]], truth: dict[str, GroundTruth]
) -> None:
    for student in students_of(population, "binge_then_quit"):
        days = {day_of(e) for e in by_user[student.user_id]}
        assert len(days & set(range(student.burst_days))) >= student.burst_days // 2
        churn_day = truth[student.user_id].churn_day
        if churn_day is not None:
            assert max(days) <= churn_day


def test_slowly_fading_students_fade(population: Population, by_user: dict[str, list[Event]]) -> None:
    """Fewer visits, and less done per visit, weeks before they stop altogether."""
    sessions: dict[str | None, int] = defaultdict(int)
    lessons: dict[str | None, int] = defaultdict(int)
    for student in students_of(population, "slowly_fading"):
        for event in by_user[student.user_id]:
            period = "early" if day_of(event) < 10 else "late" if 20 <= day_of(event) < 30 else None
            sessions[period] += event["event_type"] == "session_started"
            lessons[period] += event["event_type"] == "lesson_completed"
    assert sessions["late"] < 0.6 * sessions["early"]
    assert lessons["late"] / sessions["late"] < 0.8 * lessons["early"] / sessions["early"]


def test_weekend_only_students_study_on_their_local_weekends(
    population: Population, by_user: dict[str, list[Event]]
) -> None:
    events = [e for s in students_of(population, "weekend_only") for e in by_user[s.user_id]]
    assert events
    assert all(local_time(e).weekday() >= 5 for e in events)


def test_late_joiners_start_after_their_delay(population: Population, by_user: dict[str, list[Event]]) -> None:
    for student in students_of(population, "late_joiner"):
        assert student.start_day >= 7
        events = by_user[student.user_id]
        if events:
            assert day_of(events[0]) >= student.start_day
            assert events[0]["event_type"] in ("login", "notification_delivered")


def test_churners_say_nothing_after_their_churn_day(
    population: Population, by_user: dict[str, list[Event]], truth: dict[str, GroundTruth]
) -> None:
    churned = [s for s in population.students if truth[s.user_id].churns]
    assert len(churned) >= 20 and any(truth[s.user_id].unenrols for s in churned)
    for student in churned:
        record, events, churn_day = truth[student.user_id], by_user[student.user_id], student.churn_day
        assert churn_day is not None and record.churn_day == churn_day
        assert all(day_of(e) <= churn_day for e in events)
        last_visit = {e["event_type"] for e in events if day_of(e) == churn_day}
        if student.unenrols and last_visit:
            assert last_visit == {"login", "session_started", "unenrolled", "session_ended"}
        else:
            assert not last_visit


def test_streak_keepers_and_rare_churn_among_the_engaged(population: Population) -> None:
    engaged = students_of(population, "highly_engaged") + students_of(population, "steady")
    assert sum(s.churns for s in engaged) <= 0.15 * len(engaged)
    assert all(s.activity >= 0.9 for s in students_of(population, "highly_engaged"))
    assert any(s.activity >= 0.9 for s in students_of(population, "steady"))


def test_ability_shows_in_quiz_scores(population: Population, by_user: dict[str, list[Event]]) -> None:
    def mean_score(archetype: str) -> float:
        return statistics.mean(
            e["payload"]["score"] / e["payload"]["max_score"]
            for s in students_of(population, archetype)
            for e in by_user[s.user_id]
            if e["event_type"] == "quiz_submitted"
        )

    assert mean_score("highly_engaged") > mean_score("slowly_fading") + 0.1


def test_preferred_format_dominates_content_views(population: Population, by_user: dict[str, list[Event]]) -> None:
    views = preferred = 0
    for student in population.students:
        for event in by_user[student.user_id]:
            if event["event_type"] == "content_viewed":
                views += 1
                preferred += event["payload"]["content_format"] == student.preferred_format
    assert 0.65 < preferred / views < 0.85


# --- ground truth ---------------------------------------------------------------------------------------


def test_ground_truth_matches_the_events(
    population: Population, by_user: dict[str, list[Event]], truth: dict[str, GroundTruth]
) -> None:
    for student in population.students:
        record, events = truth[student.user_id], by_user[student.user_id]
        days = sorted({day_of(e) for e in events})
        assert record.active_days == len(days)
        assert record.last_active_day == (days[-1] if days else None)
        assert record.churns == (student.churn_day is not None and student.churn_day < DAYS)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_ground_truth_is_written(tmp_path: Path, truth: dict[str, GroundTruth], suffix: str) -> None:
    path = write_ground_truth(truth.values(), tmp_path / "out" / f"truth{suffix}")
    if suffix == ".csv":
        with path.open(newline="") as f:
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
        churn_days = {r["user_id"]: (int(r["churn_day"]) if r["churn_day"] else None) for r in rows}
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        churn_days = {r["user_id"]: r["churn_day"] for r in rows}
    assert len(rows) == len(truth)
    assert churn_days == {user: record.churn_day for user, record in truth.items()}
