"""A benchmark report: rows of (what, figure, unit, baseline, ratio), printed as a table and saved as JSON."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def percentile(values: Sequence[float], q: float) -> float:
    """The value below which a share ``q`` of ``values`` lies (nearest rank); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], Any]:
    """Seconds of each of ``runs`` calls after one warm-up call (caches, compiled code), and the last result."""
    fn()
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline_name: str = ""
    baseline_value: float | None = None
    aim: str = ""
    notes: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_value:
            return None
        return self.value / self.baseline_value


@dataclass
class Report:
    title: str
    figures: list[Figure] = field(default_factory=list)
    context: dict[str, object] = field(default_factory=dict)
    # What makes the run fail (results that differ where they must agree): the command exits non-zero.
    problems: list[str] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def print(self, console: Console) -> None:
        table = Table(title=self.title, show_lines=False)
        for col in ("measure", "value", "baseline (same run)", "ratio", "aim"):
            table.add_column(col, justify="right" if col in ("value", "ratio") else "left")
        for f in self.figures:
            base = f"{f.baseline_name}: {_fmt(f.baseline_value)} {f.unit}" if f.baseline_value is not None else ""
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
            table.add_row(f.name, f"{_fmt(f.value)} {f.unit}", base, ratio, f.aim)
        console.print(table)
        for f in self.figures:
            if f.notes:
                console.print(f"  [dim]{f.name}: {f.notes}[/dim]")

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "title": self.title,
            "when": datetime.now(UTC).isoformat(),
            "machine": {
                "cpus": _cpus(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "context": self.context,
            "problems": self.problems,
            "figures": [{**asdict(f), "ratio": f.ratio} for f in self.figures],
        }
        path.write_text(json.dumps(doc, indent=2) + "\n")
        return path


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


@dataclass
class Run:
    """One process draining or serving a topic: what it took."""

    seconds: float = float("nan")
    cpu: float = float("nan")
    peak_mb: float = float("nan")
    timed_share: float = 1.0  # of a drain's work, the part inside its timed window (``streams_io.Drain``)
    latencies: list[float] = field(default_factory=list)
