"""The personalisation profile (``schemas.profile.Profile``) from a student's state and their cohort. Pure.

What it reads, all already kept by the worker (``processors.state``): the all-time personalisation counters
(``UserState.prefs``: views and completion per content format, quiz submissions and retries), the send-time
activity histogram (``UserState.activity``, the one send-time optimisation uses: no second one), the signal
snapshot (lessons per week, quiz scores, course progress and calendar), and the trigger counts kept in the
record (``TriggerStats``: which intervention groups were sent, opened, clicked and came back after).

**Smoothing toward the cohort.** Raw shares from three views say nothing; every rate here is a posterior:
- format shares: a Dirichlet prior with the cohort's mean shares as its mean and ``FORMAT_PRIOR`` (8) views of
  strength, updated with the student's views per format. 8 is about three active days of a typical student
  (the simulator's students view ~3 contents a day): a student with one day of views is still mostly the
  cohort, one with two weeks (~40 views) is ~85 % their own. Each share's interval is its Beta marginal's;
- completion per format: a Beta with the cohort's mean completion for that format as mean and
  ``COMPLETION_PRIOR`` (4) views of strength;
- quiz retries: a Beta with the cohort's retry share and ``RETRY_PRIOR`` (5) submissions of strength;
- triggers: per group, a Beta for opened, clicked and returned per intervention sent, with the cohort's rate
  as prior mean and ``TRIGGER_PRIOR`` (2) sends of strength: interventions are rare (a few a week at most), so a
  weak prior lets three or four sends move it, while 0 sends keep the cohort's rate and a wide interval.
Intervals are 90 % equal-tailed credible intervals (``scipy.special.betaincinv``).

**Cohort** (``ProfileCohorts``): per course and over all students, exponentially weighted means of the
students' own values (format shares, completion, lessons per week, quiz score, retry share, trigger rates),
each student's profile counting once when it is computed (about once a day): no per-student memory, O(1) per
update, forgetting with ``COHORT_MEMORY`` observations. In memory: after a restart it refills as students are
profiled; until a cohort has ``COHORT_MIN`` observations the wider one (all students), then fixed defaults
(uniform format shares, 0.5 rates) are the prior.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from processors.notify.sendtime import BUCKETS, SendTimeConfig, activity_estimate
from processors.state import (
    CHANNEL_DELIVERED,
    CHANNEL_OPENED,
    CHANNELS,
    COMPLETION,
    COURSE_ENROLLED,
    COURSE_UNKNOWN,
    FORMATS,
    PREF_WIDTH,
    QUIZ_RETRIES,
    QUIZ_SUBMISSIONS,
    UserState,
)
from schemas.courses import CourseCalendar
from schemas.events import Channel
from schemas.interventions import RETURN_WINDOW_SECONDS, InterventionType
from schemas.profile import (
    TRIGGER_GROUPS,
    TRIGGER_OF,
    ChannelAffinity,
    Channels,
    Difficulty,
    Estimate,
    FormatAffinity,
    Formats,
    Pace,
    Profile,
    StudyTime,
    Trigger,
    Triggers,
)
from schemas.signals import SignalSnapshot

FORMAT_PRIOR = 8.0
COMPLETION_PRIOR = 4.0
RETRY_PRIOR = 5.0
TRIGGER_PRIOR = 2.0
CREDIBLE = 0.90
RETURN_WINDOW = RETURN_WINDOW_SECONDS  # seconds after a send in which activity counts as coming back
CHANNEL_MIN_DELIVERED = 3  # deliveries on a channel before its open rate can make it the preferred one
LEADING_MIN_SENDS = 3  # sends before a student's own opens name their leading trigger group
MAX_AWAITING = 16  # sends whose responses are still attributed; older than the window they go anyway
COHORT_MEMORY = 5_000.0
COHORT_MIN = 20.0
TOP = 3

# TriggerStats counters per group, in this order.
EXPOSED, OPENED, CLICKED, RETURNED = 0, 1, 2, 3
_OPENED_BIT, _CLICKED_BIT, _RETURNED_BIT = 1, 2, 4
_GROUP_INDEX = {g: i for i, g in enumerate(TRIGGER_GROUPS)}


# -- triggers: kept in the record ------------------------------------------------------------------------------


@dataclass(slots=True)
class TriggerStats:
    """Per trigger group, interventions sent and how many were opened, clicked and came back after (each
    intervention counts once per kind, however many opens it got); and the recent sends still awaiting
    responses, ``[intervention id, group index, sent at (epoch s), flags]``. Stored in the student's record."""

    counts: list[list[int]] = field(default_factory=lambda: [[0, 0, 0, 0] for _ in TRIGGER_GROUPS])
    awaiting: list[list[Any]] = field(default_factory=list)
    unattributed: int = 0

    def is_empty(self) -> bool:
        return not self.awaiting and not self.unattributed and not any(any(c) for c in self.counts)

    def sent(self, intervention_id: str, kind: InterventionType, at: float) -> bool:
        """An intervention went (or will go, deferred) to the student at ``at``; False for a kind in no group."""
        group = TRIGGER_OF.get(kind)
        if group is None or any(a[0] == intervention_id for a in self.awaiting):
            return False
        g = _GROUP_INDEX[group]
        self.counts[g][EXPOSED] += 1
        self.awaiting.append([intervention_id, g, at, 0])
        if len(self.awaiting) > MAX_AWAITING:
            del self.awaiting[0]
        return True

    def respond(self, intervention_id: str, clicked: bool) -> bool:
        """An open (or a click, which implies the open) of ``intervention_id``; False when no awaiting send has
        that id (an intervention this worker did not send, or sent more than ``MAX_AWAITING`` sends ago):
        counted as unattributed, never guessed."""
        for entry in self.awaiting:
            if entry[0] == intervention_id:
                g, flags = entry[1], entry[3]
                if not flags & _OPENED_BIT:
                    self.counts[g][OPENED] += 1
                    flags |= _OPENED_BIT
                if clicked and not flags & _CLICKED_BIT:
                    self.counts[g][CLICKED] += 1
                    flags |= _CLICKED_BIT
                entry[3] = flags
                return True
        self.unattributed += 1
        return False

    def active(self, at: float) -> None:
        """The student was active at ``at`` (epoch s): each send before it, within the window, came back after."""
        kept = []
        for entry in self.awaiting:
            sent_at = entry[2]
            if sent_at < at <= sent_at + RETURN_WINDOW and not entry[3] & _RETURNED_BIT:
                self.counts[entry[1]][RETURNED] += 1
                entry[3] |= _RETURNED_BIT
            if at <= sent_at + 2 * RETURN_WINDOW:
                kept.append(entry)  # a late open may still come; a send two windows old goes
        self.awaiting = kept

    def leading_group(self, min_sends: int = LEADING_MIN_SENDS) -> str | None:
        """The trigger group whose sends this student opened most (smoothed: (opened + 1) / (sent + 2)), once they
        were sent ``min_sends`` interventions; None before. The bandit's context below the tier: cheap, from the
        counts alone (the daily profile's ``preferred_trigger`` is the same ranking with the cohort's prior)."""
        if sum(row[EXPOSED] for row in self.counts) < min_sends:
            return None
        g = max(range(len(TRIGGER_GROUPS)), key=lambda i: (self.counts[i][OPENED] + 1) / (self.counts[i][EXPOSED] + 2))
        return TRIGGER_GROUPS[g].value

    def to_dict(self) -> dict[str, Any]:
        return {"v": 1, "n": self.counts, "a": self.awaiting, "u": self.unattributed}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TriggerStats:
        if not data:
            return cls()
        if data.get("v") != 1:
            raise ValueError(f"unsupported TriggerStats version {data.get('v')!r} (expected 1)")
        counts = [[int(x) for x in row] for row in data["n"]]
        if len(counts) != len(TRIGGER_GROUPS) or any(len(row) != 4 for row in counts):
            raise ValueError(f"TriggerStats: 'n' must be {len(TRIGGER_GROUPS)} rows of 4 counts")
        awaiting = [[str(a[0]), int(a[1]), float(a[2]), int(a[3])] for a in data.get("a", [])]
        return cls(counts, awaiting, int(data.get("u", 0)))


