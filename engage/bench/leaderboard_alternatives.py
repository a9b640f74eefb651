"""The designs ``engage bench leaderboard`` measures beside the service's ``SortedList`` board, on the same
students' all-time XP (one board of ``n`` students):

- ``SortedList`` (``leaderboards.boards.Board``), in this process: a change, a rank with neighbours, the top 100;
- a plain Python list kept sorted with ``bisect`` (insort / delete): the rank is the same bisection, but every
  change moves on average half the list;
- ClickHouse (its own server, started and stopped by the bench): the top 100 and a student's rank as SQL over a
  table of one row per student (MergeTree: the best case, no updates) and over a ReplacingMergeTree of standings
  that updates append to, read with ``argMax`` per student (what a table kept current by the stream needs).
"""

from __future__ import annotations

import bisect
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config.settings import Settings
from deploy import server
from deploy.infra import Infra
from engage.bench.leaderboard_data import user_id
from engage.bench.report import percentile
from leaderboards.boards import Board
from sinks.clickhouse.client import connect, insert_columns


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p99_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        return cls(percentile(seconds, 0.5) * 1000, percentile(seconds, 0.99) * 1000, len(seconds))


def _time(fn: Callable[[int], object], args: Sequence[int]) -> Timing:
    times = []
    for a in args:
        start = time.perf_counter()
        fn(a)
        times.append(time.perf_counter() - start)
    return Timing.of(times)


@dataclass(frozen=True)
class InProcess:
    name: str
    build_seconds: float
    change: Timing
    rank: Timing
    top100: Timing


def sorted_list(totals: Sequence[int], runs: int, seed: int = 1) -> InProcess:
    rng = random.Random(seed)
    started = time.perf_counter()
    board = Board(sealed=False)
    for i, xp in enumerate(totals):
        board.set(user_id(i), xp)
    board.seal()
    built = time.perf_counter() - started
    users = [rng.randrange(len(totals)) for _ in range(runs)]
    change = _time(lambda i: board.set(user_id(i), rng.randrange(1, 5_000)), users)
    rank = _time(lambda i: board.position(user_id(i), 5), users)
    top = _time(lambda _i: board.top(100), users[: max(1, runs // 10)])
    return InProcess("SortedList (the service's board)", built, change, rank, top)


def plain_list(totals: Sequence[int], runs: int, seed: int = 1) -> InProcess:
    rng = random.Random(seed)
    started = time.perf_counter()
    xp = {user_id(i): t for i, t in enumerate(totals)}
    order = sorted((-t, u) for u, t in xp.items())
    built = time.perf_counter() - started

    def change(i: int) -> None:
        user, new = user_id(i), rng.randrange(1, 5_000)
        old = xp[user]
        del order[bisect.bisect_left(order, (-old, user))]
        bisect.insort(order, (-new, user))
        xp[user] = new

    def rank(i: int) -> None:
        user = user_id(i)
        at = bisect.bisect_left(order, (-xp[user], user))
        bisect.bisect_left(order, (-xp[user], ""))
        order[max(0, at - 5) : at + 6]

    users = [rng.randrange(len(totals)) for _ in range(runs)]
    return InProcess(
        "plain list + bisect", built, _time(change, users), _time(rank, users), _time(lambda _i: order[:100], users)
    )


@dataclass(frozen=True)
class ClickHouseFigures:
    load_seconds: float
    top100: Timing
    rank: Timing
    top100_argmax: Timing
    rank_argmax: Timing


def clickhouse(settings: Settings, totals: Sequence[int], runs: int, seed: int = 1) -> ClickHouseFigures:
    """Start a ClickHouse of the bench's own (``settings``' ports and run dir), load, query, stop it by PID."""
    ch = Infra.from_settings(settings).clickhouse
    server.start(ch)
    try:
        client = connect(settings)
        client.execute("CREATE DATABASE IF NOT EXISTS lbbench")
        client.execute("DROP TABLE IF EXISTS lbbench.board")
        client.execute("DROP TABLE IF EXISTS lbbench.standings")
        client.execute("CREATE TABLE lbbench.board (user_id String, xp UInt32) ENGINE = MergeTree ORDER BY user_id")
        client.execute(
            "CREATE TABLE lbbench.standings (user_id String, xp UInt32, seq UInt64) "
            "ENGINE = ReplacingMergeTree(seq) ORDER BY user_id"
        )
        users = [user_id(i) for i in range(len(totals))]
        started = time.perf_counter()
        for lo in range(0, len(users), 200_000):
            insert_columns(client, "lbbench.board", ["user_id", "xp"], [users[lo : lo + 200_000],
                                                                        list(totals[lo : lo + 200_000])])  # fmt: skip
        loaded = time.perf_counter() - started
        rng = random.Random(seed)
        for lo in range(0, len(users), 200_000):
            part = users[lo : lo + 200_000]
            insert_columns(client, "lbbench.standings", ["user_id", "xp", "seq"],
                           [part, list(totals[lo : lo + 200_000]), [1] * len(part)])  # fmt: skip
        updates = [rng.randrange(len(users)) for _ in range(50_000)]  # the stream's appends, not merged yet
        insert_columns(client, "lbbench.standings", ["user_id", "xp", "seq"],
                       [[users[i] for i in updates], [rng.randrange(1, 5_000) for _ in updates],
                        [2] * len(updates)])  # fmt: skip
        picks = [rng.randrange(len(users)) for _ in range(runs)]
        top_sql = "SELECT user_id, xp FROM lbbench.board ORDER BY xp DESC, user_id LIMIT 100"
        rank_sql = (
            "SELECT count() + 1 FROM lbbench.board WHERE xp > (SELECT any(xp) FROM lbbench.board WHERE user_id = %(u)s)"
        )
        latest = "(SELECT user_id, argMax(xp, seq) AS x FROM lbbench.standings GROUP BY user_id)"
        top_argmax = f"SELECT user_id, x FROM {latest} ORDER BY x DESC, user_id LIMIT 100"
        rank_argmax = (
            f"SELECT count() + 1 FROM {latest} WHERE x > (SELECT argMax(xp, seq) FROM lbbench.standings "
            "WHERE user_id = %(u)s)"
        )
        few = picks[: max(5, runs // 10)]  # the argMax reads aggregate the whole table each time
        return ClickHouseFigures(
            loaded,
            _time(lambda _i: client.execute(top_sql), picks),
            _time(lambda i: client.execute(rank_sql, {"u": users[i]}), picks),
            _time(lambda _i: client.execute(top_argmax), few),
            _time(lambda i: client.execute(rank_argmax, {"u": users[i]}), few),
        )
    finally:
        server.stop(ch)
