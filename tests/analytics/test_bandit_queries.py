"""The bandit's named queries (bandit_arms, type_choice_returns) on small data sets worked out by hand, on ClickHouse
18.16 and a current one."""

from __future__ import annotations

from typing import Any

import orjson

from schemas.experiments import ArmOutcome
from schemas.interventions import InterventionRequest, InterventionType
from sinks.clickhouse.tables import BANDIT_OUTCOMES, INTERVENTION_REQUESTS
from sinks.contract_sinks import contract_row
from tests.analytics.conftest import Warehouse, at, event, request

REMIND, WARN, REACH = InterventionType.gentle_reminder, InterventionType.streak_warning, InterventionType.human_outreach


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in result.records()]


def closed(
    user: str, arm: InterventionType, tier: str, profile: str, success: bool, day: str, n: int = 0
) -> ArmOutcome:
    return ArmOutcome(
        intervention_id=f"{user}:bandit:{n}",
        user_id=user,
        arm=arm,
        tier=tier,  # type: ignore[arg-type]
        profile=profile,
        success=success,
        sent_at=at(day, 8),
        at=at(day, 10),
    )


def test_bandit_arms_counts_closed_windows_and_returns_per_context_and_arm(warehouse: Warehouse) -> None:
    b3 = closed("b3", WARN, "high", "video", True, "2026-11-06")
    warehouse.contract(
        BANDIT_OUTCOMES,
        closed("b1", WARN, "high", "video", True, "2026-11-05"),
        closed("b2", WARN, "high", "video", False, "2026-11-09"),
        b3,
        b3,  # re-sent by the worker after a crash: one window
        closed("b4", REMIND, "high", "video", False, "2026-11-07"),
        closed("b5", WARN, "high", "", True, "2026-11-08"),  # no profile bucket in the context
        closed("b6", REACH, "critical", "", False, "2026-11-03"),
        closed("b7", REACH, "critical", "", True, "2026-11-04"),
        closed("b8", WARN, "high", "video", False, "2026-10-20"),  # before since
    )
    result = warehouse.query("bandit_arms", since="2026-11-01")
    assert result.columns == [
        "tier",
        "profile_bucket",
        "arm",
        "windows_closed",
        "returned",
        "return_pct",
        "first_outcome",
        "last_outcome",
    ]
    # critical first; within a context the best arm first
    assert rows(result) == [
        ("critical", "(none)", "human_outreach", 2, 1, 50.0, "2026-11-03 10:00:00", "2026-11-04 10:00:00"),
        ("high", "(none)", "streak_warning", 1, 1, 100.0, "2026-11-08 10:00:00", "2026-11-08 10:00:00"),
        ("high", "video", "streak_warning", 3, 2, 66.7, "2026-11-05 10:00:00", "2026-11-09 10:00:00"),
        ("high", "video", "gentle_reminder", 1, 0, 0.0, "2026-11-07 10:00:00", "2026-11-07 10:00:00"),
    ]
    earlier = rows(warehouse.query("bandit_arms", since="2026-10-01"))
    assert earlier[2] == ("high", "video", "streak_warning", 4, 2, 50.0, "2026-10-20 10:00:00", "2026-11-09 10:00:00")


def chosen(req: InterventionRequest, by: str, **arms: str) -> InterventionRequest:
    return req.model_copy(update={"chosen_by": by, "arms": arms})


def test_type_choice_returns_compares_bandit_policy_experiment_and_held_out(warehouse: Warehouse) -> None:
    p1 = request("p1", "2026-11-02", "send", REMIND, "high")
    warehouse.contract(
        INTERVENTION_REQUESTS,
        chosen(request("k1", "2026-11-02", "send", WARN, "high"), "bandit"),  # back on day 2: returned
        chosen(request("k1", "2026-11-05", "send", REMIND, "high", n=1), "bandit"),  # not back after it
        chosen(request("k2", "2026-11-02", "send", WARN, "high"), "bandit"),  # active the same day only
        chosen(request("k3", "2026-11-03", "deferred", REMIND, "high"), "bandit"),  # back on day 7
        chosen(request("k4", "2026-11-20", "send", WARN, "high"), "bandit"),  # 7 days not over by as_of
        p1,  # the policy's first type; back on day 7
        p1,  # delivered twice: one decision
        chosen(request("x1", "2026-11-04", "send", REACH, "high"), "experiment", **{"type-test": "b"}),  # day 2
        chosen(request("h1", "2026-11-02", "held_out", WARN, "high"), "bandit"),  # held out: back on day 1
        request("h2", "2026-11-02", "held_out", REMIND, "high"),  # back on day 10: too late
        chosen(request("l1", "2026-11-10", "send", REMIND, "low"), "bandit"),  # back on day 1
        request("l2", "2026-10-20", "send", REMIND, "low"),  # before from
        request("l3", "2026-11-23", "send", REMIND, "low"),  # after as_of
        request("l4", "2026-11-16", "held_out", REMIND, "low"),  # not eligible yet
    )
    # p2: a request stored before the chooser was recorded (the column reads ''): the policy chose it
    legacy = orjson.loads(request("p2", "2026-11-03", "send", REMIND, "high").model_dump_json())
    del legacy["chosen_by"], legacy["arms"]
    row = contract_row(INTERVENTION_REQUESTS, legacy, 0, 999)
    assert row[INTERVENTION_REQUESTS.column_names.index("chosen_by")] == ""
    warehouse._insert(INTERVENTION_REQUESTS, [row], INTERVENTION_REQUESTS.column_names)
    warehouse.events(
        event("k1", "2026-11-04"),
        event("k2", "2026-11-02", hour=20),
        event("k3", "2026-11-10"),
        event("k4", "2026-11-21"),
        event("p1", "2026-11-09"),
        event("x1", "2026-11-06"),
        event("h1", "2026-11-03"),
        event("h2", "2026-11-12"),
        event("l1", "2026-11-11"),
    )
    result = warehouse.query("type_choice_returns", **{"from": "2026-11-01", "as_of": "2026-11-22"})
    assert result.columns == [
        "tier",
        "chosen_by",
        "requests",
        "students",
        "eligible_7d",
        "returned_7d",
        "return_pct",
    ]
    assert rows(result) == [
        ("high", "bandit", 5, 4, 4, 2, 50.0),  # k1 (twice), k2, k3, k4: k1's first and k3 came back
        ("high", "experiment", 1, 1, 1, 1, 100.0),
        ("high", "policy", 2, 2, 2, 1, 50.0),  # p1 and the unlabelled p2
        ("high", "held_out", 2, 2, 2, 1, 50.0),  # h1 although the bandit had chosen its type
        ("low", "bandit", 1, 1, 1, 1, 100.0),
        ("low", "held_out", 1, 1, 0, 0, None),  # nothing eligible: no rate (NaN, read as None)
    ]
    later = rows(warehouse.query("type_choice_returns", **{"from": "2026-11-01", "as_of": "2026-11-30"}))
    assert later[0] == ("high", "bandit", 5, 4, 5, 3, 60.0)  # k4's week is over: back on day 1
    assert later[-1] == ("low", "held_out", 1, 1, 1, 0, 0.0)