# -- the cohort ------------------------------------------------------------------------------------------------

# Cohort value layout: format shares (4), completion per format (4), lessons per week, quiz score (0..1), retry
# share, then per trigger group the open, click and return rates.
_SHARES, _COMPL = 0, len(FORMATS)
_PACE = 2 * len(FORMATS)
_SCORE, _RETRY = _PACE + 1, _PACE + 2
_TRIG = _PACE + 3
COHORT_WIDTH = _TRIG + 3 * len(TRIGGER_GROUPS)
_DEFAULTS = (
    [1 / len(FORMATS)] * len(FORMATS)
    + [0.5] * len(FORMATS)
    + [math.nan, math.nan, 0.2]
    + [0.5] * (3 * len(TRIGGER_GROUPS))
)


class _Means:
    """Exponentially weighted means of each value (NaN: the student had none, not counted for that value)."""

    __slots__ = ("sums", "weights")

    def __init__(self) -> None:
        self.sums = [0.0] * COHORT_WIDTH
        self.weights = [0.0] * COHORT_WIDTH

    def add(self, values: Sequence[float]) -> None:
        keep = 1 - 1 / COHORT_MEMORY
        for i, v in enumerate(values):
            self.sums[i] *= keep
            self.weights[i] *= keep
            if not math.isnan(v):
                self.sums[i] += v
                self.weights[i] += 1

    def mean(self, i: int) -> float | None:
        # COHORT_MIN observations weigh a little less than COHORT_MIN once forgetting has begun
        return self.sums[i] / self.weights[i] if self.weights[i] > COHORT_MIN - 1 else None


