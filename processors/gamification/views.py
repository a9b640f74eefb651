"""What the engagement API shows of a student's gamification state (pure: the record and the rules in)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from processors.gamification.engine import GameState
from processors.gamification.levels import progress
from processors.gamification.rules import GameRules

RECENT_ACHIEVEMENTS = 5


def game_view(game: GameState, rules: GameRules) -> dict[str, Any]:
    """XP, level, the way to the next level and the newest achievements (names from the rules in force)."""
    level, next_xp, fraction = progress(game.xp, rules.levels)
    names = rules.achievement_names()
    recent = sorted(game.unlocked.items(), key=lambda kv: (-kv[1], kv[0]))[:RECENT_ACHIEVEMENTS]
    return {
        "xp": game.xp,
        "level": max(level, game.level),
        "next_level_xp": next_xp,
        "progress_to_next_level_pct": round(100.0 * fraction, 1),
        "achievements_unlocked": len(game.unlocked),
        "recent_achievements": [
            {
                "achievement_id": uid,
                "name": names.get(uid, (uid, ""))[0],
                "description": names.get(uid, ("", ""))[1],
                "unlocked_at": datetime.fromtimestamp(at, UTC).isoformat(),
            }
            for uid, at in recent
        ],
    }
