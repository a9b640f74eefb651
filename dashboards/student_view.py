"""What the student page shows, built from the upstream answers (pure: JSON and query rows in, plain values out).

Each panel is built on its own; an upstream that failed arrives as ``Unavailable`` and only its panel shows the
error. The weekly activity chart is drawn here as inline SVG (text labels and a <title>/<desc>: the numbers are
readable without the bars, and an active day is marked with a word and a tick, not a colour alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import urlsplit

from dashboards.next_step import NextStep, choose


@dataclass(frozen=True)
class Unavailable:
    """An upstream that did not answer usefully; ``detail`` is shown to the student in that panel."""

    detail: str


@dataclass(frozen=True)
class Stats:
    xp: int | None
    level: int | None
    next_level_xp: int | None  # None: the top level, or gamification is off
    progress_pct: float
    streak_current: int
    streak_longest: int
    freezes_held: int
    freezes_used: int
    broken_recently: bool

    @property
    def to_next_level(self) -> int | None:
        return None if self.next_level_xp is None or self.xp is None else max(0, self.next_level_xp - self.xp)


@dataclass(frozen=True)
class Achievement:
    achievement_id: str
    name: str
    description: str
    unlocked_on: str  # ISO date


@dataclass(frozen=True)
class Achievements:
    unlocked: int
    recent: list[Achievement]


@dataclass(frozen=True)
class BoardRow:
    rank: int
    xp: int
    is_me: bool


@dataclass(frozen=True)
class Leaderboard:
    title: str
    board: str
    period: str
    rank: int
    xp: int
    students: int
    rows: list[BoardRow]


@dataclass(frozen=True)
class CourseProgress:
    course_id: str
    pct: float
    lessons_completed: int
    lessons_total: int
    reported: bool


@dataclass(frozen=True)
class Day:
    day: date
    active: bool
    activities: int  # active events: what counts toward the streak
    lessons: int
    quizzes: int

    @property
    def weekday(self) -> str:
        return self.day.strftime("%a")


@dataclass(frozen=True)
class Week:
    days: list[Day]
    svg: str  # inline SVG markup, every text in it escaped

    @property
    def active_days(self) -> int:
        return sum(d.active for d in self.days)


@dataclass(frozen=True)
class InboxItem:
    item_id: str
    title: str
    body: str
    created_on: str
    unread: bool
    action_url: str | None  # only http(s) links are kept


@dataclass(frozen=True)
class Inbox:
    unread: int
    items: list[InboxItem]


@dataclass(frozen=True)
class StudentPage:
    user_id: str
    stats: Stats | Unavailable
    achievements: Achievements | Unavailable
    leaderboard: Leaderboard | Unavailable | None  # None: not on a board yet (no XP)
    courses: list[CourseProgress] | Unavailable
    week: Week | Unavailable
    inbox: Inbox | Unavailable
    next_step: NextStep
    notes: list[str] = field(default_factory=list)


def _level_pct(game: dict[str, Any]) -> float:
    if game and game.get("next_level_xp") is None:
        return 100.0  # the top level
    return max(0.0, min(100.0, float(game.get("progress_to_next_level_pct") or 0.0)))


def stats(engagement: dict[str, Any]) -> Stats:
    streak = engagement.get("streak") or {}
    game = engagement.get("gamification") or {}
    return Stats(
        xp=game.get("xp"),
        level=game.get("level"),
        next_level_xp=game.get("next_level_xp"),
        progress_pct=_level_pct(game),
        streak_current=int(streak.get("current_days") or 0),
        streak_longest=int(streak.get("longest_days") or 0),
        freezes_held=int(streak.get("freezes_held") or 0),
        freezes_used=int(streak.get("freezes_used") or 0),
        broken_recently=bool(streak.get("broken_recently")),
    )


def achievements(engagement: dict[str, Any]) -> Achievements | Unavailable:
    game = engagement.get("gamification")
    if not game:
        return Unavailable("achievements are not switched on for this platform")
    recent = [
        Achievement(a["achievement_id"], a.get("name") or a["achievement_id"], a.get("description") or "",
                    str(a.get("unlocked_at") or "")[:10])
        for a in game.get("recent_achievements") or []
    ]  # fmt: skip
    return Achievements(int(game.get("achievements_unlocked") or 0), recent)


_PERIODS = {"this-week": "This week", "all": "All time", "today": "Today"}


def leaderboard(position: dict[str, Any], asked: str) -> Leaderboard:
    """The leaderboard API's position answer (rank, XP, neighbours above and below) on the period ``asked`` for
    (``this-week``, ``all``: the answer names the resolved one, e.g. ``2026-W49``); other students are shown by
    rank and XP only: their ids may be personal, and the page is about the student's own place."""
    me = BoardRow(int(position["rank"]), int(position["xp"]), True)
    above = [BoardRow(int(r["rank"]), int(r["xp"]), False) for r in position.get("above") or []]
    below = [BoardRow(int(r["rank"]), int(r["xp"]), False) for r in position.get("below") or []]
    board, period = str(position["board"]), str(position["period"])
    who = "all students" if board == "global" else f"course {board.removeprefix('course:')}"
    when = _PERIODS.get(asked, period)
    return Leaderboard(f"{when}, {who}", board, period, me.rank, me.xp, int(position["students"]),
                       [*above, me, *below])  # fmt: skip


