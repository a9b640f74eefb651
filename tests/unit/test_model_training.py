"""Training, calibration, the registry and the trained model's explanations, on synthetic students."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from models.calibration import IsotonicCalibrator
from models.features import FEATURES
from models.labels import StudentOutcome
from models.lightgbm_model import LightGBMRiskModel
from models.metrics import calibration_table, expected_calibration_error, pr_auc, roc_auc
from models.registry import ModelRegistry
from models.synthetic import synthetic_training_set
from models.training import TrainConfig, train
from models.training_data import DEFAULT_EXTRACTORS, RowContext, TrainingSet, Warehouse, audit_point_in_time, build
from schemas.signals import SignalSnapshot


def synthetic(users: int = 200, days: int = 100, seed: int = 3) -> tuple[TrainingSet, list[float]]:
    return synthetic_training_set(users, days, seed)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRegistry, str, TrainingSet, list[float]]:
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    data, truth = synthetic()
    result = train(data, TrainConfig(max_rounds=300, early_stopping_rounds=30), registry, version="v1")
    return registry, result.version, data, truth


def test_training_writes_a_versioned_model_with_metrics_and_its_recipe(trained) -> None:
    registry, version, _, _ = trained
    meta = registry.get(version).metadata
    assert set(meta["metrics"]) == {"7", "30"}
    assert meta["features"] == list(FEATURES)
    assert {"roc_auc", "pr_auc", "brier", "ece", "calibration"} <= set(meta["metrics"]["7"]["model"])
    assert set(meta["metrics"]["7"]) == {"model", "heuristic"}  # compared on the same test rows
    assert meta["code_version"] and meta["data_window"] == {"first_day": 0, "last_day": 99}
    # per horizon, among matured labels, with a gap of one horizon so no training label sees the test period
    assert meta["split"] == {
        "7": "by time: test from day 75, training before day 68",
        "30": "by time: test from day 75, training before day 45",
    }
    assert (registry.root / version / "model-7d.txt").exists()


def test_calibrated_scores_match_known_probabilities(trained) -> None:
    registry, version, data, truth = trained
    model = LightGBMRiskModel(registry.get(version))
    test = [i for i, d in enumerate(data.days) if d >= 75]  # the 7-day model's test period
    p = model.probabilities(np.asarray([data.features[i] for i in test]), 7)
    y = np.asarray([data.labels[7][i] for i in test])
    assert expected_calibration_error(calibration_table(p, y)) < 0.05  # a score of 80 means about 80%
    true_p = np.asarray([truth[i] for i in test])
    assert abs(float(np.mean(p)) - float(np.mean(true_p))) < 0.03
    assert roc_auc(p, y) > roc_auc(true_p, y) - 0.03  # about as sharp as the true probabilities allow


def test_trained_model_scores_a_micro_batch_and_explains_in_words(trained) -> None:
    registry, version, _, _ = trained
    model = LightGBMRiskModel(registry.get(version))
    now = datetime(2026, 3, 1, tzinfo=UTC)
    gone = SignalSnapshot(user_id="a", as_of=now, days_since_last_login=19.0, days_observed=30)
    here = SignalSnapshot(user_id="b", as_of=now, days_since_last_login=0.5, days_observed=30)
    risky, fine = model.score_many([gone, here])
    assert risky.risk_7d > 80 > 20 > fine.risk_7d
    assert risky.risk_30d >= risky.risk_7d and risky.tier == "critical"
    assert risky.model_version == f"lightgbm-{version}"
    assert risky.factors[0].signal == "days_since_last_login"
    assert risky.factors[0].description == "days since last login: 19"
    assert 0 < sum(f.contribution for f in risky.factors) <= risky.risk_7d
    assert model.score(gone) == risky


def test_registry_promotes_and_rolls_back(tmp_path: Path, trained) -> None:
    registry, version, data, _ = trained
    other = train(data, TrainConfig(max_rounds=20, early_stopping_rounds=5), registry, version="v2").version
    assert [e.version for e in registry.list()] == ["v1", "v2"]
    assert registry.promoted() is None
    registry.promote(version)
    registry.promote(other)
    assert registry.pointer_stamp() == "v2"
    assert registry.rollback().version == "v1"  # type: ignore[union-attr]
    assert registry.rollback() is None  # back to the heuristic
    with pytest.raises(ValueError, match="nothing is promoted"):
        registry.rollback()
    with pytest.raises(KeyError, match="no model version 'v9'"):
        registry.promote("v9")


def test_the_point_in_time_audit_catches_a_leaking_feature() -> None:
    start = date(2026, 1, 1)
    rows, outcomes = [], {}
    for u in range(5):
        active = [20_454 + d for d in range(0, 30, 1 + u)]  # 2026-01-01 is day 20454
        outcomes[f"u{u}"] = StudentOutcome(active, [])
        for d in range(30):
            snap = SignalSnapshot(user_id=f"u{u}", as_of=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d),
                                  logins_7d=d % 7)  # fmt: skip
            row = {f"signals_{k}": v for k, v in snap.model_dump().items()}
            rows.append({"user_id": f"u{u}", "day": start + timedelta(days=d), **row})
    warehouse = Warehouse(rows, outcomes, data_end=20_454 + 29)
    cutoffs = [20_454 + d for d in (5, 12, 20)]
    assert audit_point_in_time(warehouse, cutoffs) == []

    def active_next_week(ctx: RowContext) -> float:  # deliberately looks past the prediction day
        return float(ctx.outcome.any_in(ctx.outcome.active_days, ctx.day + 1, ctx.day + 7))

    leaky = {**DEFAULT_EXTRACTORS, "active_next_week": active_next_week}
    assert audit_point_in_time(warehouse, cutoffs, leaky) == ["active_next_week"]
    assert len(build(warehouse)) == 150


def test_metrics_on_hand_computed_examples() -> None:
    assert roc_auc([0.8, 0.6, 0.6, 0.2], [1, 0, 1, 0]) == 0.875
    assert pr_auc([0.9, 0.8, 0.7], [1, 0, 1]) == pytest.approx((1 + 2 / 3) / 2)
    cal = IsotonicCalibrator.fit([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 1])
    # blocks: {0.1} -> 0, {0.2, 0.3} -> 0.5 (the 1 then 0 violate order and pool), {0.4} -> 1
    assert list(cal.predict([0.1, 0.25, 0.35, 0.9])) == [0.0, 0.5, 1.0, 1.0]


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shifted_one() -> None:
    from models.monitoring import drift_reference, feature_psi

    rng = np.random.default_rng(1)
    train_x = np.column_stack([rng.normal(0, 1, 20_000), rng.uniform(0, 10, 20_000)])
    train_x[:2_000, 1] = np.nan  # 10% missing
    ref = drift_reference(train_x, ["a", "b"])
    same = np.column_stack([rng.normal(0, 1, 5_000), rng.uniform(0, 10, 5_000)])
    same[:500, 1] = np.nan
    shifted = np.column_stack([rng.normal(1.0, 1, 5_000), rng.uniform(0, 10, 5_000)])  # b: no missing any more
    assert max(feature_psi(ref, same, ["a", "b"]).values()) < 0.02
    drift = feature_psi(ref, shifted, ["a", "b"])
    assert drift["a"] > 0.25  # a moved by one standard deviation: drifted
    assert drift["b"] > 0.25  # missing values disappeared: usually an upstream change, worth an alert too


def test_monotone_features_never_lower_the_risk_when_they_worsen(tmp_path: Path) -> None:
    from models.training import MONOTONE

    registry = ModelRegistry(tmp_path)
    data, _ = synthetic(users=150, days=80, seed=5)
    away = FEATURES.index("days_since_last_login")
    for i, row in enumerate(data.features):  # an odd pocket: every student away 5-12 days came back within 7
        if 5 <= row[away] <= 12 and data.labels[7][i] is not None:
            data.labels[7][i] = 0  # (unconstrained, the model learns that dip: 124 of these steps fall)
    version = train(data, TrainConfig(max_rounds=80, early_stopping_rounds=80), registry, version="m").version
    model = LightGBMRiskModel(registry.get(version))
    constraints = registry.get(version).metadata["params"]["7"]["monotone_constraints"]
    assert constraints == [MONOTONE.get(f, 0) for f in FEATURES]
    rows = np.asarray(data.features[::97], dtype=float)
    for name in ("days_since_last_login", "days_since_last_activity", "active_days_7d"):
        k = FEATURES.index(name)
        risks = []
        for value in (0.0, 1.0, 3.0, 4.0, 7.0, 10.0, 14.0, 30.0):
            varied = rows.copy()
            varied[:, k] = value
            risks.append(model.boosters[7].predict(varied))
        steps = np.diff(np.asarray(risks), axis=0) * MONOTONE[name]  # worse values: the raw score never falls
        assert (steps >= -1e-12).all(), name


def test_grouped_cross_validation_chooses_the_settings_on_training_rows_only(tmp_path: Path) -> None:
    from models.training import CANDIDATES, CV_HASH_FOLDS, _fold_of, clear_winner

    registry = ModelRegistry(tmp_path)
    data, _ = synthetic(users=150, days=80, seed=6)
    config = TrainConfig(max_rounds=40, early_stopping_rounds=10, tune=True)
    meta = registry.get(train(data, config, registry, version="cv").version).metadata
    for h in ("7", "30"):
        table = meta["cross_validation"][h]
        assert [row["settings"] for row in table] == list(CANDIDATES)
        assert all(len(row["roc_auc"]) == CV_HASH_FOLDS and 0.5 < row["mean_roc_auc"] <= 1 for row in table)
        chosen = CANDIDATES[clear_winner(table)]
        assert {k: meta["params"][h][k] for k in chosen} == chosen  # the final model is trained with the winner
        shares = meta["importance"][h]
        assert abs(sum(shares.values()) - 1) < 0.01 and set(shares) <= set(FEATURES)
    # groups: the training prefixes when there are two or more, else buckets of students by hash
    prefixes = ("oulad-BBB-2013B-", "oulad-DDD-2013B-")
    assert _fold_of("oulad-DDD-2013B-17", prefixes) == 1 and _fold_of("oulad-BBB-2013B-17", prefixes) == 0
    assert _fold_of("u-17", ()) == _fold_of("u-17", ("only-",)) in range(CV_HASH_FOLDS)


def test_settings_change_only_when_a_candidate_is_clearly_better_fold_by_fold() -> None:
    from models.training import CANDIDATES, DEFAULT_CANDIDATE, PARAMS, clear_winner

    assert all(PARAMS[k] == v for k, v in CANDIDATES[DEFAULT_CANDIDATE].items())  # the default is PARAMS as they are

    def table(*folds: tuple[float, ...]) -> list[dict[str, object]]:
        return [{"roc_auc": list(f), "mean_roc_auc": sum(f) / len(f)} for f in folds]

    default = (0.955, 0.937, 0.939)
    noise = table((0.956, 0.937, 0.940), (0.956, 0.940, 0.939), default)  # OULAD's 30-day figures: within noise
    assert clear_winner(noise) == DEFAULT_CANDIDATE
    clear = table((0.962, 0.943, 0.946), (0.951, 0.943, 0.944), default)  # better in every fold by 0.006 or more
    assert clear_winner(clear) == 0
    uneven = table((0.990, 0.930, 0.935), (0.955, 0.937, 0.939), default)  # one fold much better, two worse
    assert clear_winner(uneven) == DEFAULT_CANDIDATE
