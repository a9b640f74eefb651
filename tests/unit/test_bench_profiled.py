"""The costliest functions of a profiled bench run list the project's own code, not the installed libraries."""

from __future__ import annotations

import cProfile

from rich.text import Text

from engage.bench.profiled import costliest_functions
from processors.gamification.levels import level_for
from processors.gamification.rules import LevelCurve


def test_the_projects_functions_are_listed_and_the_installed_libraries_are_not() -> None:
    curve = LevelCurve()
    profiler = cProfile.Profile()
    profiler.enable()
    for xp in range(200):
        level_for(xp, curve)  # the project's
        Text(str(xp)).append("!")  # rich, installed under .venv
    profiler.disable()
    listed = [r["function"] for r in costliest_functions(profiler, 100, "cumulative_s", 6)]
    assert any("processors/gamification/levels.py" in f and "level_for" in f for f in listed), listed
    assert not [f for f in listed if ".venv" in f or "rich/" in f]
