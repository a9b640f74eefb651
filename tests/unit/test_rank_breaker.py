"""The engagement API's ranks client stops asking a leaderboard service that failed, for a while."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from deploy.process import free_port
from streams.worker.leaderboard_positions import Ranks

pytestmark = pytest.mark.local_servers


def test_after_a_failed_answer_no_request_is_made_until_the_retry_time_has_passed() -> None:
    asked: list[str] = []
    status = {"code": 503}

    async def position(request: web.Request) -> web.Response:
        asked.append(request.path)
        if status["code"] != 200:
            return web.json_response({"error": "unavailable"}, status=status["code"])
        return web.json_response({"rank": 2, "xp": 40, "students": 9, "period": request.match_info["period"]})

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/v1/leaderboards/{board}/{period}/users/{user}", position)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        now = [100.0]
        ranks = Ranks(f"http://127.0.0.1:{port}", timeout=2.0, retry_seconds=5.0, clock=lambda: now[0])
        try:
            async with aiohttp.ClientSession() as session:
                first = await ranks.of(session, "ann", ["c1"], "Bearer k")
                assert first["available"] is False and "503" in first["detail"]
                assert len(asked) == 3  # global this week, all-time, and course c1 this week
                status["code"] = 200
                now[0] += 4.9
                skipped = await ranks.of(session, "ann", ["c1"], "Bearer k")
                assert skipped == {"available": False, "detail": first["detail"], "boards": []}
                assert len(asked) == 3, "asked a service that failed less than retry_seconds ago"
                now[0] += 0.2
                back = await ranks.of(session, "ann", [], "Bearer k")
                assert back["available"] is True and len(asked) == 5
                assert [b["rank"] for b in back["boards"]] == [2, 2]
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_the_league_is_asked_behind_the_same_breaker_and_keeps_only_the_students_own_fields() -> None:
    asked: list[str] = []
    status = {"code": 200}

    async def position(request: web.Request) -> web.Response:
        asked.append(request.path)
        return web.json_response({"error": "unavailable"}, status=status["code"])

    async def league(request: web.Request) -> web.Response:
        asked.append(request.path)
        body = {"week": "2026-W49", "tier": "silver", "placed": True, "rank": 3, "group_id": "2026-W49:silver:1",
                "standings": [{"rank": 1}], "above": [], "below": []}  # fmt: skip
        return web.json_response(body)

    async def scenario() -> None:
        app = web.Application()
        app.router.add_get("/v1/leaderboards/{board}/{period}/users/{user}", position)
        app.router.add_get("/v1/leagues/users/{user}", league)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ranks = Ranks(f"http://127.0.0.1:{port}", timeout=2.0, retry_seconds=5.0, clock=lambda: 100.0)
        try:
            async with aiohttp.ClientSession() as session:
                answer = await ranks.league_of(session, "ann", "Bearer k")
                assert answer == {"available": True, "week": "2026-W49", "tier": "silver", "placed": True, "rank": 3,
                                  "group_id": "2026-W49:silver:1"}  # fmt: skip
                assert asked == ["/v1/leagues/users/ann"]
                status["code"] = 503
                assert (await ranks.of(session, "ann", [], "Bearer k"))["available"] is False
                resting = await ranks.league_of(session, "ann", "Bearer k")
                assert resting == {"available": False, "detail": "leaderboard service answered 503"}
                assert len(asked) == 3, "asked for the league while the breaker was open"
        finally:
            await runner.cleanup()

    asyncio.run(scenario())


def test_while_the_breaker_rests_both_answers_come_without_yielding_to_the_event_loop() -> None:
    """A read that suspends lets the rest of a burst in, and the API's max_in_progress answers them 503
    (tests/integration/test_overload.py caught it when the league was first asked beside the positions)."""

    async def failing_first() -> None:
        now = [100.0]
        ranks = Ranks(f"http://127.0.0.1:{free_port()}", timeout=1.0, retry_seconds=5.0, clock=lambda: now[0])
        async with aiohttp.ClientSession() as session:
            boards, league = await ranks.both(session, "ann", ["c1"], None)  # nobody listens: refused
            assert boards["available"] is False and league["available"] is False
            resting = ranks.both(session, "ann", ["c1"], None)
            with pytest.raises(StopIteration) as done:  # finished on its first step: no await reached the loop
                resting.send(None)
            assert done.value.value == (
                {"available": False, "detail": boards["detail"], "boards": []},
                {"available": False, "detail": boards["detail"]},
            )

    asyncio.run(failing_first())
