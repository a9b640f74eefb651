"""Synthetic students: engagement archetypes, a course catalogue, and a population drawn from them.

The engine needs traffic that looks like real learners (time zones, devices, habits, courses) *and* a
known answer (who drops out, and when) so that its signals and risk scores can be checked against the
truth. Every draw comes from a ``random.Random`` seeded from the population seed (never the global
generator, never ``hash()`` of a string, which is salted per process), so a seed always gives the same
students on every machine.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

DEFAULT_START = date(2024, 9, 2)  # a Monday at the start of a term


@dataclass(frozen=True, slots=True)
class Course:
    """A catalogue course: lessons are taken in order, a quiz follows every block of lessons."""

    course_id: str
    lessons: int
    quizzes: int
    max_score: float

    def quiz_after(self, quiz: int) -> int:
        """How many lessons must be completed before quiz ``quiz`` (0-based) is taken."""
        return (quiz + 1) * self.lessons // self.quizzes


COURSES: tuple[Course, ...] = (
    Course("py-101", 32, 8, 10.0),
    Course("data-201", 40, 8, 20.0),
    Course("ml-301", 48, 12, 100.0),
    Course("stats-110", 30, 6, 10.0),
    Course("web-150", 36, 9, 20.0),
    Course("design-120", 24, 6, 10.0),
    Course("spanish-101", 60, 12, 100.0),
    Course("finance-130", 28, 7, 10.0),
)
COURSE_BY_ID: dict[str, Course] = {c.course_id: c for c in COURSES}

CONTENT_FORMATS: tuple[str, ...] = ("video", "audio", "text", "interactive")


@dataclass(frozen=True, slots=True)
class Archetype:
    """How one kind of learner behaves; the ranges are drawn from once per student.

    ``churn_after`` is drawn for every student (days after its first possible day): it is the churn day
    of those who churn, the length of the intense start of a binge, and twice the e-folding time of a
    fading student's activity. At most three sessions a day keeps every day inside its local date.
    """

    name: str
    share: float  # default share of a population
    activity: tuple[float, float]  # probability of studying on a day it can
    sessions: tuple[int, int]  # sessions on an active day
    lessons: tuple[int, int]  # lessons completed per session
    ability: tuple[float, float]  # expected quiz score as a fraction of the maximum
    churn_probability: float
    churn_after: tuple[int, int]
    unenrol_probability: float  # of the churners, those who unenrol instead of just going silent
    start_delay: tuple[int, int] = (0, 0)


ARCHETYPES: dict[str, Archetype] = {
    a.name: a
    for a in (
        Archetype("steady", 0.24, (0.55, 0.75), (1, 2), (0, 2), (0.6, 0.9), 0.08, (14, 90), 0.3),
        Archetype("highly_engaged", 0.12, (0.9, 0.98), (1, 3), (1, 2), (0.75, 0.95), 0.03, (21, 90), 0.2),
        Archetype("binge_then_quit", 0.13, (0.92, 0.98), (2, 3), (1, 2), (0.5, 0.85), 0.9, (3, 10), 0.3),
        Archetype("slowly_fading", 0.17, (0.7, 0.85), (1, 2), (0, 2), (0.4, 0.75), 0.85, (21, 60), 0.4),
        Archetype("weekend_only", 0.1, (0.75, 0.9), (1, 3), (1, 2), (0.55, 0.85), 0.2, (14, 70), 0.3),
        Archetype("late_joiner", 0.1, (0.55, 0.8), (1, 2), (0, 2), (0.5, 0.85), 0.25, (10, 45), 0.3, (7, 28)),
        Archetype("sporadic", 0.14, (0.15, 0.3), (1, 1), (0, 1), (0.35, 0.75), 0.4, (10, 60), 0.3),
    )
}
STREAK_KEEPER_SHARE = 0.3  # of steady students, those who study almost every day
STREAK_KEEPER_ACTIVITY = (0.9, 0.97)


class Zone(NamedTuple):
    name: str
    weight: float
    locales: tuple[str, ...]


ZONES: tuple[Zone, ...] = (
    Zone("Europe/London", 12, ("en-GB",)),
    Zone("America/New_York", 12, ("en-US", "es-US")),
    Zone("America/Los_Angeles", 8, ("en-US", "es-US")),
    Zone("America/Chicago", 5, ("en-US",)),
    Zone("America/Sao_Paulo", 8, ("pt-BR",)),
    Zone("Europe/Berlin", 8, ("de-DE", "en-GB")),
    Zone("Europe/Madrid", 4, ("es-ES",)),
    Zone("Africa/Lagos", 7, ("en-NG",)),
    Zone("Asia/Kolkata", 14, ("en-IN", "hi-IN")),
    Zone("Asia/Tokyo", 6, ("ja-JP",)),
    Zone("Asia/Singapore", 4, ("en-SG", "zh-SG")),
    Zone("Australia/Sydney", 6, ("en-AU",)),
    Zone("Pacific/Auckland", 2, ("en-NZ",)),
)


def last_finished_day(now: datetime | None = None) -> date:
    """The latest date that is over in every catalogue zone: simulated days up to it hold no event after ``now``.

    UTC's yesterday is not that: from 00:00 to 08:00 UTC it is still yesterday evening in Los Angeles, so its
    events would lie in the future - the collector refuses them, and a test's 'today' disagrees with the engine's."""
    at = now or datetime.now(UTC)
    return min(at.astimezone(ZoneInfo(z.name)).date() for z in ZONES) - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """One device a student uses: the envelope's platform, device and app version come from it."""

    platform: str
    type: str
    os: str
    os_version: str
    model: str
    app_version: str

    def as_dict(self) -> dict[str, str]:
        return {"type": self.type, "os": self.os, "os_version": self.os_version, "model": self.model}


