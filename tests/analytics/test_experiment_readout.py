"""The experiment readout query on a small data set worked out by hand, on ClickHouse 18.16 and a current one."""

from __future__ import annotations

from typing import Any

from processors.experiments.config import Experiment, Variant
from schemas.experiments import Exposure, Surface, exposure_id
from schemas.interventions import InterventionOutcome, OutcomeKind
from sinks.clickhouse.tables import EXPERIMENT_EXPOSURES, INTERVENTION_OUTCOMES
from tests.analytics.conftest import Warehouse, at, event


def exposed(user: str, day: str, variant: str, intervention: str = "", experiment: str = "exp1") -> Exposure:
    return Exposure(
        exposure_id=exposure_id(experiment, user, variant),
        experiment=experiment,
        variant=variant,
        user_id=user,
        at=at(day, 10),
        surface=Surface.template,
        intervention_id=intervention,
        context={"tier": "low", "channel": "email"},
    )


def outcome(user: str, intervention: str, kind: OutcomeKind, day: str, hour: int = 12, detail: str = "") -> Any:
    return InterventionOutcome(
        intervention_id=intervention, user_id=user, outcome=kind, at=at(day, hour), detail=detail
    )


def _data(warehouse: Warehouse) -> None:
    first = exposed("c2", "2026-11-02", "control", "i-c2a")
    warehouse.contract(
        EXPERIMENT_EXPOSURES,
        exposed("c1", "2026-11-01", "control", "i-c1"),
        first,
        first,  # delivered twice: one exposure
        exposed("c2", "2026-11-03", "control", "i-c2b"),  # a second message: same student, same variant
        exposed("c3", "2026-11-28", "control", "i-c3"),  # neither window is over by as_of
        exposed("t1", "2026-11-01", "treat", "i-t1"),
        exposed("t2", "2026-11-01", "treat", "i-t2"),
        exposed("m1", "2026-11-01", "control", "i-m1"),
        exposed("m1", "2026-11-05", "treat", "i-m1b"),  # two variants: counted apart, compared nowhere
        exposed("x1", "2026-11-01", "control", "i-x1", experiment="exp2"),  # another experiment
        exposed("c4", "2026-12-05", "control", "i-c4"),  # after as_of
    )
    warehouse.events(
        event("c1", "2026-11-03"),  # day 2: returned
        event("c1", "2026-11-27"),  # day 26: retained
        event("c1", "2026-12-05"),  # after as_of
        event("c2", "2026-11-10"),  # day 8: too late to count as a return
        event("t1", "2026-11-02"),  # day 1: returned
        event("t1", "2026-11-20"),  # day 19: not in the month's last week
        event("x1", "2026-11-02"),
    )
    unsubscribed = "sms via twilio: will not go to this address (the recipient unsubscribed: replied STOP)"
    warehouse.contract(
        INTERVENTION_OUTCOMES,
        outcome("c1", "i-c1", OutcomeKind.sent, "2026-11-01", 10),
        outcome("c1", "i-c1", OutcomeKind.opened, "2026-11-01"),
        outcome("c2", "i-c2a", OutcomeKind.sent, "2026-11-02", 10),
        outcome("c2", "i-c2b", OutcomeKind.sent, "2026-11-03", 10),
        outcome("c2", "i-c2b", OutcomeKind.clicked, "2026-11-03"),  # a click is an open too
        outcome("c2", "i-other", OutcomeKind.opened, "2026-11-04"),  # no exposure names it: counted, not credited
        outcome("t1", "i-t1", OutcomeKind.sent, "2026-11-01", 10),
        outcome("t1", "i-t1b", OutcomeKind.dead_lettered, "2026-11-06", detail=unsubscribed),
        outcome("t2", "i-t2", OutcomeKind.opened, "2026-10-31"),  # before the exposure: not counted
        outcome("x1", "i-x1", OutcomeKind.opened, "2026-11-01"),
    )


def test_experiment_readout_per_variant(warehouse: Warehouse) -> None:
    _data(warehouse)
    result = warehouse.query("experiment_readout", experiment="exp1", as_of="2026-12-02")
    assert result.columns == [
        "variant",
        "exposed",
        "first_exposure",
        "last_first_exposure",
        "eligible_7d",
        "returned_7d",
        "opened",
        "clicked",
        "eligible_30d",
        "retained_30d",
        "unsubscribed",
        "notifications_sent",
        "outcomes_without_exposure",
    ]
    rows = [tuple(r.values()) for r in result.records()]
    assert rows == [
        ("(several)", 1, "2026-11-01 10:00:00", "2026-11-01 10:00:00", 1, 0, 0, 0, 1, 0, 0, 0, 0),
        # c1, c2, c3: returned c1; opened c1, c2 (its click); clicked c2; retained c1; sent 1 + 2; c2's orphan open
        ("control", 3, "2026-11-01 10:00:00", "2026-11-28 10:00:00", 2, 1, 2, 1, 2, 1, 0, 3, 1),
        # t1, t2: returned t1; t1 unsubscribed; t2's open came before its exposure
        ("treat", 2, "2026-11-01 10:00:00", "2026-11-01 10:00:00", 2, 1, 0, 0, 2, 0, 1, 1, 0),
    ]
    assert warehouse.query("experiment_readout", experiment="nope", as_of="2026-12-02").rows == []


def test_experiment_readout_through_the_python_layer(warehouse: Warehouse) -> None:
    from analytics.experiments import readout

    _data(warehouse)
    experiment = Experiment(
        key="exp1",
        surface=Surface.template,
        status="running",
        variants=(
            Variant(id="control", weight=0.5, template="gentle_reminder"),
            Variant(id="treat", weight=0.5, template="milestone_celebration"),
        ),
    )
    report = readout(warehouse.client, experiment, as_of="2026-12-02")
    assert [v.variant for v in report.variants] == ["control", "treat"]
    assert report.several_variants == 1 and report.outcomes_without_exposure == 1
    returned = report.metric("returned_7d")
    assert [(c.variant, c.arm.n, c.arm.conversions) for c in returned] == [("control", 2, 1), ("treat", 2, 1)]
    assert returned[1].lift is not None and returned[1].lift.estimate == 0.0
