"""A student's ranks and weekly league for the engagement API, asked of the leaderboard service (``leaderboards/``).

The boards are a global question the worker cannot answer from its own partitions, so the engagement API asks
the leaderboard service, with the caller's own key and a short timeout. Ranks are an extra: when the service is
away the answer says so (``available: false``) instead of failing the whole engagement answer, and for
``retry_seconds`` after a failure the worker does not ask again (``Ranks``): a read must not wait on a service
that is down, or reads pile up and overload the API (its ``max_in_progress`` would turn them into 503s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp

# (board, period) asked for every student; this week's board of each course they earned most XP in is added
BOARDS = (("global", "this-week"), ("global", "all"))
COURSES = 3
# What the engagement answer keeps of the league answer (the group's standings stay with the leaderboard service)
LEAGUE_FIELDS = (
    "week", "tier", "tier_number", "tiers", "days_left", "closes_at", "provisional", "last_result", "placed",
    "group_id", "group_size", "rank", "week_xp", "zone", "promoted", "demoted",
)  # fmt: skip


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


async def league(
    session: aiohttp.ClientSession, base_url: str, user_id: str, authorization: str | None, timeout: float
) -> dict[str, Any]:
    """{"available": true, week, tier, placed, group_id, rank, ...} or {"available": false, "detail": why}."""
    headers = {"Authorization": authorization} if authorization else {}
    url = f"{base_url}/v1/leagues/users/{user_id}?neighbours=0"
    try:
        async with session.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            if resp.status != 200:
                return {"available": False, "detail": f"leaderboard service answered {resp.status}"}
            body = await resp.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"available": False, "detail": f"leaderboard service unreachable ({type(exc).__name__})"}
    return {"available": True, **{k: body[k] for k in LEAGUE_FIELDS if k in body}}


class Ranks:
    """``positions`` and ``league`` behind one breaker: after an answer with an error, neither is asked for
    ``retry_seconds``."""

    def __init__(
        self, base_url: str, timeout: float, retry_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.base_url, self.timeout, self.retry_seconds, self.clock = base_url, timeout, retry_seconds, clock
        self._failed_at: float | None = None
        self._detail = ""

    async def of(
        self, session: aiohttp.ClientSession, user_id: str, courses: list[str], authorization: str | None
    ) -> dict[str, Any]:
        if self._resting():
            return {"available": False, "detail": self._detail, "boards": []}
        return self._note(await positions(session, self.base_url, user_id, courses, authorization, self.timeout))

    async def league_of(
        self, session: aiohttp.ClientSession, user_id: str, authorization: str | None
    ) -> dict[str, Any]:
        if self._resting():
            return {"available": False, "detail": self._detail}
        return self._note(await league(session, self.base_url, user_id, authorization, self.timeout))

    async def both(
        self, session: aiohttp.ClientSession, user_id: str, courses: list[str], authorization: str | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The positions and the league, asked at the same time; while the breaker rests, answered without any
        suspension: a read that yields to the event loop (``asyncio.gather`` does, even for answers ready at once)
        lets the others of a burst in, and the API's ``max_in_progress`` then refuses reads with 503."""
        if self._resting():
            return {"available": False, "detail": self._detail, "boards": []}, {
                "available": False,
                "detail": self._detail,
            }
        boards, league = await asyncio.gather(
            self.of(session, user_id, courses, authorization), self.league_of(session, user_id, authorization)
        )
        return boards, league

    def _resting(self) -> bool:
        return self._failed_at is not None and self.clock() - self._failed_at < self.retry_seconds

    def _note(self, answer: dict[str, Any]) -> dict[str, Any]:
        if answer["available"]:
            self._failed_at = None
        else:
            self._failed_at, self._detail = self.clock(), answer["detail"]
        return answer