DEVICES: dict[str, tuple[DeviceProfile, ...]] = {
    "web": (
        DeviceProfile("web", "desktop", "Windows", "11", "Chrome 124", "web-2024.8.1"),
        DeviceProfile("web", "desktop", "macOS", "14.5", "Safari 17.5", "web-2024.8.1"),
        DeviceProfile("web", "desktop", "Linux", "6.8", "Firefox 126", "web-2024.8.1"),
        DeviceProfile("web", "desktop", "ChromeOS", "124", "Chrome 124", "web-2024.8.1"),
    ),
    "ios": (
        DeviceProfile("ios", "phone", "iOS", "17.5", "iPhone15,2", "5.12.0"),
        DeviceProfile("ios", "phone", "iOS", "16.7", "iPhone12,1", "5.11.2"),
        DeviceProfile("ios", "tablet", "iPadOS", "17.5", "iPad13,18", "5.12.0"),
    ),
    "android": (
        DeviceProfile("android", "phone", "Android", "14", "Pixel 8", "5.12.1"),
        DeviceProfile("android", "phone", "Android", "13", "SM-A546B", "5.12.1"),
        DeviceProfile("android", "tablet", "Android", "12", "SM-X200", "5.10.0"),
    ),
}
PLATFORM_WEIGHTS: dict[str, float] = {"web": 0.45, "android": 0.35, "ios": 0.2}

# Local hours at which sessions start: early birds, lunch breaks, evenings, night owls.
CHRONOTYPES: tuple[tuple[tuple[int, ...], float], ...] = (
    ((6, 7, 8), 0.15),
    ((11, 12, 13, 14), 0.2),
    ((17, 18, 19, 20), 0.4),
    ((21, 22), 0.25),
)
FORMAT_WEIGHTS: tuple[float, ...] = (0.4, 0.15, 0.25, 0.2)  # in CONTENT_FORMATS order
# The intervention group each student responds to (schemas.profile.TriggerGroup values), and how often.
TRIGGER_WEIGHTS: dict[str, float] = {"reminders": 0.4, "achievement": 0.25, "competition": 0.2, "social": 0.15}


@dataclass(frozen=True, slots=True)
class Student:
    """One synthetic learner: who they are, their habits, and the truth about whether they drop out.

    Day indexes count calendar days from ``start`` in the student's own zone. ``churn_day`` is the
    first day with no learning at all (``None``: never churns); students who ``unenrol`` come back on
    that day only to unenrol, the others just go silent.
    """

    user_id: str
    seed: int
    archetype: str
    start: date
    timezone: str
    locale: str
    devices: tuple[DeviceProfile, ...]  # the first is the one used most
    courses: tuple[str, ...]
    enrol_days: tuple[int, ...]  # per course, the first day it can be enrolled in
    study_hours: tuple[int, ...]  # local hours, ascending
    preferred_format: str
    ability: float
    activity: float
    start_day: int
    churn_day: int | None
    unenrols: bool
    burst_days: int  # binge_then_quit: length of the intense start
    fade_days: float  # slowly_fading: e-folding time of the daily activity
    # The intervention group the student responds to (engage.simulator.triggers); drawn from a stream of its
    # own, so adding it left every other draw, and so every event, as it was.
    responsive_trigger: str = "reminders"

    @property
    def churns(self) -> bool:
        return self.churn_day is not None