class ProfileCohorts:
    """Per course (and ``ALL`` students), the cohort's mean profile values: the priors (module docstring)."""

    ALL = ""

    def __init__(self, max_courses: int = 10_000) -> None:
        self.max_courses = max_courses
        self._means: dict[str, _Means] = {}

    def observe(self, course_id: str | None, values: Sequence[float]) -> None:
        for key in (self.ALL, course_id) if course_id else (self.ALL,):
            means = self._means.get(key)
            if means is None:
                if len(self._means) > self.max_courses:
                    del self._means[next(k for k in self._means if k)]  # the oldest course seen goes
                means = self._means[key] = _Means()
            means.add(values)

    def prior(self, course_id: str | None) -> list[float]:
        """Per value, the course's mean, else all students', else the default (NaN: no default)."""
        out = list(_DEFAULTS)
        chain = [self._means.get(k) for k in ((course_id, self.ALL) if course_id else (self.ALL,))]
        for i in range(COHORT_WIDTH):
            for means in chain:
                found = means.mean(i) if means is not None else None
                if found is not None:
                    out[i] = found
                    break
        shares = out[_SHARES : _SHARES + len(FORMATS)]
        total = sum(shares)
        out[_SHARES : _SHARES + len(FORMATS)] = [s / total for s in shares]
        return out


# -- the profile -----------------------------------------------------------------------------------------------


def _estimates(alpha: np.ndarray, beta: np.ndarray, evidence: Sequence[float]) -> list[Estimate]:
    """Beta(alpha, beta) posteriors: mean and the equal-tailed ``CREDIBLE`` interval, all in one vector call."""
    # imported here: scipy is ~40 MB a worker would otherwise load at start (models.serving defers it likewise)
    from scipy.special import betaincinv

    tail = (1 - CREDIBLE) / 2
    low = betaincinv(alpha, beta, tail)
    high = betaincinv(alpha, beta, 1 - tail)
    mean = alpha / (alpha + beta)
    return [
        Estimate(mean=float(m), low=float(lo), high=float(hi), evidence=float(e))
        for m, lo, hi, e in zip(mean, low, high, evidence, strict=True)
    ]


def _beta_params(successes: float, trials: float, prior_mean: float, strength: float) -> tuple[float, float]:
    p = min(max(prior_mean, 1e-3), 1 - 1e-3)
    failures = max(trials - successes, 0.0)
    return successes + strength * p, failures + strength * (1 - p)


def _pace_vs_plan(state: UserState, calendars: Mapping[str, CourseCalendar], today: date) -> float | None:
    """Course progress over the share of the course's calendar elapsed (1 = on plan), for the student's
    earliest-starting current course with a calendar (the one ``course_day`` counts in); None before it starts."""
    current = [
        (calendars[cid].starts_on, cid)
        for cid, entry in state.courses.items()
        if cid in calendars and (entry[0] == COURSE_ENROLLED or (entry[0] == COURSE_UNKNOWN and entry[3]))
    ]
    if not current:
        return None
    _, course_id = min(current)
    calendar = calendars[course_id]
    span = (calendar.ends_on - calendar.starts_on).days
    elapsed = (today - calendar.starts_on).days
    if span <= 0 or elapsed <= 0:
        return None
    progress = state.courses[course_id][2] or 0.0
    return (progress / 100) / min(elapsed / span, 1.0)


