"""Experiments configuration: the shipped file loads; each kind of bad input is refused naming experiment and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from processors.experiments.config import (
    DEFAULT_EXPERIMENTS_PATH,
    ExperimentConfigError,
    load_experiments,
    parse_experiments,
    template_ids,
)
from schemas.experiments import Surface

TEMPLATES = {"gentle_reminder", "milestone_celebration", "streak_warning"}


def _exp(key: str, surface: str = "template", status: str = "running", **extra: Any) -> dict[str, Any]:
    field = {"template": "template", "send_time_strategy": "send_time_strategy",
             "intervention_type": "intervention_type", "xp_rules": "xp_rules"}[surface]  # fmt: skip
    value = {"template": "gentle_reminder", "send_time_strategy": "sto",
             "intervention_type": "gentle_reminder", "xp_rules": "gamification.json"}[surface]  # fmt: skip
    return {
        "key": key,
        "surface": surface,
        "status": status,
        "variants": [{"id": "control", "weight": 0.5, field: value}, {"id": "b", "weight": 0.5, field: value}],
        **extra,
    }


def _problems(*experiments: dict[str, Any]) -> list[str]:
    doc = {"version": 1, "holdout": {"share": 0.05, "salt": "s"}, "experiments": list(experiments)}
    with pytest.raises(ExperimentConfigError) as caught:
        parse_experiments(json.dumps(doc), "t", TEMPLATES, DEFAULT_EXPERIMENTS_PATH.parent)
    return caught.value.problems


def _ok(*experiments: dict[str, Any]) -> None:
    doc = {"version": 1, "holdout": {"share": 0.05, "salt": "s"}, "experiments": list(experiments)}
    parse_experiments(json.dumps(doc), "t", TEMPLATES, DEFAULT_EXPERIMENTS_PATH.parent)


def test_the_shipped_experiments_load_against_the_real_templates() -> None:
    config = load_experiments()
    assert config.holdout.share == 0.05
    assert {e.surface for e in config.experiments} == set(Surface)
    assert {"gentle_reminder", "streak_warning", "discount_offer"} <= template_ids()
    assert "_shared" not in template_ids()


def test_weights_must_sum_to_one() -> None:
    bad = _exp("copy")
    bad["variants"][1]["weight"] = 0.4
    assert _problems(bad) == [
        "experiment 'copy': variants.weight: the weights sum to 0.9 (control=0.5, b=0.4); they must sum to 1"
    ]
    thirds = _exp("thirds")
    thirds["variants"] = [{"id": f"v{i}", "weight": 1 / 3, "template": "gentle_reminder"} for i in range(3)]
    _ok(thirds)  # 1/3 three times is 1 within 1e-9


def test_unknown_template_strategy_and_intervention_type() -> None:
    template = _exp("copy")
    template["variants"][1]["template"] = "gentle_remindr"
    strategy = _exp("timing", "send_time_strategy", layer={"id": "t", "start": 0, "end": 1})
    strategy["variants"][1]["send_time_strategy"] = "whenever"
    kind = _exp("trigger", "intervention_type")
    kind["variants"][1]["intervention_type"] = "confetti"
    problems = _problems(template, strategy, kind)
    assert problems[0].startswith("experiment 'copy': variant 'b': template: unknown template 'gentle_remindr'")
    assert problems[1].startswith("experiment 'timing': variant 'b': send_time_strategy: unknown strategy 'whenever'")
    assert problems[2].startswith("experiment 'trigger': variant 'b': intervention_type: unknown intervention type")
    assert len(problems) == 3


def test_xp_rules_file_must_load(tmp_path: Path) -> None:
    bad = _exp("xp", "xp_rules")
    bad["variants"][1]["xp_rules"] = "missing.json"
    (problem,) = _problems(bad)
    assert problem.startswith("experiment 'xp': variant 'b': xp_rules: cannot read ")


def test_two_running_experiments_on_one_surface_need_a_layer() -> None:
    problems = _problems(_exp("a"), _exp("b"))
    assert problems == [
        "experiments 'a' and 'b': layer: both run on surface template without a layer keeping them exclusive "
        "(put both in one layer, in disjoint slots)"
    ]
    # in two different layers they can still share a student: refused too
    assert len(_problems(_exp("a", layer={"id": "x", "start": 0, "end": 0.5}),
                         _exp("b", layer={"id": "y", "start": 0.5, "end": 1}))) == 1  # fmt: skip
    # overlapping slots of one layer
    (overlap,) = _problems(
        _exp("a", layer={"id": "x", "start": 0, "end": 0.6}), _exp("b", layer={"id": "x", "start": 0.5, "end": 1})
    )
    assert overlap == "experiments 'a' and 'b': layer: slots [0, 0.6) and [0.5, 1) of layer 'x' overlap"
    # what is fine: one layer with disjoint slots; a draft beside a running one; other surfaces; disjoint tiers
    _ok(_exp("a", layer={"id": "x", "start": 0, "end": 0.5}), _exp("b", layer={"id": "x", "start": 0.5, "end": 1}))
    _ok(_exp("a"), _exp("b", status="draft"))
    _ok(_exp("a"), _exp("b", "send_time_strategy"))
    _ok(_exp("a", tiers=["low"]), _exp("b", tiers=["high"]))


def test_duplicates_and_wrong_surface_fields() -> None:
    dup_variant = _exp("b")
    dup_variant["variants"][1]["id"] = "control"
    other_field = _exp("c")
    other_field["variants"][0]["send_time_strategy"] = "sto"
    missing = _exp("d")
    del missing["variants"][1]["template"]
    problems = _problems(_exp("a"), _exp("a", status="draft"), dup_variant, other_field, missing)
    assert "experiment 'a': key: declared more than once" in problems
    assert "experiment 'b': variants.id: 'control' appears more than once" in problems
    only = "send_time_strategy: a template experiment's variant sets only template"
    assert f"experiment 'c': variant 'control': {only}" in problems
    assert "experiment 'd': variant 'b': template: missing; a template experiment's variants each set it" in problems


def test_structure_errors_name_the_experiment_by_key() -> None:
    one_variant = _exp("lonely")
    one_variant["variants"] = one_variant["variants"][:1]
    bad_key = _exp("Bad Key")
    problems = _problems(one_variant, bad_key, {"surface": "colour"})
    assert any(p.startswith("experiment 'lonely': variants: ") for p in problems)
    assert any(p.startswith("experiment 'Bad Key': key: String should match pattern") for p in problems)
    assert any(p.startswith("experiment #3: surface: ") for p in problems)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ExperimentConfigError, match="cannot read"):
        load_experiments(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ExperimentConfigError, match="not JSON"):
        load_experiments(broken)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"holdout": {"share": 0.9, "salt": "s"}}))
    with pytest.raises(ExperimentConfigError, match=r"holdout\.share: Input should be less than or equal to 0\.5"):
        load_experiments(big)
