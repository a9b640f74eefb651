"""The predictions page's accuracy per model version and feature drift: ``models.monitoring.measure_with``, the
same measurement `engage model monitor` publishes, run in a thread at most every ``every`` seconds and cached.

It reads every matured snapshot of the last weeks into Python, which is too slow to do per page view; the page
shows the last result with the time it was measured (a first visit starts it and shows "being measured").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.monitoring import MonitorReport, measure_with
from models.registry import ModelRegistry


@dataclass(frozen=True)
class Measured:
    report: MonitorReport
    at: datetime


class ModelHealth:
    def __init__(self, client: Callable[[], Any], registry: ModelRegistry, every: float = 600.0) -> None:
        self.client = client  # a new ClickHouse connection with the engine's database selected
        self.registry = registry
        self.every = every
        self.last: Measured | None = None
        self.error: str | None = None
        self._lock = threading.Lock()
        self._running = False
        self._started = 0.0

    def current(self) -> Measured | None:
        """The last measurement; starts a new one in the background when none is running and it is stale."""
        with self._lock:
            due = self.last is None or time.monotonic() - self._started >= self.every
            if due and not self._running:
                self._running = True
                self._started = time.monotonic()
                threading.Thread(target=self._measure, name="model-health", daemon=True).start()
        return self.last

    def _measure(self) -> None:
        try:
            report = measure_with(self.client(), self.registry)
            self.last, self.error = Measured(report, datetime.now(UTC)), None
        except Exception as exc:  # shown in the panel; the next visit after `every` tries again
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self._running = False

    def rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(accuracy per horizon and model version, PSI per feature), from the last measurement."""
        m = self.last
        if m is None:
            return [], []
        accuracy = [
            {"horizon": f"{h} d", "model_version": v, "predictions": int(x["n"]),
             "roc_auc": round(x["roc_auc"], 3), "calibration_error": round(x["ece"], 3)}
            for (h, v), x in sorted(m.report.accuracy.items())
        ]  # fmt: skip
        drift = [
            {
                "feature": f,
                "psi": round(p, 3),
                "reading": "drifted" if p > 0.25 else "shifting" if p > 0.1 else "stable",
            }
            for f, p in sorted(m.report.psi.items(), key=lambda kv: -kv[1])
        ]
        return accuracy, drift


def _reading(psi: float) -> str:
    """The usual reading of a PSI (``models.monitoring``): words beside the number, not a colour."""
    return "drifted" if psi > 0.25 else "shifting" if psi > 0.1 else "stable"
