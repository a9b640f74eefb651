"""The costliest functions of a profiled bench run (``--profile`` of the core benches), as rows and as a table."""

from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path
from typing import Any, Literal

from rich.table import Table

ROOT = Path(__file__).resolve().parents[2]


def costliest_functions(
    profiler: cProfile.Profile, n: int, by: Literal["own_s", "cumulative_s"], digits: int
) -> list[dict[str, Any]]:
    """The project's functions (benches and the libraries installed under ``.venv`` left out), ``n`` first by
    ``by``; the profiler's overhead inflates every figure alike."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    root = str(ROOT)
    rows = []
    for (path, line, name), (_cc, calls, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if path.startswith(root) and "/bench/" not in path and "/.venv/" not in path:
            rows.append({"function": f"{Path(path).relative_to(root)}:{line} {name}", "calls": calls,
                         "own_s": round(own, digits), "cumulative_s": round(cumulative, digits)})  # fmt: skip
    return sorted(rows, key=lambda r: -r[by])[:n]


def costliest_table(rows: list[dict[str, Any]], title: str, decimals: int) -> Table:
    table = Table(title=title)
    for column in ("function", "calls", "own s", "cumulative s"):
        table.add_column(column, justify="left" if column == "function" else "right")
    for row in rows:
        table.add_row(row["function"], f"{row['calls']:,}", f"{row['own_s']:.{decimals}f}",
                      f"{row['cumulative_s']:.{decimals}f}")  # fmt: skip
    return table
