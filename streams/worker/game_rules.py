"""Which gamification rules are in force: the rules file, re-read without a restart when it changes.

Like model promotion (``models.serving``): at most every ``check_seconds`` the file's modification time and size
are compared; a changed file is parsed and checked whole (``processors.gamification.rules``). A file that fails
is refused with a logged reason naming the rule and field, and the previous rules keep running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from processors.experiments.config import ExperimentsConfig
from processors.gamification.rules import GameRules, RulesError, rules_from_file
from schemas.experiments import Surface
from streams.worker import metrics as m

log = logging.getLogger(__name__)


class RulesProvider:
    def __init__(self, path: Path, check_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.check_seconds = check_seconds
        self.clock = clock
        self.rules = rules_from_file(path)  # a worker does not start on a broken file
        self._stamp = self._stat()
        self._checked = clock()
        self.refused: str | None = None  # why the newest file was refused, while it is
        m.RULES_VERSION.set(self.rules.version)

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> GameRules:
        now = self.clock()
        if now - self._checked < self.check_seconds:
            return self.rules
        self._checked = now
        stamp = self._stat()
        if stamp == self._stamp or stamp is None:
            return self.rules
        self._stamp = stamp
        try:
            rules = rules_from_file(self.path)
        except (RulesError, OSError) as exc:
            m.RULES_RELOADS.labels("refused").inc()
            self.refused = str(exc)
            log.error("gamification rules refused, still using version %d: %s", self.rules.version, exc)
            return self.rules
        m.RULES_RELOADS.labels("loaded").inc()
        self.refused = None
        if rules != self.rules:
            log.warning("gamification rules version %d now in force (was %d)", rules.version, self.rules.version)
        self.rules = rules
        m.RULES_VERSION.set(rules.version)
        return rules


def experiment_rules(experiments: ExperimentsConfig, base: Path) -> dict[str, GameRules]:
    """The rules files the running XP-rules experiments' variants name (relative to ``base``, the experiments
    file's folder), loaded once at start: an experiment pins each arm to its file as it was then (a changed file
    would change an arm mid-experiment). The experiments file was checked whole, so each loads."""
    out: dict[str, GameRules] = {}
    for experiment in experiments.running(Surface.xp_rules):
        for variant in experiment.variants:
            if variant.xp_rules is not None and variant.xp_rules not in out:
                out[variant.xp_rules] = rules_from_file(base / variant.xp_rules)
    return out
