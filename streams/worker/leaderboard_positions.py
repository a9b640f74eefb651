"""A student's ranks for the engagement API, asked of the leaderboard service (``leaderboards/``).

The boards are a global question the worker cannot answer from its own partitions, so the engagement API asks
the leaderboard service, with the caller's own key and a short timeout. Ranks are an extra: when the service is
away the answer says so (``available: false``) instead of failing the whole engagement answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

# (board, period) asked for every student; this week's board of each course they earned most XP in is added
BOARDS = (("global", "this-week"), ("global", "all"))
COURSES = 3


async def _one(session: aiohttp.ClientSession, url: str, headers: dict[str, str], timeout: float) -> Any:
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status == 404:
                return None  # not on that board (no XP in the period)
            if resp.status != 200:
                return {"error": f"leaderboard service answered {resp.status}"}
            body = await resp.json()
            return {"rank": body["rank"], "xp": body["xp"], "students": body["students"], "period": body["period"]}
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
        return {"error": f"leaderboard service unreachable ({type(exc).__name__})"}


async def positions(
    session: aiohttp.ClientSession,
    base_url: str,
    user_id: str,
    courses: list[str],
    authorization: str | None,
    timeout: float,
) -> dict[str, Any]:
    """{"available": bool, "boards": [{board, period, rank, xp, students} or {board, period, rank: None}]}."""
    wanted = [*BOARDS, *((f"course:{c}", "this-week") for c in courses[:COURSES])]
    headers = {"Authorization": authorization} if authorization else {}
    answers = await asyncio.gather(
        *(
            _one(session, f"{base_url}/v1/leaderboards/{board}/{period}/users/{user_id}?neighbours=0", headers, timeout)
            for board, period in wanted
        )
    )
    errors = [a["error"] for a in answers if isinstance(a, dict) and "error" in a]
    boards = [
        {"board": board, **(a if a is not None else {"period": period, "rank": None, "xp": 0, "students": None})}
        for (board, period), a in zip(wanted, answers, strict=True)
        if not (isinstance(a, dict) and "error" in a)
    ]
    return {"available": not errors, **({"detail": errors[0]} if errors else {}), "boards": boards}
