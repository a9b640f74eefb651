"""Experiments as configuration (``deploy/policy/experiments.json``), checked whole at load.

An experiment has a key (its hash seed: changing it reshuffles every student), a surface it changes, a status
(``draft``, ``running``, ``stopped``; only running experiments assign), the tiers it applies to (none: all), a
coverage (the share of eligible students in it), an optional layer slot, and two or more variants. The **first
variant is the control**: the readout measures every other variant against it. Each variant sets exactly the
surface's value: a template id, a send-time strategy, an intervention type or an XP rules file.

Refused at load, every problem listed, each naming the experiment and the field (``ExperimentConfigError``):
weights that do not sum to 1 (within 1e-9), duplicate experiment keys or variant ids, a variant that does not
set its surface's value (or sets another surface's), an unknown template (not a template set in
``deploy/templates``), an unknown send-time strategy or intervention type, an XP rules file that does not load,
layer slots of one layer that overlap, and two running experiments on the same surface that no layer keeps
exclusive (both in the same layer, in disjoint slots). A layer is a GrowthBook namespace: a student's place in
it comes from its own hash, so two experiments in one layer share no student.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from schemas.experiments import EXPERIMENT_KEY_PATTERN, VARIANT_ID_PATTERN, Surface
from schemas.interventions import InterventionType
from schemas.signals import Tier

DEFAULT_EXPERIMENTS_PATH = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "experiments.json"
DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "templates"
WEIGHT_TOLERANCE = 1e-9
#: What the notification service can schedule by (``processors.notify.sendtime``; ``engage bench sendtime``
#: compares the same policies): now (or the end of quiet hours), the student's best slot, the cohort's best slot.
SEND_TIME_STRATEGIES = frozenset({"immediate", "sto", "cohort_only"})
#: The variant field each surface is set by.
SURFACE_FIELD: dict[Surface, str] = {
    Surface.template: "template",
    Surface.send_time_strategy: "send_time_strategy",
    Surface.intervention_type: "intervention_type",
    Surface.xp_rules: "xp_rules",
}


class ExperimentConfigError(ValueError):
    """Experiments that cannot be used; ``problems`` lists each, naming the experiment and the field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variant(_Strict):
    id: str = Field(pattern=VARIANT_ID_PATTERN)
    weight: float = Field(ge=0, le=1)
    template: str | None = None
    send_time_strategy: str | None = None
    intervention_type: str | None = None
    xp_rules: str | None = Field(None, description="a rules file, relative to the experiments file")

    def sets(self) -> dict[str, str]:
        """The surface values this variant sets (field -> value)."""
        return {f: v for f in SURFACE_FIELD.values() if (v := getattr(self, f)) is not None}


class LayerSlot(_Strict):
    id: str = Field(pattern=EXPERIMENT_KEY_PATTERN)
    start: float = Field(ge=0, le=1)
    end: float = Field(ge=0, le=1)


class Experiment(_Strict):
    key: str = Field(pattern=EXPERIMENT_KEY_PATTERN)
    description: str = ""
    surface: Surface
    status: Literal["draft", "running", "stopped"]
    tiers: tuple[Tier, ...] = Field((), description="the tiers it applies to; empty: every tier")
    coverage: float = Field(1.0, ge=0, le=1)
    layer: LayerSlot | None = None
    variants: tuple[Variant, ...] = Field(min_length=2)

    @property
    def control(self) -> Variant:
        return self.variants[0]

    def variant(self, variant_id: str) -> Variant | None:
        return next((v for v in self.variants if v.id == variant_id), None)


class Holdout(_Strict):
    share: float = Field(ge=0, le=0.5, description="students no experiment (and no bandit) touches")
    salt: str = Field(min_length=1, description="its own hash seed: change it and the holdout is redrawn")


class ExperimentsConfig(_Strict):
    version: Literal[1] = 1
    holdout: Holdout
    experiments: tuple[Experiment, ...] = ()

    def get(self, key: str) -> Experiment | None:
        return next((e for e in self.experiments if e.key == key), None)

    def running(self, surface: Surface) -> list[Experiment]:
        return [e for e in self.experiments if e.status == "running" and e.surface is surface]


def template_ids(directory: Path = DEFAULT_TEMPLATES_DIR) -> frozenset[str]:
    """The template sets that exist: each directory of ``deploy/templates`` holding a template (``_shared`` is not
    one: it holds macros)."""
    return frozenset(p.parent.name for p in directory.glob("*/*.j2") if not p.parent.name.startswith("_"))


