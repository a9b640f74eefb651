"""A student and a day index -> that day's behaviour events, as dicts in the contract's JSON form.

Each student-day is simulated in two steps, each with its own generator seeded from (student, day):
- the *plan* (studies today? which sessions, courses, how many lessons) depends on the progress made on
  earlier days, so a ``Timeline`` walks the days in order and keeps its place;
- the *rendering* (times, devices, content, scores, notifications) depends only on the plan, so asking
  for a day twice, or for days out of order, gives the same events.
Events are plain dicts, not pydantic models: building a model per event would cost more than the
simulation itself. Each one is valid under ``schemas.events.parse_event`` (the unit tests check).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from engage.simulator.population import (
    ARCHETYPES,
    CONTENT_FORMATS,
    COURSE_BY_ID,
    COURSES,
    Course,
    Population,
    Student,
)

Event = dict[str, Any]
# (local seconds, event type, index into Student.devices, session id, course id, payload)
_Step = tuple[int, str, int, str | None, str | None, dict[str, Any]]

_EPOCH = date(1970, 1, 1)
_DAY_END = 86_340  # 23:59 local: sessions end before it, so a day's events stay on its local date
_MIN_GAP = 600  # seconds between two sessions of one day
AFTER_BURST_ACTIVITY = 0.08  # a binge student who did not churn still drops in now and then
FADE_FLOOR = 0.04
FADE_ABILITY_PER_DAY = 0.004  # a fading student's quiz scores sink as the interest goes
NOTIFICATION_PROBABILITY = 0.3
NOTIFICATION_OPEN_RATE = 0.55
NOTIFICATION_CLICK_RATE = 0.5

VIEW_SECONDS: dict[str, tuple[int, int]] = {
    "video": (240, 900),
    "audio": (180, 720),
    "text": (90, 420),
    "interactive": (180, 600),
}
TEMPLATES = ("daily_reminder", "streak_reminder", "new_content", "weekly_digest")
UNENROL_REASONS = ("too_busy", "not_what_i_expected", "too_difficult", "cost", "")
REFERRERS = ("direct", "bookmark", "search", "email")
WEB_LOGINS = ("password", "sso", "social", "magic_link")
_QUIZ_AT: dict[str, dict[int, int]] = {c.course_id: {c.quiz_after(q): q for q in range(c.quizzes)} for c in COURSES}


def activity_probability(student: Student, day: int) -> float:
    """Chance that the student studies on ``day``: the archetype's habit; zero before start and from churn."""
    if day < student.start_day or (student.churn_day is not None and day >= student.churn_day):
        return 0.0
    age = day - student.start_day
    match student.archetype:
        case "weekend_only":
            return student.activity if (student.start + timedelta(days=day)).weekday() >= 5 else 0.0
        case "slowly_fading":
            return max(student.activity * math.exp(-age / student.fade_days), FADE_FLOOR)
        case "binge_then_quit":
            return student.activity if age < student.burst_days else AFTER_BURST_ACTIVITY
    return student.activity


# --------------------------------------------------------------------------------------------------------
# Plans: what a student does on a day, and the progress it leaves behind
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Progress:
    enrolled: tuple[bool, ...]  # per course of the student
    lessons_done: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Session:
    course: int  # index into Student.courses
    first_lesson: int  # lessons of that course completed before the session
    lessons: int  # lessons completed in it (0: a review of earlier content)


@dataclass(frozen=True, slots=True)
class _Plan:
    end: _Progress
    enrol: tuple[int, ...]
    sessions: tuple[_Session, ...]
    unenrol: tuple[int, ...]  # a churner's last visit: nothing but unenrolling


def _day_seed(student: Student, day: int, stream: int) -> int:
    return (student.seed << 24) | (day << 1) | stream


def _randint(rng: random.Random, bounds: tuple[int, int]) -> int:
    """``rng.randint`` is ~10x slower than this and the plan draws it per session."""
    return bounds[0] + int(rng.random() * (bounds[1] - bounds[0] + 1))


