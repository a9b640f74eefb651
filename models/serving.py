"""Which model scores right now: the registry's promoted model, reloaded without a restart, else the heuristic.

``current()`` is called before every scoring micro-batch; at most every ``check_seconds`` it reads the small
``promoted.json`` and, when the promoted version changed, loads the new boosters and swaps them in. A model
that fails to load (missing file, other features) is refused with a logged reason and the previous one keeps
scoring: a bad promotion never stops scoring. A rollback to nothing returns to the heuristic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from models.base import RiskModel
from models.heuristic import HeuristicModel
from models.registry import ModelRegistry

log = logging.getLogger(__name__)

RELOADS = Counter("engage_model_reloads_total", "Model reloads after a promotion, by outcome", ["outcome"])
SERVING = Gauge("engage_model_serving", "1 for the model version scoring now", ["model_version"])


class ModelProvider:
    def __init__(
        self,
        registry: ModelRegistry | None,
        check_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.check_seconds = check_seconds
        self.clock = clock
        self.fallback: RiskModel = HeuristicModel()
        self.model: RiskModel = self.fallback
        self._stamp: str | None = None
        self._checked = float("-inf")
        self.current()
        SERVING.labels(self.model.version).set(1)

    def current(self) -> RiskModel:
        now = self.clock()
        if self.registry is None or now - self._checked < self.check_seconds:
            return self.model
        self._checked = now
        try:
            stamp = self.registry.pointer_stamp()
        except (OSError, ValueError) as exc:
            log.warning("could not read the model registry (%s); keeping %s", exc, self.model.version)
            return self.model
        if stamp != self._stamp:
            self._swap(stamp)
        return self.model

    def _swap(self, stamp: str | None) -> None:
        assert self.registry is not None
        previous = self.model
        try:
            if stamp is None:
                self.model = self.fallback
            else:  # imported here: lightgbm, pandas and scipy are ~90 MB a worker scoring the heuristic never uses
                from models.lightgbm_model import LightGBMRiskModel

                self.model = LightGBMRiskModel(self.registry.get(stamp))
        except Exception as exc:  # a bad promotion must not stop scoring
            RELOADS.labels("failed").inc()
            log.error("promoted model %s could not be loaded (%s); still scoring with %s", stamp, exc, previous.version)
            self._stamp = stamp  # do not retry the same broken version on every batch
            return
        self._stamp = stamp
        RELOADS.labels("loaded").inc()
        SERVING.labels(previous.version).set(0)
        SERVING.labels(self.model.version).set(1)
        log.warning("now scoring with %s (was %s)", self.model.version, previous.version)
