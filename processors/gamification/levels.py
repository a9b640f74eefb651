"""The level curve: XP needed for level L is ``round(base * (L - 1) ** exponent)``.

A polynomial curve, as games use (Pokémon's 'medium fast' group is n^3; many RPGs use exponents of 1.5-2): each
level costs more than the one before, so early levels come within days and later ones stay worth chasing, and the
level is monotonic in XP (XP is never taken away). With the defaults (base 100, exponent 1.5): level 2 at 100 XP,
3 at 283, 5 at 800, 10 at 2,700, 20 at 8,282.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import lru_cache

from processors.gamification.rules import LevelCurve


@lru_cache(maxsize=16)
def thresholds(curve: LevelCurve) -> tuple[int, ...]:
    """XP needed for levels 1..max_level (index 0 is level 1, at 0 XP); strictly increasing."""
    out = [0]
    for level in range(2, curve.max_level + 1):
        out.append(max(out[-1] + 1, round(curve.base * (level - 1) ** curve.exponent)))
    return tuple(out)


def level_for(xp: int, curve: LevelCurve) -> int:
    return bisect_right(thresholds(curve), xp)


def progress(xp: int, curve: LevelCurve) -> tuple[int, int | None, float]:
    """(level, XP of the next level or None at the top, fraction of the way from this level to the next)."""
    steps = thresholds(curve)
    level = bisect_right(steps, xp)
    if level >= len(steps):
        return level, None, 1.0
    low, high = steps[level - 1], steps[level]
    return level, high, (xp - low) / (high - low)