def _variant_problems(exp: Experiment, known_templates: Collection[str], base: Path) -> list[str]:
    out = []
    where = f"experiment {exp.key!r}"
    total = sum(v.weight for v in exp.variants)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        weights = ", ".join(f"{v.id}={v.weight:g}" for v in exp.variants)
        out.append(f"{where}: variants.weight: the weights sum to {total:.12g} ({weights}); they must sum to 1")
    ids = [v.id for v in exp.variants]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        out.append(f"{where}: variants.id: {dup!r} appears more than once")
    field = SURFACE_FIELD[exp.surface]
    for v in exp.variants:
        here = f"{where}: variant {v.id!r}"
        sets = v.sets()
        if field not in sets:
            out.append(f"{here}: {field}: missing; a {exp.surface.value} experiment's variants each set it")
        for other in sorted(set(sets) - {field}):
            out.append(f"{here}: {other}: a {exp.surface.value} experiment's variant sets only {field}")
        value = sets.get(field)
        if value is None:
            continue
        if field == "template" and value not in known_templates:
            out.append(f"{here}: template: unknown template {value!r}; known: {', '.join(sorted(known_templates))}")
        elif field == "send_time_strategy" and value not in SEND_TIME_STRATEGIES:
            known = ", ".join(sorted(SEND_TIME_STRATEGIES))
            out.append(f"{here}: send_time_strategy: unknown strategy {value!r}; known: {known}")
        elif field == "intervention_type" and value not in {t.value for t in InterventionType}:
            known = ", ".join(t.value for t in InterventionType)
            out.append(f"{here}: intervention_type: unknown intervention type {value!r}; known: {known}")
        elif field == "xp_rules":
            out += _rules_problems(here, base / value)
    return out


def _rules_problems(here: str, path: Path) -> list[str]:
    from processors.gamification.rules import RulesError, rules_from_file

    try:
        rules_from_file(path)
    except OSError as exc:
        return [f"{here}: xp_rules: cannot read {path}: {exc.strerror or exc}"]
    except RulesError as exc:
        return [f"{here}: xp_rules: {path} is not a valid rules file: {exc}"]
    return []


def _layer_problems(experiments: tuple[Experiment, ...]) -> list[str]:
    out = []
    for e in experiments:
        if e.layer is not None and e.layer.start >= e.layer.end:
            out.append(f"experiment {e.key!r}: layer: start {e.layer.start:g} must be below end {e.layer.end:g}")
    slotted = [e for e in experiments if e.layer is not None and e.status != "stopped"]
    for i, a in enumerate(slotted):
        for b in slotted[i + 1 :]:
            la, lb = a.layer, b.layer
            assert la is not None and lb is not None
            if la.id == lb.id and la.start < lb.end and lb.start < la.end:
                out.append(
                    f"experiments {a.key!r} and {b.key!r}: layer: slots [{la.start:g}, {la.end:g}) and "
                    f"[{lb.start:g}, {lb.end:g}) of layer {la.id!r} overlap"
                )
    running = [e for e in experiments if e.status == "running"]
    for i, a in enumerate(running):
        for b in running[i + 1 :]:
            if a.surface is not b.surface or (a.tiers and b.tiers and not set(a.tiers) & set(b.tiers)):
                continue
            if a.layer is None or b.layer is None or a.layer.id != b.layer.id:
                out.append(
                    f"experiments {a.key!r} and {b.key!r}: layer: both run on surface {a.surface.value} without a "
                    "layer keeping them exclusive (put both in one layer, in disjoint slots)"
                )
    return out


def check(config: ExperimentsConfig, known_templates: Collection[str], base: Path) -> list[str]:
    """Every problem of a parsed configuration (empty: usable). ``base``: where relative rules files are."""
    out = []
    keys = [e.key for e in config.experiments]
    for dup in sorted({k for k in keys if keys.count(k) > 1}):
        out.append(f"experiment {dup!r}: key: declared more than once")
    for exp in config.experiments:
        out += _variant_problems(exp, known_templates, base)
    out += _layer_problems(config.experiments)
    return out


def _structure_problems(raw: Any) -> list[str]:
    """Pydantic's complaints, each prefixed by the experiment's key (not its index) when it has one."""
    if not isinstance(raw, dict):
        return [f"expected a JSON object, got {type(raw).__name__}"]
    out = []
    experiments = raw.get("experiments", [])
    if not isinstance(experiments, list):
        return ["experiments: expected a list"]
    for i, item in enumerate(experiments):
        key = item.get("key") if isinstance(item, dict) else None
        where = f"experiment {key!r}" if isinstance(key, str) else f"experiment #{i + 1}"
        try:
            Experiment.model_validate(item)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                out.append(f"{where}: {loc}: {err['msg']}")
    rest = {k: v for k, v in raw.items() if k != "experiments"}
    try:
        ExperimentsConfig.model_validate(rest)
    except ValidationError as exc:
        for err in exc.errors():
            out.append(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}")
    return out


def parse_experiments(
    text: str, source: str = "experiments", known_templates: Collection[str] | None = None, base: Path | None = None
) -> ExperimentsConfig:
    """Parse and check; raises ``ExperimentConfigError`` listing every problem."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExperimentConfigError(source, [f"not JSON: {exc}"]) from None
    problems = _structure_problems(raw)
    if problems:
        raise ExperimentConfigError(source, problems)
    config = ExperimentsConfig.model_validate(raw)
    templates = template_ids() if known_templates is None else known_templates
    problems = check(config, templates, base if base is not None else DEFAULT_EXPERIMENTS_PATH.parent)
    if problems:
        raise ExperimentConfigError(source, problems)
    return config


def load_experiments(
    path: str | Path = DEFAULT_EXPERIMENTS_PATH, templates_dir: Path = DEFAULT_TEMPLATES_DIR
) -> ExperimentsConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentConfigError(str(p), [f"cannot read: {exc.strerror or exc}"]) from None
    return parse_experiments(text, str(p), template_ids(templates_dir), p.resolve().parent)