def derive_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed from a seed and labels, stable across processes and Python versions."""
    text = ":".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _uniform(rng: random.Random, bounds: tuple[float, float]) -> float:
    return round(rng.uniform(*bounds), 4)


def draw_student(index: int, seed: int, start: date, archetype: Archetype) -> Student:
    """Student ``index`` of the population with seed ``seed``; depends on nothing else."""
    student_seed = derive_seed(seed, "student", index)
    rng = random.Random(student_seed)
    zone = rng.choices(ZONES, weights=[z.weight for z in ZONES])[0]
    platforms = list(PLATFORM_WEIGHTS)
    primary = rng.choices(platforms, weights=list(PLATFORM_WEIGHTS.values()))[0]
    devices = [rng.choice(DEVICES[primary])]
    if rng.random() < 0.35:
        devices.append(rng.choice(DEVICES[rng.choice([p for p in platforms if p != primary])]))
    n_courses = rng.choices((1, 2, 3), weights=(0.5, 0.35, 0.15))[0]
    courses = tuple(c.course_id for c in rng.sample(COURSES, n_courses))
    start_day = rng.randint(*archetype.start_delay)
    enrol_days = (start_day, *sorted(start_day + rng.randint(0, 21) for _ in courses[1:]))
    chronotype = rng.choices(CHRONOTYPES, weights=[w for _, w in CHRONOTYPES])[0][0]
    hours = {rng.choice(chronotype)}
    if rng.random() < 0.4:
        hours.add(rng.choice(rng.choice(CHRONOTYPES)[0]))
    activity = _uniform(rng, archetype.activity)
    if archetype.name == "steady" and rng.random() < STREAK_KEEPER_SHARE:
        activity = _uniform(rng, STREAK_KEEPER_ACTIVITY)
    after = rng.randint(*archetype.churn_after)
    churn_day = start_day + after if rng.random() < archetype.churn_probability else None
    if churn_day is not None and archetype.name == "weekend_only":
        while (start + timedelta(days=churn_day)).weekday() < 5:  # they only ever come back at weekends
            churn_day += 1
    return Student(
        user_id=f"sim-{index:06d}",
        seed=student_seed,
        archetype=archetype.name,
        start=start,
        timezone=zone.name,
        locale=rng.choice(zone.locales),
        devices=tuple(devices),
        courses=courses,
        enrol_days=enrol_days,
        study_hours=tuple(sorted(hours)),
        preferred_format=rng.choices(CONTENT_FORMATS, weights=FORMAT_WEIGHTS)[0],
        ability=_uniform(rng, archetype.ability),
        activity=activity,
        start_day=start_day,
        churn_day=churn_day,
        unenrols=churn_day is not None and rng.random() < archetype.unenrol_probability,
        burst_days=after if archetype.name == "binge_then_quit" else 0,
        fade_days=after / 2 if archetype.name == "slowly_fading" else 0.0,
        responsive_trigger=_draw_trigger(seed, index),
    )


def _draw_trigger(seed: int, index: int) -> str:
    rng = random.Random(derive_seed(seed, "trigger", index))
    return rng.choices(list(TRIGGER_WEIGHTS), weights=list(TRIGGER_WEIGHTS.values()))[0]


def _quotas(n: int, mix: Mapping[str, float]) -> dict[str, int]:
    """Exact counts per archetype (largest remainder), so small populations still hold every kind."""
    total = sum(mix.values())
    raw = {name: n * w / total for name, w in mix.items()}
    counts = {name: int(r) for name, r in raw.items()}
    by_remainder = sorted(mix, key=lambda name: counts[name] - raw[name])
    for name in by_remainder[: n - sum(counts.values())]:
        counts[name] += 1
    return counts


@dataclass(frozen=True, slots=True)
class Population:
    """The students of one simulation; the seed and start date are all it takes to rebuild it."""

    seed: int
    start: date
    students: tuple[Student, ...]

    @classmethod
    def generate(
        cls,
        n_students: int,
        seed: int,
        start: date = DEFAULT_START,
        mix: Mapping[str, float] | None = None,
    ) -> Population:
        """``n_students`` students; ``mix`` (archetype name -> weight) defaults to the archetypes' shares."""
        mix = mix if mix is not None else {a.name: a.share for a in ARCHETYPES.values()}
        unknown = set(mix) - set(ARCHETYPES)
        if unknown:
            raise ValueError(f"unknown archetypes {sorted(unknown)}; known: {sorted(ARCHETYPES)}")
        if min(mix.values(), default=0) < 0 or sum(mix.values()) <= 0:
            raise ValueError(f"archetype weights must be >= 0 and not all 0, got {dict(mix)}")
        names = [name for name, count in _quotas(n_students, mix).items() for _ in range(count)]
        random.Random(derive_seed(seed, "mix")).shuffle(names)
        students = tuple(draw_student(i, seed, start, ARCHETYPES[name]) for i, name in enumerate(names))
        return cls(seed=seed, start=start, students=students)
