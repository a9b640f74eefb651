"""The student page's view model: each panel from its upstream answer, the weekly chart's SVG, and a failed
upstream costing only its own panel."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from typing import Any

from dashboards.student_view import Unavailable, inbox, leaderboard, stats, student_page, week

NOW = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"

ENGAGEMENT: dict[str, Any] = {
    "user_id": "ann",
    "signals": {"as_of": NOW.isoformat(), "timezone": "UTC", "events_total": 12, "days_since_last_activity": 0.2},
    "streak": {"current_days": 6, "longest_days": 9, "freezes_held": 1, "freezes_used": 2, "broken_recently": False},
    "gamification": {
        "xp": 340, "level": 3, "next_level_xp": 500, "progress_to_next_level_pct": 68.0, "achievements_unlocked": 7,
        "recent_achievements": [{"achievement_id": "streak.3", "name": "Habit", "description": "3 days",
                                 "unlocked_at": "2026-12-03T10:00:00+00:00"}],
    },
}  # fmt: skip
POSITION = {
    "board": "global", "period": "2026-W49", "user_id": "ann", "rank": 4, "xp": 340, "students": 17,
    "above": [{"rank": 2, "user_id": "bob", "xp": 400}, {"rank": 3, "user_id": "cid", "xp": 350}],
    "below": [{"rank": 5, "user_id": "dan", "xp": 300}],
}  # fmt: skip


def test_stats_carry_the_engagement_answers_figures() -> None:
    s = stats(ENGAGEMENT)
    assert (s.xp, s.level, s.next_level_xp, s.progress_pct, s.to_next_level) == (340, 3, 500, 68.0, 160)
    assert (s.streak_current, s.streak_longest, s.freezes_held, s.freezes_used) == (6, 9, 1, 2)
    top = stats({**ENGAGEMENT, "gamification": {**ENGAGEMENT["gamification"], "next_level_xp": None}})
    assert top.progress_pct == 100.0 and top.to_next_level is None
    off = stats({**ENGAGEMENT, "gamification": None})
    assert (off.xp, off.level, off.progress_pct) == (None, None, 0.0)


def test_the_leaderboard_shows_neighbours_by_rank_and_xp_only() -> None:
    b = leaderboard(POSITION, "this-week")
    assert (b.title, b.rank, b.students) == ("This week, all students", 4, 17)
    assert [(r.rank, r.xp, r.is_me) for r in b.rows] == [(2, 400, False), (3, 350, False), (4, 340, True),
                                                         (5, 300, False)]  # fmt: skip
    assert "bob" not in repr(b)  # other students' ids never reach the page
    course = leaderboard({**POSITION, "board": "course:algebra", "period": "all"}, "all")
    assert course.title == "All time, course algebra"


def test_the_week_fills_missing_days_and_the_svg_says_everything_in_text() -> None:
    rows = [
        {"day": "2026-11-30", "active": 1, "events": 5, "active_events": 4, "lessons_completed": 2,
         "quizzes_submitted": 1},
        {"day": "2026-12-05", "active": 0, "events": 1, "active_events": 0, "lessons_completed": 0,
         "quizzes_submitted": 0},
        {"day": "2026-11-20", "active": 1, "events": 9, "active_events": 9, "lessons_completed": 0,
         "quizzes_submitted": 0},  # not in the week
    ]  # fmt: skip
    w = week(rows, date(2026, 12, 5))
    assert [d.day.isoformat() for d in w.days] == [f"2026-11-{d}" for d in (29, 30)] + [
        f"2026-12-0{d}" for d in range(1, 6)
    ]
    assert [d.activities for d in w.days] == [0, 4, 0, 0, 0, 0, 0] and w.active_days == 1
    svg = ET.fromstring(w.svg)
    assert svg.get("role") == "img" and svg.get("id") == "weekly-activity"
    title = svg.find(f"{SVG}title")
    assert title is not None and title.text == "Your activity from Sun 29 Nov to Sat 05 Dec: 1 active day of 7"
    desc = svg.find(f"{SVG}desc")
    assert desc is not None
    assert "Monday 30 November: 4 activities, 2 lessons, 1 quizzes, active day" in (desc.text or "")
    groups = svg.findall(f"{SVG}g")
    assert [g.get("data-value") for g in groups] == ["0", "4", "0", "0", "0", "0", "0"]
    marks = [t.text for g in groups for t in g.findall(f"{SVG}text") if t.get("class") == "mark"]
    assert marks == ["rest", "\u2713 active", "rest", "rest", "rest", "rest", "rest"]  # not colour alone
    bars = [g.find(f"{SVG}rect") for g in groups]
    assert [float(b.get("height", "")) for b in bars if b is not None][:2] == [0.0, 106.0]  # the tallest fills it


def test_inbox_keeps_only_web_links_and_marks_unread_in_words() -> None:
    answer = {"unread": 1, "items": [
        {"id": "i1", "title": "Well done", "body": "<b>6 days</b>", "action_url": "https://app.example/x",
         "created_at": "2026-12-05T10:00:00+00:00", "read_at": None},
        {"id": "i2", "title": "Hi", "body": "b", "action_url": "javascript:alert(1)",
         "created_at": "2026-12-04T10:00:00+00:00", "read_at": "2026-12-04T11:00:00+00:00"},
    ]}  # fmt: skip
    box = inbox(answer)
    assert box.unread == 1
    assert [(i.item_id, i.unread, i.action_url, i.created_on) for i in box.items] == [
        ("i1", True, "https://app.example/x", "2026-12-05"),
        ("i2", False, None, "2026-12-04"),
    ]


def test_a_failed_upstream_costs_its_panel_only() -> None:
    down = Unavailable("the leaderboard service cannot be reached right now (ConnectError)")
    page = student_page("ann", ENGAGEMENT, {"preferred_format": "video"}, down, [], [], {"items": []}, NOW)
    assert page.leaderboard is down
    assert not isinstance(page.stats, Unavailable) and page.stats.xp == 340
    assert not isinstance(page.week, Unavailable) and page.week.days[-1].day == date(2026, 12, 5)
    broken = student_page("ann", ENGAGEMENT, {}, ("all", {"rank": 1}), [{"course_id": "c"}], [], {}, NOW)
    assert isinstance(broken.leaderboard, Unavailable) and "KeyError" in broken.leaderboard.detail
    assert isinstance(broken.courses, Unavailable)
    nothing = student_page("ann", down, down, None, down, down, down, NOW)
    assert nothing.leaderboard is None and isinstance(nothing.stats, Unavailable)
    assert nothing.next_step.text == "A short lesson today keeps you moving."