def _plan_day(student: Student, day: int, progress: _Progress) -> _Plan | None:
    if student.churn_day is not None and day >= student.churn_day:
        leaving = tuple(i for i, enrolled in enumerate(progress.enrolled) if enrolled)
        if day == student.churn_day and student.unenrols and leaving:
            return _Plan(progress, (), (), leaving)
        return None
    rng = random.Random(_day_seed(student, day, 0))
    chance = activity_probability(student, day)
    if rng.random() >= chance:
        return None
    archetype = ARCHETYPES[student.archetype]
    keen = chance / student.activity  # 1 at full habit, less as a fading or post-binge student drifts off
    totals = [COURSE_BY_ID[c].lessons for c in student.courses]
    enrolled = list(progress.enrolled)
    done = list(progress.lessons_done)
    enrol = tuple(i for i, first in enumerate(student.enrol_days) if first <= day and not enrolled[i])
    for i in enrol:
        enrolled[i] = True
    open_courses = [i for i, e in enumerate(enrolled) if e]
    sessions: list[_Session] = []
    for _ in range(_randint(rng, archetype.sessions) if rng.random() < keen else archetype.sessions[0]):
        unfinished = [i for i in open_courses if done[i] < totals[i]]
        if unfinished:
            course = unfinished[0] if rng.random() < 0.6 else rng.choice(unfinished)
            wanted = _randint(rng, archetype.lessons) if rng.random() < keen else archetype.lessons[0]
            lessons = min(wanted, totals[course] - done[course])
        else:
            course, lessons = rng.choice(open_courses), 0
        sessions.append(_Session(course, done[course], lessons))
        done[course] += lessons
    return _Plan(_Progress(tuple(enrolled), tuple(done)), enrol, tuple(sessions), ())


class Timeline:
    """One student's days. Plans need the progress of earlier days, so the timeline keeps its place:
    walking the days in order costs one plan per day; going back restarts from day 0 (same result)."""

    def __init__(self, student: Student) -> None:
        self.student = student
        n = len(student.courses)
        self._initial = _Progress((False,) * n, (0,) * n)
        self._day = 0
        self._progress = self._initial
        self._cached: tuple[int, _Plan | None] | None = None

    def _plan(self, day: int) -> _Plan | None:
        if day < 0:
            raise ValueError(f"day indexes start at 0, got {day}")
        if day < self._day:
            self._day, self._progress = 0, self._initial
        while self._day < day:
            plan = self._plan_here()
            if plan is not None:
                self._progress = plan.end
            self._day += 1
        return self._plan_here()

    def _plan_here(self) -> _Plan | None:
        if self._cached is None or self._cached[0] != self._day:
            self._cached = (self._day, _plan_day(self.student, self._day, self._progress))
        return self._cached[1]

    def active(self, day: int) -> bool:
        """Whether the student produces any event on ``day``."""
        return self._plan(day) is not None

    def timed_events(self, day: int) -> tuple[list[int], list[Event]]:
        """The day's events in event-time order, and beside them their Unix times (to merge students by)."""
        plan = self._plan(day)
        return ([], []) if plan is None else _DayRenderer(self.student, day).render(plan)

    def events(self, day: int) -> list[Event]:
        return self.timed_events(day)[1]


def events_for_day(student: Student, day: int) -> list[Event]:
    """One student's events on ``day`` in event-time order (replays from day 0; a ``Timeline`` walks on)."""
    return Timeline(student).events(day)


# --------------------------------------------------------------------------------------------------------
# Rendering: a plan -> timed events
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _LocalDay:
    prefix: str  # "2024-07-08T"
    suffix: str  # "+01:00"
    midnight: int  # Unix seconds of local 00:00 at the day's daytime offset


