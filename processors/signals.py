"""Rolling per-user signals: fold a user's event batch into ``UserState``, read a ``SignalSnapshot`` at any time.

Event time throughout: each event counts on the student's local day of its ``event_time`` (in the state's zone,
see ``processors.state``), so late and out-of-order events land on the day they happened; duplicate event ids
count once. ``snapshot(state, as_of)`` is a pure function of the state and ``as_of``: moving ``as_of`` forward
with no new events raises the days since the last login and empties the windows, so silence shows.

Rules a reader of the signals should know:
- Windows are local days: 7 d = as_of's local day and the 6 before; 30 d likewise; the previous 7 d are the 7
  days before the 7-day window. A window counts whole days, including events later on as_of's own day.
- A *login* for ``days_since_last_login`` and ``login_days_7d`` is a ``login`` or a ``session_started`` event:
  apps with a remembered token open sessions without logging in, and a daily student must not look absent.
  ``logins_7d``/``logins_30d``/``login_trend`` count ``login`` events only.
- *Activity* (``days_since_last_activity``, active days, streaks) is what makes a day active in
  ``processors.streaks``: logins, session starts, lesson, course-progress, quiz and content events.
- Trends are (last 7 d - previous 7 d) / max(previous 7 d, 1), ``None`` when both are zero; the quiz score
  trend compares average score percentages and is ``None`` unless both weeks have a quiz.
- Time on platform per day is the session time (``session_ended.duration_seconds``) of that day, or, on a day
  with no ended session, the lesson + quiz durations and content seconds viewed.
- ``lesson_completion_rate_30d`` = completed / started over 30 d, capped at 1 (lessons started before the
  window can be completed in it); ``None`` when no lesson was started.
- Courses: the latest status per course by event time. A course counts as enrolled after ``enrolled`` or any
  ``course_progress`` (students enrolled before tracking began), unless a later ``unenrolled`` says otherwise.
  ``course_progress_pct`` is the mean latest progress over enrolled courses (0 for one with no progress yet).
  Course facts are the latest known, not as of ``as_of``.
- ``days_observed`` = local days from the first seen day to as_of's day, both included, capped at 30;
  ``study_consistency_30d`` = active days in 30 d / days observed.
- An ``as_of`` before the latest events (a backfill) counts only days up to its own day; last login/activity
  are the latest known, so the days since them are clamped at 0; ``events_total`` is all time.
- ``meaningful`` (should the scorer re-score?): any new event other than ``notification_delivered``. A delivery
  is the engine's own action echoing back; re-scoring on it would only feed the intervention loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from processors.calendar import calendar_signals, course_scores, record_submission
from processors.cohort import CohortRanks, CohortValues, CourseCohorts
from processors.policy import SendTimeConfig
from processors.state import (
    BUCKET_WIDTH,
    CHANNEL_DELIVERED,
    CHANNEL_INDEX,
    CHANNEL_OPENED,
    COMPLETION,
    CONTENT_VIEWS,
    COURSE_ENROLLED,
    COURSE_UNENROLLED,
    COURSE_UNKNOWN,
    FORMAT_INDEX,
    LESSONS_COMPLETED,
    LESSONS_STARTED,
    LOGINS,
    NOTIF_DELIVERED,
    NOTIF_OPENED,
    PREF_WIDTH,
    QUIZ_BP,
    QUIZ_RETRIES,
    QUIZ_SUBMISSIONS,
    QUIZZES,
    SESSION_SECONDS,
    SESSIONS,
    SESSIONS_ENDED,
    STUDY_SECONDS,
    UserState,
    event_digest,
    offset_zone_name,
    zone_for,
)
from processors.streaks import ACTIVE_EVENT_TYPES, milestone_records
from schemas.courses import CourseCalendar
from schemas.signals import SignalSnapshot
from schemas.streaks import StreakMilestone

_DAY = 86_400.0
HALF_LIFE_DAYS = SendTimeConfig().half_life_days  # of the activity histogram, when the caller does not say
_MAX_LOCALE = 35  # schemas.events.EventEnvelope.locale
_SEARCH_LIMIT = 10  # bigger batches index the dedupe ring (~15 us) instead of searching it (~1.4 us per id)
_EMPTY: dict[str, Any] = {}

# Event type codes: the active ones first (code <= _LAST_ACTIVE), so one comparison classifies an event.
_LOGIN, _SESSION_STARTED, _LESSON_STARTED, _LESSON_COMPLETED, _QUIZ_SUBMITTED, _CONTENT_VIEWED = 1, 2, 3, 4, 5, 6
_COURSE_PROGRESS = 7
_SESSION_ENDED, _NOTIF_DELIVERED, _NOTIF_OPENED, _NOTIF_CLICKED = 10, 11, 12, 13
_ENROLLED, _UNENROLLED = 20, 21
_UNKNOWN = 99
_CODES: dict[str, int] = {
    "login": _LOGIN,
    "session_started": _SESSION_STARTED,
    "lesson_started": _LESSON_STARTED,
    "lesson_completed": _LESSON_COMPLETED,
    "quiz_submitted": _QUIZ_SUBMITTED,
    "content_viewed": _CONTENT_VIEWED,
    "session_ended": _SESSION_ENDED,
    "notification_delivered": _NOTIF_DELIVERED,
    "notification_opened": _NOTIF_OPENED,
    "notification_clicked": _NOTIF_CLICKED,
    "course_progress": _COURSE_PROGRESS,
    "enrolled": _ENROLLED,
    "unenrolled": _UNENROLLED,
}
_LAST_ACTIVE = _COURSE_PROGRESS
if {t for t, c in _CODES.items() if c <= _LAST_ACTIVE} != ACTIVE_EVENT_TYPES:  # pragma: no cover
    raise RuntimeError("signals event codes disagree with processors.streaks.ACTIVE_EVENT_TYPES")


@dataclass(slots=True)
class ApplyResult:
    """What one batch did: the updated state (the same object that was passed in, or a new one) and its effects."""

    state: UserState
    new_events: int = 0
    duplicates: int = 0
    milestones: list[StreakMilestone] = field(default_factory=list)
    meaningful: bool = False
    rejected: list[tuple[str | None, str]] = field(default_factory=list)  # (event_id, reason): dead-letter them
    newest: datetime | None = None  # the newest event_time among the new events (not duplicates or rejected ones)
    # Active local hours the state's activity histogram newly counted, (bucket, epoch hour): for the cohort's.
    active_hours: list[tuple[int, int]] = field(default_factory=list)
    # The new events themselves, in arrival order, with their event time and local day (ordinal): for the
    # gamification rules, which must see exactly the events counted here (no duplicate, no rejected one).
    accepted: list[tuple[dict[str, Any], datetime, int]] = field(default_factory=list)
    # Opens and clicks that name an intervention, (intervention id, clicked?): for the profile's trigger counts
    # (``processors.profile.TriggerStats``), which the record's intervention history can attribute.
    responses: list[tuple[str, bool]] = field(default_factory=list)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif isinstance(value, datetime):
        dt = value
    else:
        return None
    return None if dt.tzinfo is None or dt.utcoffset() is None else dt


_SUMMED = ("duration_seconds", "seconds_viewed")
_MAX_NUMBER = 1e12  # no duration or count comes near; a bigger one (unvalidated writers) is held to it


def _malformed(ev: dict[str, Any]) -> str | None:
    """What makes an event impossible to fold, for events that reached the topic without the contract's checks
    (the collector refuses all of these): None when it can be folded."""
    if not isinstance(ev.get("event_type", ""), str):
        return "event_type must be a string"
    payload = ev.get("payload")
    if payload is not None and not isinstance(payload, dict):
        return "payload must be an object"
    for key in _SUMMED:  # added into the state's counters: must be a plausible number
        value = (payload or _EMPTY).get(key)
        if isinstance(value, float | int) and not (0 <= value <= _MAX_NUMBER):  # also true for NaN
            return f"payload.{key} out of range (0 to {_MAX_NUMBER:.0e})"
    return None


def _num(payload: dict[str, Any], key: str) -> float:
    """A payload number, held within +-``_MAX_NUMBER`` (so sums stay storable), 0 if absent or not finite."""
    value = payload.get(key)
    if not isinstance(value, (int, float)):  # a tuple is faster than a union here
        return 0.0
    if -_MAX_NUMBER <= value <= _MAX_NUMBER:
        return float(value)
    return 0.0 if value != value else math.copysign(_MAX_NUMBER, value)  # NaN: 0


def apply_events(
    state: UserState | None,
    user_id: str,
    events: list[dict[str, Any]],
    half_life_days: float = HALF_LIFE_DAYS,
    not_after: float = math.inf,
) -> ApplyResult:
    """Fold one user's batch (dicts in the contract's JSON form) into ``state``.

    Each active event is also counted in the state's activity histogram (its local hour, in the zone its day
    counts in; ``half_life_days`` decays it: ``SendTimeConfig.half_life_days``), and the newest event carrying a
    ``locale`` sets the state's.

    ``state`` is updated in place and returned (``UserState.copy()`` first if the old one is needed): the
    Faust agent stores the result anyway, and copying a state per batch would cost more than the batch.
    Events that cannot be placed in time (no id, no parseable aware ``event_time``, another user's, or one later
    than ``not_after``, epoch seconds: the arrival plus the clock skew the collector accepts, for events written to
    the topic without its checks) are returned in ``rejected`` and change nothing.
    """
    if state is None:
        state = UserState(user_id=user_id)
    result = ApplyResult(state=state)
    rejected = result.rejected
    if len(events) > _SEARCH_LIMIT:
        state.index_seen()  # a few lookups are cheapest as searches in the packed ring; many want a set
    accepted: list[tuple[dict[str, Any], datetime, float]] = []
    zone_name: str | None = None
    zone_time = 0.0
    locale: str | None = None
    locale_time = state.last_event if state.locale is not None and state.last_event is not None else -math.inf
    latest: tuple[float, datetime] | None = None
    first = state.first_seen
    for ev in events:
        if not isinstance(ev, dict):
            rejected.append((None, f"not an event object but {type(ev).__name__}"))
            continue
        event_id = ev.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            rejected.append((None, "event_id missing"))
            continue
        if (problem := _malformed(ev)) is not None:
            rejected.append((event_id, problem))
            continue
        uid = ev.get("user_id")
        if uid is not None and uid != user_id:
            rejected.append((event_id, f"user_id {uid!r} in a batch of {user_id!r}"))
            continue
        digest = event_digest(event_id)
        if state.seen_before(digest):
            result.duplicates += 1
            continue
        dt = _parse_time(ev.get("event_time"))
        if dt is None:
            rejected.append((event_id, "event_time missing or without a UTC offset"))
            continue
        if not 1971 <= dt.year <= 9998:  # (unvalidated writers) local days and timestamps would overflow
            rejected.append((event_id, "event_time out of range (years 1971-9998)"))
            continue
        ts = dt.timestamp()
        if ts > not_after:  # a device clock ahead: folded, it would move the student's days (streaks, windows)
            limit = datetime.fromtimestamp(not_after, UTC).isoformat()
            rejected.append((event_id, f"event_time {dt.isoformat()} is in the future (after {limit}: received then, "
                                       "plus the accepted clock skew)"))  # fmt: skip
            continue
        state.remember(digest)
        accepted.append((ev, dt, ts))
        if latest is None or ts > latest[0]:
            latest = (ts, dt)
        if first is None or ts < first:
            first = ts
        tz = ev.get("timezone")
        if tz and (zone_name is None or ts >= zone_time) and isinstance(tz, str) and zone_for(tz) is not None:
            zone_name, zone_time = tz, ts
        loc = ev.get("locale")
        if loc and ts >= locale_time and isinstance(loc, str) and len(loc) <= _MAX_LOCALE:
            locale, locale_time = loc, ts
    if latest is None:
        return result
    result.newest = latest[1]
    state.trim_seen()
    # The zone: the latest named one wins; before any is known, events count on their own wall-clock dates.
    if zone_name is not None and (not state.tz_named or zone_time >= state.tz_time):
        state.tz, state.tz_named, state.tz_time = zone_name, True, zone_time
    elif not state.tz_named and latest[0] >= state.tz_time:
        state.tz, state.tz_time = offset_zone_name(latest[1].utcoffset()), latest[0]
    zone = zone_for(state.tz) if state.tz_named else None
    if locale is not None:
        state.locale = locale

    buckets, courses = state.buckets, state.courses
    prefs = state.prefs
    activity, active_hours = state.activity, result.active_hours
    day_times: dict[int, datetime] = {}
    last_login, last_activity = state.last_login, state.last_activity
    max_day = state.max_day
    meaningful = False
    fresh = result.accepted
    for ev, dt, ts in accepted:
        local = dt.astimezone(zone) if zone is not None else dt
        day = local.toordinal()
        fresh.append((ev, dt, day))
        if day > max_day:
            max_day = day
        b = buckets.get(day)
        if b is None:
            b = buckets[day] = [0] * BUCKET_WIDTH
        code = _CODES.get(ev.get("event_type", ""), _UNKNOWN)
        if code != _NOTIF_DELIVERED:
            meaningful = True
        if code <= _LAST_ACTIVE:
            if last_activity is None or ts > last_activity:
                last_activity = ts
            hour = local.hour
            bucket = local.weekday() * 24 + hour
            if activity.observe_local(bucket, day * 24 + hour, ts, half_life_days):
                active_hours.append((bucket, int(ts // 3600)))
            known = day_times.get(day)
            if known is None or dt < known:
                day_times[day] = dt
            if code <= _SESSION_STARTED:
                b[LOGINS if code == _LOGIN else SESSIONS] += 1
                if last_login is None or ts > last_login:
                    last_login = ts
                continue
        if code == _UNKNOWN:
            continue
        payload = ev.get("payload") or _EMPTY
        if code == _CONTENT_VIEWED:
            b[CONTENT_VIEWS] += 1
            b[STUDY_SECONDS] += round(_num(payload, "seconds_viewed"))
            fmt = FORMAT_INDEX.get(payload.get("content_format"))  # type: ignore[arg-type]
            if fmt is not None:
                if prefs is None:
                    prefs = state.prefs = [0.0] * PREF_WIDTH
                prefs[fmt] += 1
                pct = payload.get("completion_pct")
                if isinstance(pct, (int, float)) and 0.0 < pct <= 100.0:  # else (missing, out of range) counted as 0
                    prefs[COMPLETION + fmt] += pct / 100
        elif code == _LESSON_STARTED:
            b[LESSONS_STARTED] += 1
        elif code == _LESSON_COMPLETED:
            b[LESSONS_COMPLETED] += 1
            b[STUDY_SECONDS] += round(_num(payload, "duration_seconds"))
        elif code == _SESSION_ENDED:
            b[SESSIONS_ENDED] += 1
            b[SESSION_SECONDS] += round(_num(payload, "duration_seconds"))
        elif code == _QUIZ_SUBMITTED:
            max_score = _num(payload, "max_score")
            score_bp = None
            if max_score > 0:
                score_bp = round(min(_num(payload, "score") / max_score, 1.0) * 10_000)
                b[QUIZZES] += 1
                b[QUIZ_BP] += score_bp
            b[STUDY_SECONDS] += round(_num(payload, "duration_seconds"))
            if prefs is None:
                prefs = state.prefs = [0.0] * PREF_WIDTH
            prefs[QUIZ_SUBMISSIONS] += 1
            attempt = payload.get("attempt")
            if attempt.__class__ is int and attempt > 1:
                prefs[QUIZ_RETRIES] += 1
            course_id, quiz_id = ev.get("course_id"), payload.get("quiz_id")
            if isinstance(course_id, str) and isinstance(quiz_id, str):
                entry = courses.get(course_id)
                if entry is None:
                    entry = courses[course_id] = [COURSE_UNKNOWN, 0.0, None, 0.0]
                record_submission(entry, quiz_id, score_bp)  # "due but not submitted", course scores
        elif code == _NOTIF_DELIVERED:
            b[NOTIF_DELIVERED] += 1
            channel = CHANNEL_INDEX.get(payload.get("channel"))  # type: ignore[arg-type]
            if channel is not None:
                if prefs is None:
                    prefs = state.prefs = [0.0] * PREF_WIDTH
                prefs[CHANNEL_DELIVERED + channel] += 1
        elif code in (_NOTIF_OPENED, _NOTIF_CLICKED):
            if code == _NOTIF_OPENED:
                b[NOTIF_OPENED] += 1
                channel = CHANNEL_INDEX.get(payload.get("channel"))  # type: ignore[arg-type]
                if channel is not None:
                    if prefs is None:
                        prefs = state.prefs = [0.0] * PREF_WIDTH
                    prefs[CHANNEL_OPENED + channel] += 1
            intervention = payload.get("intervention_id")
            if isinstance(intervention, str) and intervention:
                result.responses.append((intervention, code == _NOTIF_CLICKED))
        elif code == _COURSE_PROGRESS or code >= _ENROLLED:
            course_id = ev.get("course_id")
            if isinstance(course_id, str):
                entry = courses.get(course_id)
                if entry is None:
                    entry = courses[course_id] = [COURSE_UNKNOWN, 0.0, None, 0.0]
                if code == _COURSE_PROGRESS:
                    if ts >= entry[3]:
                        entry[2], entry[3] = _num(payload, "progress_pct"), ts
                elif ts >= entry[1]:
                    entry[0], entry[1] = (COURSE_ENROLLED if code == _ENROLLED else COURSE_UNENROLLED), ts
    state.first_seen, state.last_login, state.last_activity = first, last_login, last_activity
    if state.last_event is None or latest[0] > state.last_event:
        state.last_event = latest[0]
    state.events_total += len(accepted)
    state.max_day = max_day
    state.prune()
    result.new_events = len(accepted)
    result.meaningful = meaningful
    if day_times:
        reached, lengths = state.streak.add_days(day_times)
        if reached:
            result.milestones = milestone_records(state.user_id, state.tz or "UTC", reached, lengths, day_times)
            result.meaningful = True
    return result


def _trend(current: float, previous: float) -> float | None:
    if current == 0 and previous == 0:
        return None
    return (current - previous) / max(previous, 1)


def _sum_columns(rows: list[list[int]]) -> list[int]:
    return [sum(col) for col in zip(*rows, strict=True)] if rows else [0] * BUCKET_WIDTH


def _platform_seconds(rows: list[list[int]]) -> int:
    return sum(r[SESSION_SECONDS] if r[SESSIONS_ENDED] else r[STUDY_SECONDS] for r in rows)


def _current(state: UserState) -> dict[str, list[Any]]:
    """The courses the student is in (enrolled, or progress reported without a status)."""
    return {cid: c for cid, c in state.courses.items() if c[0] == COURSE_ENROLLED or (c[0] == COURSE_UNKNOWN and c[3])}


def current_course(state: UserState) -> str | None:
    """The current course the student touched last: the cohort their send-time fallback comes from."""
    return _latest_course(_current(state))


def _latest_course(current: Mapping[str, list[Any]]) -> str | None:
    """Without calendars, the current course the student touched last (status or progress time)."""
    if not current:
        return None
    return max(current, key=lambda cid: max(current[cid][1] or 0.0, current[cid][3] or 0.0))


def _aware(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


def snapshot(
    state: UserState,
    as_of: datetime,
    calendars: Mapping[str, CourseCalendar] | None = None,
    cohorts: CourseCohorts | None = None,
) -> SignalSnapshot:
    """Every ``SignalSnapshot`` field for the windows ending on as_of's local day (as_of is event time, aware).

    ``calendars`` (course id -> calendar) adds the course-calendar signals for the courses the student is in;
    ``cohorts`` records the student's values in their course's cohort and adds their ranks in it."""
    if as_of.utcoffset() is None:
        raise ValueError("as_of must be timezone-aware")
    zone = state.zone()
    today = as_of.astimezone(zone).toordinal()
    now = as_of.timestamp()
    w7: list[list[int]] = []
    prev7: list[list[int]] = []
    w30: list[list[int]] = []
    for day, counters in state.buckets.items():
        age = today - day
        if 0 <= age < 30:
            w30.append(counters)
            if age < 7:
                w7.append(counters)
            elif age < 14:
                prev7.append(counters)
    s7, p7, s30 = _sum_columns(w7), _sum_columns(prev7), _sum_columns(w30)

    session_min_7 = s7[SESSION_SECONDS] / 60
    quiz7 = s7[QUIZ_BP] / s7[QUIZZES] / 100 if s7[QUIZZES] else None
    quizp = p7[QUIZ_BP] / p7[QUIZZES] / 100 if p7[QUIZZES] else None

    current = _current(state)
    enrolled = list(current.values())
    cal = calendar_signals(current, calendars or {}, date.fromordinal(today))
    unenrolled = sum(1 for c in state.courses.values() if c[0] == COURSE_UNENROLLED)
    progress = sum(c[2] or 0.0 for c in enrolled) / len(enrolled) if enrolled else None

    streak = state.streak.as_of(today)
    active_30 = state.streak.active_days(today - 29, today)
    minutes_7d, minutes_30d = _platform_seconds(w7) / 60, _platform_seconds(w30) / 60
    submissions, course_score = course_scores(current)
    ranks = CohortRanks()
    if cohorts is not None:
        course_id = cal.course_id or _latest_course(current)
        submitted = 1 - cal.assessments_missed / cal.assessments_due if cal.assessments_due else None
        values = CohortValues(minutes_7d, minutes_30d, submitted, course_score)
        ranks = cohorts.observe(state.user_id, course_id, values)

    observed = 0
    if state.first_seen is not None:
        first_day = datetime.fromtimestamp(state.first_seen, zone).toordinal()
        observed = max(0, min(30, today - first_day + 1))

    return SignalSnapshot(
        user_id=state.user_id,
        as_of=as_of,
        timezone=state.tz or "UTC",
        first_seen=_aware(state.first_seen),
        last_event_time=_aware(state.last_event),
        events_total=state.events_total,
        logins_7d=s7[LOGINS],
        logins_30d=s30[LOGINS],
        login_days_7d=sum(1 for r in w7 if r[LOGINS] or r[SESSIONS]),
        days_since_last_login=max(0.0, (now - state.last_login) / _DAY) if state.last_login is not None else None,
        login_trend=_trend(s7[LOGINS], p7[LOGINS]),
        sessions_7d=s7[SESSIONS],
        sessions_30d=s30[SESSIONS],
        avg_session_minutes_7d=session_min_7 / s7[SESSIONS_ENDED] if s7[SESSIONS_ENDED] else None,
        session_minutes_trend=_trend(session_min_7, p7[SESSION_SECONDS] / 60),
        minutes_on_platform_7d=minutes_7d,
        minutes_on_platform_30d=minutes_30d,
        lessons_completed_7d=s7[LESSONS_COMPLETED],
        lessons_completed_30d=s30[LESSONS_COMPLETED],
        lessons_per_week_30d=s30[LESSONS_COMPLETED] / 30 * 7,
        lesson_completion_rate_30d=(
            min(1.0, s30[LESSONS_COMPLETED] / s30[LESSONS_STARTED]) if s30[LESSONS_STARTED] else None
        ),
        lessons_trend=_trend(s7[LESSONS_COMPLETED], p7[LESSONS_COMPLETED]),
        course_progress_pct=progress,
        courses_enrolled=len(enrolled),
        courses_unenrolled=unenrolled,
        current_streak_days=streak.current,
        longest_streak_days=streak.longest,
        streak_freezes_held=streak.freezes,
        streak_freezes_used=streak.freezes_used,
        streak_broken_recently=streak.broken_recently,
        course_day=cal.course_day,
        assessments_due=cal.assessments_due,
        assessments_missed=cal.assessments_missed,
        assessment_weight_missed_pct=cal.assessment_weight_missed_pct,
        days_since_missed_due=cal.days_since_missed_due,
        days_to_next_due=cal.days_to_next_due,
        enrolled_days_before_start=cal.enrolled_days_before_start,
        course_submissions=submissions,
        course_avg_score_pct=course_score,
        course_peers=ranks.peers,
        course_activity_rank_7d=ranks.activity_7d,
        course_activity_rank_30d=ranks.activity_30d,
        course_submitted_rank=ranks.submitted_share,
        course_score_rank=ranks.score,
        active_days_7d=state.streak.active_days(today - 6, today),
        active_days_30d=active_30,
        study_consistency_30d=min(1.0, active_30 / observed) if observed else 0.0,
        quizzes_30d=s30[QUIZZES],
        avg_quiz_score_pct_30d=s30[QUIZ_BP] / s30[QUIZZES] / 100 if s30[QUIZZES] else None,
        quiz_score_trend=_trend(quiz7, quizp) if quiz7 is not None and quizp is not None else None,
        days_since_last_activity=(
            max(0.0, (now - state.last_activity) / _DAY) if state.last_activity is not None else None
        ),
        content_views_30d=s30[CONTENT_VIEWS],
        notifications_opened_30d=s30[NOTIF_OPENED],
        notifications_delivered_30d=s30[NOTIF_DELIVERED],
        days_observed=observed,
    )