def cohort_values(state: UserState, snap: SignalSnapshot, triggers: TriggerStats) -> list[float]:
    """The student's own values, as the cohort averages them (NaN where the student has none)."""
    out = [math.nan] * COHORT_WIDTH
    prefs = state.prefs or [0.0] * PREF_WIDTH
    views = sum(prefs[: len(FORMATS)])
    for i in range(len(FORMATS)):
        if views:
            out[_SHARES + i] = prefs[i] / views
        if prefs[i]:
            out[_COMPL + i] = prefs[COMPLETION + i] / prefs[i]
    if snap.days_observed >= 7:  # a week at least: a first day's lessons are no weekly pace
        out[_PACE] = snap.lessons_per_week_30d
    if snap.avg_quiz_score_pct_30d is not None:
        out[_SCORE] = snap.avg_quiz_score_pct_30d / 100
    if prefs[QUIZ_SUBMISSIONS]:
        out[_RETRY] = prefs[QUIZ_RETRIES] / prefs[QUIZ_SUBMISSIONS]
    for g, row in enumerate(triggers.counts):
        if row[EXPOSED]:
            for k, kind in enumerate((OPENED, CLICKED, RETURNED)):
                out[_TRIG + 3 * g + k] = row[kind] / row[EXPOSED]
    return out