def courses(records: list[dict[str, Any]]) -> list[CourseProgress]:
    return [
        CourseProgress(
            course_id=str(r["course_id"]),
            pct=max(0.0, min(100.0, float(r["progress_pct"] or 0.0))),
            lessons_completed=int(r["lessons_completed"] or 0),
            lessons_total=int(r["lessons_total"] or 0),
            reported=int(r["progress_reports"] or 0) > 0,
        )
        for r in records
    ]


def week(records: list[dict[str, Any]], last_day: date) -> Week:
    """Seven days ending on ``last_day`` (UTC days, as the warehouse counts them); days without a row are zero."""
    by_day = {date.fromisoformat(str(r["day"])[:10]): r for r in records}
    days = []
    for offset in range(6, -1, -1):
        d = last_day - timedelta(days=offset)
        r = by_day.get(d, {})
        days.append(
            Day(d, bool(r.get("active")), int(r.get("active_events") or 0), int(r.get("lessons_completed") or 0),
                int(r.get("quizzes_submitted") or 0))
        )  # fmt: skip
    return Week(days, week_svg(days))


# Chart geometry (viewBox units; the SVG scales to its container's width).
_W, _H, _TOP, _BOTTOM, _SLOT = 350, 170, 24, 40, 50


def week_svg(days: list[Day]) -> str:
    """A bar per day (height: activities), the count above it, the weekday below with a tick on active days."""
    first, last = days[0].day, days[-1].day
    active = sum(d.active for d in days)
    days_word = "day" if active == 1 else "days"
    title = f"Your activity from {first:%a %d %b} to {last:%a %d %b}: {active} active {days_word} of {len(days)}"
    desc = "; ".join(
        f"{d.day:%A %d %B}: {d.activities} activities, {d.lessons} lessons, {d.quizzes} quizzes"
        f"{', active day' if d.active else ''}"
        for d in days
    )
    highest = max((d.activities for d in days), default=0) or 1
    plot = _H - _TOP - _BOTTOM
    parts = [
        f'<svg id="weekly-activity" class="chart" role="img" viewBox="0 0 {_W} {_H}" '
        f'aria-labelledby="weekly-activity-title weekly-activity-desc" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="weekly-activity-title">{escape(title)}</title>',
        f'<desc id="weekly-activity-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="0" y1="{_H - _BOTTOM}" x2="{_W}" y2="{_H - _BOTTOM}"/>',
    ]
    for i, d in enumerate(days):
        x = i * _SLOT + 10
        height = round(plot * d.activities / highest, 1)
        y = _H - _BOTTOM - height
        kind = "bar active" if d.active else "bar"
        parts.append(f'<g class="day" data-day="{d.day.isoformat()}" data-value="{d.activities}">')
        parts.append(f'<rect class="{kind}" x="{x}" y="{y}" width="30" height="{height}"/>')
        parts.append(f'<text class="count" x="{x + 15}" y="{y - 6}" text-anchor="middle">{d.activities}</text>')
        parts.append(f'<text class="label" x="{x + 15}" y="{_H - _BOTTOM + 16}" text-anchor="middle">'
                     f"{escape(d.weekday)}</text>")  # fmt: skip
        mark = "\u2713 active" if d.active else "rest"
        parts.append(f'<text class="mark" x="{x + 15}" y="{_H - _BOTTOM + 32}" text-anchor="middle">{mark}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _safe_url(url: Any) -> str | None:
    if not isinstance(url, str) or urlsplit(url).scheme.lower() not in ("http", "https"):
        return None  # a javascript: or data: link from a template would run in the page
    return url


def inbox(answer: dict[str, Any]) -> Inbox:
    items = [
        InboxItem(
            item_id=str(i["id"]),
            title=str(i.get("title") or ""),
            body=str(i.get("body") or ""),
            created_on=str(i.get("created_at") or "")[:10],
            unread=i.get("read_at") is None,
            action_url=_safe_url(i.get("action_url")),
        )
        for i in answer.get("items") or []
    ]
    return Inbox(int(answer.get("unread") or 0), items)


def _panel(build: Any, source: Any, *args: Any) -> Any:
    """``build(source)``, or the error as the panel's content (an upstream's answer of an unexpected shape
    must cost one panel, not the page)."""
    if isinstance(source, Unavailable):
        return source
    try:
        return build(source, *args)
    except (KeyError, TypeError, ValueError) as exc:
        return Unavailable(f"the answer could not be read ({type(exc).__name__}: {exc})")


def student_page(
    user_id: str,
    engagement: dict[str, Any] | Unavailable,
    profile: dict[str, Any] | Unavailable,
    position: tuple[str, dict[str, Any]] | Unavailable | None,
    course_rows: list[dict[str, Any]] | Unavailable,
    activity_rows: list[dict[str, Any]] | Unavailable,
    inbox_answer: dict[str, Any] | Unavailable,
    now: datetime,
) -> StudentPage:
    """The whole page; ``position``: (period asked, the leaderboard API's answer), None: on no board yet."""
    eng = engagement if isinstance(engagement, dict) else None
    prof = profile if isinstance(profile, dict) else None
    return StudentPage(
        user_id=user_id,
        stats=_panel(stats, engagement),
        achievements=_panel(achievements, engagement),
        leaderboard=None if position is None else _panel(lambda p: leaderboard(p[1], p[0]), position),
        courses=_panel(courses, course_rows),
        week=_panel(week, activity_rows, now.astimezone(UTC).date()),
        inbox=_panel(inbox, inbox_answer),
        next_step=choose(eng, prof),
    )