@lru_cache(maxsize=16_384)
def _local_day(zone: str, day: date) -> _LocalDay:
    """The UTC offset of a local date, taken at noon. It holds for every time from 05:00 on, the earliest
    an event is placed, because the catalogue's zones change their clocks at night (a unit test checks)."""
    midnight = int(datetime(day.year, day.month, day.day, 12, tzinfo=ZoneInfo(zone)).timestamp()) - 43_200
    offset = (day - _EPOCH).days * 86_400 - midnight
    hours, minutes = divmod(abs(offset) // 60, 60)
    return _LocalDay(f"{day.isoformat()}T", f"{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}", midnight)


class _DayRenderer:
    """Turns one student-day plan into events: sessions are built on a relative clock, then placed in the
    student's study hours, pulled earlier if needed so that the whole day ends before local midnight."""

    def __init__(self, student: Student, day: int) -> None:
        self.student = student
        self.day = day
        self.rng = random.Random(_day_seed(student, day, 1))
        self.ids = f"{student.user_id}-{day}-"
        ability = student.ability
        if student.archetype == "slowly_fading":
            ability -= FADE_ABILITY_PER_DAY * (day - student.start_day)
        self.ability = max(ability, 0.05)

    def render(self, plan: _Plan) -> tuple[list[int], list[Event]]:
        rng, student = self.rng, self.student
        sessions: list[_Session | None] = list(plan.sessions) or [None]
        n_devices = len(student.devices)
        devices = [0 if rng.random() < 0.75 else int(rng.random() * n_devices) for _ in sessions]
        notify = not plan.unenrol and rng.random() < NOTIFICATION_PROBABILITY
        opened = notify and rng.random() < NOTIFICATION_OPEN_RATE
        clicked = opened and rng.random() < NOTIFICATION_CLICK_RATE
        built = []
        for k, (session, device) in enumerate(zip(sessions, devices, strict=True)):
            referrer = "notification" if clicked and k == 0 else rng.choice(REFERRERS)
            built.append(self._session(k, device, referrer, session, plan.enrol if k == 0 else (), plan.unenrol))
        starts = self._place([duration for _, duration in built])
        # Already in time order: the reminder comes before the first session, sessions do not overlap.
        segments = [(0, self._notification(starts[0], devices[0], opened, clicked))] if notify else []
        segments += [(start, steps) for start, (steps, _) in zip(starts, built, strict=True)]
        return self._events(segments)

    def _place(self, durations: list[int]) -> list[int]:
        """Session start times (local seconds): at the study hours, in order, all over before 23:59."""
        rng, hours = self.rng, self.student.study_hours
        if len(durations) < len(hours):  # fewer sessions than study hours: which ones is up to the day
            first = int(rng.random() * (len(hours) - len(durations) + 1))
            hours = hours[first : first + len(durations)]
        starts: list[int] = []
        end = -_MIN_GAP
        for k, duration in enumerate(durations):
            if k < len(hours):
                wanted = hours[k] * 3600 + int(rng.random() * 3000)
            else:
                wanted = end + 1200 + int(rng.random() * 4200)
            starts.append(max(wanted, end + _MIN_GAP))
            end = starts[-1] + duration
        limit = _DAY_END
        for k in reversed(range(len(durations))):
            starts[k] = min(starts[k], limit - durations[k])
            limit = starts[k] - _MIN_GAP
        return starts

    def _session(
        self,
        index: int,
        device: int,
        referrer: str,
        study: _Session | None,
        enrol: tuple[int, ...],
        unenrol: tuple[int, ...],
    ) -> tuple[list[_Step], int]:
        """One session on a clock starting at 0; returns its steps and its length in seconds."""
        rng, courses = self.rng, self.student.courses
        sid = f"{self.ids}s{index}"
        steps: list[_Step] = []
        t = 0
        if index == 0 or rng.random() < 0.35:
            method = rng.choice(WEB_LOGINS) if self.student.devices[device].platform == "web" else "token"
            steps.append((t, "login", device, sid, None, {"method": method}))
            t += 2 + int(rng.random() * 8)
        steps.append((t, "session_started", device, sid, None, {"referrer": referrer}))
        started = t
        for i in enrol:
            t += 3 + int(rng.random() * 30)
            steps.append(
                (
                    t,
                    "enrolled",
                    device,
                    sid,
                    courses[i],
                    {"enrolment_id": f"{self.student.user_id}-{courses[i]}"},
                )
            )
        for i in unenrol:
            t += 20 + int(rng.random() * 100)
            payload = {
                "enrolment_id": f"{self.student.user_id}-{courses[i]}",
                "reason": rng.choice(UNENROL_REASONS),
            }
            steps.append((t, "unenrolled", device, sid, courses[i], payload))
        if study is not None:
            t = self._study(steps, t, device, sid, study)
        t += 5 + int(rng.random() * 60)
        steps.append((t, "session_ended", device, sid, None, {"duration_seconds": float(t - started)}))
        return steps, t

    def _study(self, steps: list[_Step], t: int, device: int, sid: str, study: _Session) -> int:
        rng = self.rng
        course = COURSE_BY_ID[self.student.courses[study.course]]
        cid = course.course_id
        if study.lessons == 0:  # a review of what was done (or a first look at lesson 1)
            for _ in range(1 + int(rng.random() * 2)):
                lesson = 1 + int(rng.random() * max(study.first_lesson, 1))
                t = self._view(steps, t, device, sid, cid, f"{cid}-l{lesson:02d}", True)
            return t
        for n in range(study.first_lesson + 1, study.first_lesson + study.lessons + 1):
            lesson_id = f"{cid}-l{n:02d}"
            t += 5 + int(rng.random() * 30)
            steps.append((t, "lesson_started", device, sid, cid, {"lesson_id": lesson_id}))
            began = t
            for _ in range(1 + int(rng.random() * 2)):
                t = self._view(steps, t, device, sid, cid, lesson_id, True)
            t += 5 + int(rng.random() * 30)
            steps.append(
                (
                    t,
                    "lesson_completed",
                    device,
                    sid,
                    cid,
                    {"lesson_id": lesson_id, "duration_seconds": float(t - began)},
                )
            )
            quiz = _QUIZ_AT[cid].get(n)
            if quiz is not None:
                t = self._quiz(steps, t, device, sid, course, quiz)
        done = study.first_lesson + study.lessons
        t += 2 + int(rng.random() * 10)
        progress = {
            "progress_pct": round(100 * done / course.lessons, 1),
            "lessons_completed": done,
            "lessons_total": course.lessons,
        }
        steps.append((t, "course_progress", device, sid, cid, progress))
        if done < course.lessons and rng.random() < 0.15:  # starts the next lesson, leaves it half-way
            lesson_id = f"{cid}-l{done + 1:02d}"
            t += 5 + int(rng.random() * 30)
            steps.append((t, "lesson_started", device, sid, cid, {"lesson_id": lesson_id}))
            t = self._view(steps, t, device, sid, cid, lesson_id, False)
        return t

    def _view(
        self,
        steps: list[_Step],
        t: int,
        device: int,
        sid: str,
        cid: str,
        lesson_id: str,
        finish: bool,
    ) -> int:
        """A content view, reported when it ends; the preferred format is chosen more and watched longer."""
        rng, preferred = self.rng, self.student.preferred_format
        fmt = preferred if rng.random() < 0.65 else rng.choice(CONTENT_FORMATS)
        lo, hi = VIEW_SECONDS[fmt]
        length = lo + int(rng.random() * (hi - lo))
        if finish and rng.random() < (0.9 if fmt == preferred else 0.6):
            pct = 100.0
        else:
            pct = round(15 + rng.random() * 80, 1)
        seconds = int(length * pct / 100)
        t += 5 + int(rng.random() * 30) + seconds
        payload = {
            "content_id": f"{lesson_id}-{fmt}",
            "content_format": fmt,
            "seconds_viewed": float(seconds),
            "completion_pct": pct,
        }
        steps.append((t, "content_viewed", device, sid, cid, payload))
        return t

    def _quiz(self, steps: list[_Step], t: int, device: int, sid: str, course: Course, quiz: int) -> int:
        """Quiz attempts: scores scatter around the student's ability; a fail is often retried at once."""
        rng = self.rng
        for attempt in (1, 2):
            took = 120 + int(rng.random() * 600)
            fraction = min(1.0, max(0.0, rng.gauss(self.ability + 0.08 * (attempt - 1), 0.12)))
            score = round(fraction * course.max_score, 1)
            passed = score >= course.max_score / 2
            t += took
            payload = {
                "quiz_id": f"{course.course_id}-q{quiz + 1}",
                "score": score,
                "max_score": course.max_score,
                "attempt": attempt,
                "duration_seconds": float(took),
                "passed": passed,
            }
            steps.append((t, "quiz_submitted", device, sid, course.course_id, payload))
            if passed or rng.random() < 0.4:
                break
            t += 10 + int(rng.random() * 60)
        return t

    def _notification(self, first_start: int, device: int, opened: bool, clicked: bool) -> list[_Step]:
        """A platform reminder delivered 10-45 minutes before the day's first session, opened before it."""
        rng = self.rng
        channel = "push" if self.student.devices[device].platform != "web" else rng.choice(("email", "in_app"))
        payload = {
            "notification_id": f"{self.ids}n",
            "channel": channel,
            "template_id": rng.choice(TEMPLATES),
        }
        lead = 600 + int(rng.random() * 2100)
        t = first_start - lead
        steps: list[_Step] = [(t, "notification_delivered", device, None, None, payload)]
        if opened:
            t += 30 + int(rng.random() * (lead - 150))
            steps.append((t, "notification_opened", device, None, None, dict(payload)))
        if clicked:
            steps.append((t + 3 + int(rng.random() * 20), "notification_clicked", device, None, None, dict(payload)))
        return steps

    def _events(self, segments: list[tuple[int, list[_Step]]]) -> tuple[list[int], list[Event]]:
        """Steps (local seconds, shifted by their segment's start) -> events in the contract's JSON form."""
        student = self.student
        uid, zone, locale, ids = student.user_id, student.timezone, student.locale, self.ids
        local = _local_day(zone, student.start + timedelta(days=self.day))
        prefix, suffix, midnight = local.prefix, local.suffix, local.midnight
        devices = [(d.platform, d.as_dict(), d.app_version) for d in student.devices]
        times: list[int] = []
        events: list[Event] = []
        seq = 0
        for start, steps in segments:
            for t, event_type, device, sid, cid, payload in steps:
                t += start
                minutes, seconds = divmod(t, 60)
                hours, minutes = divmod(minutes, 60)
                platform, device_dict, app_version = devices[device]
                times.append(midnight + t)
                events.append(
                    {
                        "event_id": f"{ids}{seq}",
                        "event_type": event_type,
                        "user_id": uid,
                        "event_time": f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}{suffix}",
                        "schema_version": 1,
                        "platform": platform,
                        "device": device_dict.copy(),
                        "app_version": app_version,
                        "session_id": sid,
                        "course_id": cid,
                        "timezone": zone,
                        "locale": locale,
                        "payload": payload,
                    }
                )
                seq += 1
        return times, events