def build_profile(
    user_id: str,
    state: UserState,
    snap: SignalSnapshot,
    triggers: TriggerStats,
    prior: Sequence[float],
    activity_cohort: Sequence[float] | None,
    send_time: SendTimeConfig,
    calendars: Mapping[str, CourseCalendar] | None = None,
) -> Profile:
    """The profile as of ``snap.as_of``: ``prior`` is ``ProfileCohorts.prior`` of the student's course,
    ``activity_cohort`` the course's activity profile (``CohortActivity.profile``), as send-time uses them."""
    as_of = snap.as_of
    zone = state.zone()
    local_day = as_of.astimezone(zone).date()
    prefs = state.prefs or [0.0] * PREF_WIDTH
    n = len(FORMATS)

    # Formats: Dirichlet(FORMAT_PRIOR * cohort shares) + views; each share's marginal is a Beta.
    views = prefs[:n]
    total = sum(views)
    floored = [max(s, 1e-3) for s in prior[_SHARES : _SHARES + n]]  # a format nobody views is still possible
    shares = [s / sum(floored) for s in floored]
    alpha = [v + FORMAT_PRIOR * s for v, s in zip(views, shares, strict=True)]
    a_sum = sum(alpha)
    share_a = np.array(alpha)
    share_b = np.array([a_sum - a for a in alpha])
    compl = [_beta_params(prefs[COMPLETION + i], views[i], prior[_COMPL + i], COMPLETION_PRIOR) for i in range(n)]
    comp_a, comp_b = np.array([c[0] for c in compl]), np.array([c[1] for c in compl])

    # Quiz retries, and the trigger rates: one vector call for every Beta of the profile.
    retry = _beta_params(prefs[QUIZ_RETRIES], prefs[QUIZ_SUBMISSIONS], prior[_RETRY], RETRY_PRIOR)
    trig_params: list[tuple[float, float]] = []
    trig_evidence: list[float] = []
    for g, row in enumerate(triggers.counts):
        for k, kind in enumerate((OPENED, CLICKED, RETURNED)):
            trig_params.append(_beta_params(row[kind], row[EXPOSED], prior[_TRIG + 3 * g + k], TRIGGER_PRIOR))
            trig_evidence.append(float(row[EXPOSED]))
    a = np.concatenate([share_a, comp_a, [retry[0]], [p[0] for p in trig_params]])
    b = np.concatenate([share_b, comp_b, [retry[1]], [p[1] for p in trig_params]])
    evidence = [total] * n + views + [prefs[QUIZ_SUBMISSIONS]] + trig_evidence
    est = _estimates(a, b, evidence)
    share_est, comp_est, retry_est, trig_est = est[:n], est[n : 2 * n], est[2 * n], est[2 * n + 1 :]
    formats = Formats(**{f: FormatAffinity(share=share_est[i], completion=comp_est[i]) for i, f in enumerate(FORMATS)})
    preferred_format = FORMATS[max(range(n), key=lambda i: share_est[i].mean)] if total else None

    # Study time: the send-time estimate (student pooled with the cohort), read by hour and by slot.
    estimate, student_share = activity_estimate(state.activity, as_of.timestamp(), send_time, activity_cohort)
    by_hour = [sum(estimate[d * 24 + h] for d in range(7)) for h in range(24)]
    mass = sum(by_hour)
    hours = sorted(range(24), key=lambda h: (-by_hour[h], h))[:TOP] if mass > 0 else []
    slots = sorted(range(BUCKETS), key=lambda s: (-estimate[s], s))[:TOP] if mass > 0 else []
    study = StudyTime(
        best_hours=hours,
        best_slots=[[s // 24, s % 24] for s in slots],
        best_hour_share=by_hour[hours[0]] / mass if hours else 0.0,
        evidence=round(state.activity.mass(as_of.timestamp(), send_time.half_life_days), 3),
        student_share=student_share,
    )

    cohort_pace = prior[_PACE]
    pace = Pace(
        lessons_per_week=snap.lessons_per_week_30d,
        vs_plan=_pace_vs_plan(state, calendars or {}, local_day),
        vs_cohort=snap.lessons_per_week_30d / cohort_pace if not math.isnan(cohort_pace) and cohort_pace > 0 else None,
        evidence=snap.lessons_completed_30d,
    )

    score = snap.avg_quiz_score_pct_30d
    cohort_score = None if math.isnan(prior[_SCORE]) else prior[_SCORE] * 100
    cohort_retry = prior[_RETRY]
    difficulty = Difficulty(
        avg_score_pct=score,
        cohort_score_pct=cohort_score,
        retry_share=retry_est,
        cohort_retry_share=cohort_retry,
        level=_level(score, cohort_score, retry_est, cohort_retry),
        evidence=int(prefs[QUIZ_SUBMISSIONS]),
    )

    per_group = {
        group.value: Trigger(
            exposures=triggers.counts[g][EXPOSED],
            opened=trig_est[3 * g],
            clicked=trig_est[3 * g + 1],
            returned=trig_est[3 * g + 2],
        )
        for g, group in enumerate(TRIGGER_GROUPS)
    }
    delivered = prefs[CHANNEL_DELIVERED : CHANNEL_DELIVERED + len(CHANNELS)]
    opened = prefs[CHANNEL_OPENED : CHANNEL_OPENED + len(CHANNELS)]
    channel_est = _estimates(
        np.array([1.0 + min(o, d) for o, d in zip(opened, delivered, strict=True)]),
        np.array([1.0 + max(0.0, d - o) for o, d in zip(opened, delivered, strict=True)]),
        delivered,
    )
    channels = Channels(
        **{c: ChannelAffinity(delivered=int(delivered[i]), opened=channel_est[i]) for i, c in enumerate(CHANNELS)}
    )
    exposed = any(row[EXPOSED] for row in triggers.counts)
    best_trigger = max(TRIGGER_GROUPS, key=lambda t: per_group[t.value].opened.mean) if exposed else None
    return Profile(
        profile_id=f"{user_id}:{local_day.isoformat()}",
        user_id=user_id,
        day=local_day,
        as_of=as_of,
        timezone=snap.timezone,
        formats=formats,
        preferred_format=preferred_format,
        format_views=int(total),
        study_time=study,
        pace=pace,
        difficulty=difficulty,
        triggers=Triggers(**per_group),
        preferred_trigger=best_trigger,
        channels=channels,
        preferred_channel=preferred_channel(prefs),
        unattributed_responses=triggers.unattributed,
        prior_strength=FORMAT_PRIOR,
    )


def preferred_channel(prefs: Sequence[float] | None, min_delivered: int = CHANNEL_MIN_DELIVERED) -> Channel | None:
    """The channel whose notifications the student opens most, (opened + 1) / (delivered + 2), among those with
    ``min_delivered`` deliveries; None before. The policy tries it first among a tier's channels. Per student, no
    cohort prior: channels are not alike (an in-app message is seen in the app, an e-mail open may be a privacy
    proxy's), so only the student's own comparison means anything."""
    if prefs is None or len(prefs) < PREF_WIDTH:
        return None
    best: tuple[float, int] | None = None
    for i in range(len(CHANNELS)):
        d = prefs[CHANNEL_DELIVERED + i]
        if d < min_delivered:
            continue
        rate = (min(prefs[CHANNEL_OPENED + i], d) + 1) / (d + 2)
        if best is None or rate > best[0]:
            best = (rate, i)
    return Channel(CHANNELS[best[1]]) if best is not None else None


def _level(score: float | None, cohort_score: float | None, retry: Estimate, cohort_retry: float) -> Any:
    """Hard: scores 10 points below the cohort, or retries clearly above its share; easy: 10 above and no more
    retries than the cohort; typical in between; unknown without a quiz or a cohort."""
    if score is None or cohort_score is None:
        return "unknown"
    if score < cohort_score - 10 or retry.low > cohort_retry:
        return "hard"
    if score > cohort_score + 10 and retry.mean <= cohort_retry:
        return "easy"
    return "typical"


def local_day(state: UserState, at: datetime) -> int:
    """The student's local date ordinal at ``at``: a profile is due when it is later than the last one's."""
    return at.astimezone(state.zone()).toordinal()


def epoch(at: datetime) -> float:
    return at.astimezone(UTC).timestamp()
