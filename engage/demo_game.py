"""The demo's gamification part: the top of the weekly board, a few students' levels and achievements, and one
student's weekly league (their group's standings and who would go up or down if the week closed now).

Read while the services run (the leaderboard service and the worker's engagement API), printed at the end with
what ClickHouse stored of awards, level-ups and unlocks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from sinks.clickhouse.client import connect


@dataclass
class GameView:
    period: str = ""
    students_on_board: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)  # rows with the student's level and achievements
    neighbours: dict[str, Any] | None = None  # one student's rank with those around them
    league: dict[str, Any] | None = None  # that student's weekly league (``GET /v1/leagues/users/{id}``)


def _get(client: httpx.Client, url: str) -> dict[str, Any] | None:
    r = client.get(url)
    return r.json() if r.status_code == 200 else None


def collect_gamification(settings: Settings, worker_url: str, timeout: float = 60.0) -> GameView:
    """Wait for the leaderboard service to hold the standings, then read the weekly board and the top students."""
    key = settings.server_keys[0].partition(":")[2]
    board_url = f"{settings.leaderboards_base}/v1/leaderboards/global"
    view = GameView()
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
        deadline, last = time.monotonic() + timeout, -1
        body: dict[str, Any] | None = None
        while time.monotonic() < deadline:  # until the board stops growing: every standing applied
            body = _get(client, f"{board_url}/this-week?limit=10") or _get(client, f"{board_url}/all?limit=10")
            students = body["students"] if body else 0
            if students and students == last:
                break
            last = students
            time.sleep(1.0)
        if not body:
            return view
        view.period, view.students_on_board = body["period"], body["students"]
        for row in body["rows"]:
            engagement = _get(client, f"{worker_url}/v1/users/{row['user_id']}/engagement") or {}
            game = engagement.get("gamification") or {}
            view.top.append({**row, "level": game.get("level"), "xp_total": game.get("xp"),
                             "achievements": [a["name"] for a in game.get("recent_achievements", [])]})  # fmt: skip
        if len(view.top) >= 5:
            middle = view.top[4]["user_id"]
            view.neighbours = _get(client, f"{board_url}/{view.period}/users/{middle}?neighbours=2")
            view.league = _get(client, f"{settings.leaderboards_base}/v1/leagues/users/{middle}?neighbours=3")
    return view


def show_gamification(settings: Settings, console: Console, view: GameView) -> None:
    console.rule("[bold]Gamification")
    if not view.top:
        console.print("  (no standings reached the leaderboard service)")
    else:
        table = Table(
            title=f"Weekly leaderboard, global ({view.period}, {view.students_on_board} students with XP)",
            title_justify="left",
        )
        table.add_column("rank", justify="right")
        table.add_column("student")
        table.add_column("XP this week", justify="right")
        table.add_column("level", justify="right")
        table.add_column("XP all-time", justify="right")
        table.add_column("newest achievements")
        for row in view.top:
            table.add_row(str(row["rank"]), row["user_id"], f"{row['xp']:,}", str(row["level"] or ""),
                          f"{row['xp_total'] or 0:,}", ", ".join(row["achievements"][:3]))  # fmt: skip
        console.print(table)
    if view.neighbours:
        n = view.neighbours
        console.print(f"  A student's view of the board: rank {n['rank']} of {n['students']}, with their neighbours")
        for r in [*n["above"], n, *n["below"]]:
            line = f"{r['rank']:>6}  {r['user_id']:<14} {r['xp']:>6,} XP"
            console.print(f"[bold]{line}  <- {r['user_id']}[/bold]" if r is n else line)
    league = view.league
    if league and league.get("placed"):
        days = league["days_left"]
        down = f"the bottom {league['demoted']} down" if league["demoted"] else "nobody goes down from the lowest tier"
        console.print(f"  {league['user_id']}'s weekly league ({league['week']}, {days} day{'' if days == 1 else 's'} "
                      f"left): {str(league['tier']).title()} tier, group of {league['group_size']}, rank "
                      f"{league['rank']}; the top {league['promoted']} go up a tier, {down}")  # fmt: skip
        marks = {"promotion": "up", "demotion": "down", "safe": ""}
        for r in [*league["above"], {**league, "week_xp": league["week_xp"]}, *league["below"]]:
            line = f"{r['rank']:>6}  {r['user_id']:<14} {r['week_xp']:>6,} XP  {marks.get(r['zone'], '')}"
            console.print(f"[bold]{line}  <- {r['user_id']}[/bold]" if r["user_id"] == league["user_id"] else line)
    db = settings.clickhouse_database
    client = connect(settings)
    (awards, xp), = client.execute(f"SELECT count(), sum(xp) FROM {db}.xp_awards FINAL")  # fmt: skip
    (ups,), = client.execute(f"SELECT count() FROM {db}.level_ups FINAL")  # fmt: skip
    unlocks = client.execute(
        f"SELECT name, count() AS n FROM {db}.achievements_unlocked FINAL GROUP BY name ORDER BY n DESC, name"
    )
    console.print(f"  ClickHouse: {awards:,} XP awards ({xp or 0:,} XP), {ups:,} level-ups, "
                  f"{sum(n for _, n in unlocks):,} achievements unlocked")  # fmt: skip
    for name, n in unlocks[:8]:
        console.print(f"    {n:>5,}  {name}")
    console.print("  Badges (Open Badges 3.0): GET /v1/users/{id}/badges on the engagement API")