# --------------------------------------------------------------------------------------------------------
# The whole population, day by day
# --------------------------------------------------------------------------------------------------------


def iter_event_days(population: Population, days: int) -> Iterator[tuple[int, list[Event]]]:
    """``(day, events)`` for day 0 .. days-1, every student's local days 0 .. days-1 in total.

    Students live in different zones, so one local day index spans about two UTC days. To make the whole
    stream ordered by event time (what a replay wants), ``day`` here is the UTC day ``start + day``:
    its events are sorted by event time, the first batch also holds what happened before it (far-east
    zones' day 0) and the last also what came after (far-west zones' last evening). A UTC day can only
    hold local days ``day - 1 .. day + 1``, so at most three local days are held in memory.
    """
    timelines = [Timeline(s) for s in population.students]
    origin = (population.start - _EPOCH).days * 86_400
    last = days - 1
    pending: dict[int, tuple[list[int], list[Event]]] = {}
    for local_day in range(days):
        for timeline in timelines:
            times, events = timeline.timed_events(local_day)
            for when, event in zip(times, events, strict=True):
                bucket = pending.setdefault(min(max((when - origin) // 86_400, 0), last), ([], []))
                bucket[0].append(when)
                bucket[1].append(event)
        if local_day >= 1:
            yield local_day - 1, _in_time_order(*pending.pop(local_day - 1, ([], [])))
    if days > 0:
        yield last, _in_time_order(*pending.pop(last, ([], [])))


def _in_time_order(times: list[int], events: list[Event]) -> list[Event]:
    """Stable, so one student's events within the same second keep their order."""
    return [events[i] for i in sorted(range(len(events)), key=times.__getitem__)]
