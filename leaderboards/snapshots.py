"""Snapshots of the current boards as ``LeaderboardRow`` messages (pure: the service publishes them).

``taken_at`` is the start of the snapshot interval the moment falls in, so a service restarted within one
interval publishes the same ids again (the sink's ReplacingMergeTree keeps one row per id, the newer).
The id's last part is the row's position in the snapshot (1..N), not its rank: students with equal XP share a
rank, and ``{board}:{period}:{taken_at}:{rank}`` would give them one id, so one of them would be lost.
"""

from __future__ import annotations

from datetime import UTC, datetime

from leaderboards.boards import Boards
from schemas.gamification import LeaderboardRow


def slot(now: datetime, interval_seconds: float) -> datetime:
    """The start of the interval ``now`` is in (intervals counted from the epoch, UTC)."""
    stamp = now.timestamp()
    return datetime.fromtimestamp(stamp - stamp % interval_seconds, UTC)


def snapshot_rows(boards: Boards, taken_at: datetime, top: int) -> list[LeaderboardRow]:
    """The top ``top`` of every board in its current periods (all-time, the newest day and week)."""
    stamp = taken_at.isoformat()
    rows: list[LeaderboardRow] = []
    current = set(boards.current_periods())
    for scope, period, board in sorted(boards.boards(), key=lambda b: (b[0], b[1])):
        if period not in current:
            continue
        rows += [
            LeaderboardRow(
                snapshot_id=f"{scope}:{period}:{stamp}:{position}",
                board=scope,
                period=period,
                taken_at=taken_at,
                rank=entry.rank,
                user_id=entry.user_id,
                xp=entry.xp,
            )
            for position, entry in enumerate(board.top(top), 1)
        ]
    return rows
