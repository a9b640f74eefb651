"""The success desk's queries (offer redemption, outreach SLA) on a small data set worked out by hand.

Each test runs twice: on the local ClickHouse 18.16 server and on a current ClickHouse (chdb).
"""

from __future__ import annotations

from typing import Any

from schemas.interventions import InterventionOutcome, InterventionType, OutcomeKind
from sinks.clickhouse.tables import INTERVENTION_OUTCOMES
from tests.analytics.conftest import REQUESTS, Warehouse, at, request


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in result.records()]


def outcome(intervention: str, kind: OutcomeKind, day: str, hour: int = 10, detail: str = "") -> InterventionOutcome:
    return InterventionOutcome(
        intervention_id=intervention, user_id=f"u-{intervention}", outcome=kind, at=at(day, hour), detail=detail
    )


def test_offer_redemption_per_week_of_issue(warehouse: Warehouse) -> None:
    issued, redeemed = OutcomeKind.offer_issued, OutcomeKind.offer_redeemed
    o2_issued, o2_redeemed = outcome("o2", issued, "2026-11-03"), outcome("o2", redeemed, "2026-11-03", 16)
    warehouse.contract(
        INTERVENTION_OUTCOMES,
        outcome("o0", issued, "2026-10-01"),  # before from
        outcome("o0", redeemed, "2026-10-02"),
        outcome("o1", issued, "2026-11-02"),
        outcome("o1", OutcomeKind.sent, "2026-11-02", 11),  # not an offer outcome
        outcome("o1", redeemed, "2026-11-03"),  # 24 h
        o2_issued,
        o2_issued,  # delivered twice: one offer
        o2_redeemed,  # 6 h
        o2_redeemed,
        outcome("o3", issued, "2026-11-04"),  # never redeemed
        outcome("o4", issued, "2026-11-05"),
        outcome("o4", redeemed, "2026-11-30"),  # after as_of: not yet
        outcome("o7", issued, "2026-11-06", 8),
        outcome("o7", redeemed, "2026-11-06"),  # 2 h
        outcome("o5", issued, "2026-11-09"),  # a week with none redeemed
        outcome("o6", issued, "2026-11-25"),  # after as_of
    )
    result = warehouse.query("offer_redemption", **{"from": "2026-11-01", "as_of": "2026-11-22"})
    assert result.columns == ["week", "issued", "redeemed", "redemption_pct", "median_hours_to_redeem"]
    assert rows(result) == [
        ("2026-11-02", 5, 3, 60.0, 6.0),  # o1, o2, o7 of o1, o2, o3, o4, o7; median of 2, 6, 24 hours
        ("2026-11-09", 1, 0, 0.0, 0.0),
    ]


def test_outreach_sla_per_week_queued(warehouse: Warehouse) -> None:
    queued, claimed, resolved = OutcomeKind.queued, OutcomeKind.claimed, OutcomeKind.resolved
    reach = InterventionType.human_outreach
    # conftest's request(): decided at 11:00, the deadline at 11:00 the same day
    days = ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05", "2026-11-10"]
    requests = [request(f"s{n}", day, "send", reach, "critical") for n, day in enumerate(days, start=1)]
    warehouse.contract(REQUESTS, *requests, requests[0])  # one request delivered twice
    ids = {r.user_id: r.intervention_id for r in requests}

    def o(user: str, kind: OutcomeKind, day: str, hour: int, detail: str = "") -> InterventionOutcome:
        return InterventionOutcome(
            intervention_id=ids[user], user_id=user, outcome=kind, at=at(day, hour), detail=detail
        )

    warehouse.contract(
        INTERVENTION_OUTCOMES,
        o("s1", queued, "2026-11-02", 10),
        o("s1", claimed, "2026-11-02", 10),  # claimed at once, resolved at 11:00: in time
        o("s1", resolved, "2026-11-02", 11, "reached_returning"),
        o("s1", resolved, "2026-11-02", 11, "reached_returning"),  # delivered twice
        o("s2", queued, "2026-11-03", 10),
        o("s2", claimed, "2026-11-03", 12),
        o("s2", resolved, "2026-11-03", 14, "no_answer"),  # 4 h after queueing: past the 11:00 deadline
        o("s3", queued, "2026-11-04", 10),  # never claimed: overdue
        o("s4", queued, "2026-11-05", 10),
        o("s4", claimed, "2026-11-05", 11),  # claimed, not resolved: overdue
        o("s5", queued, "2026-11-10", 10),
        o("s5", claimed, "2026-11-23", 9),  # after as_of: not counted
    )
    result = warehouse.query("outreach_sla", **{"from": "2026-11-01", "as_of": "2026-11-22"})
    assert result.columns == [
        "week",
        "queued",
        "claimed",
        "resolved",
        "resolved_in_sla",
        "overdue",
        "sla_pct",
        "median_minutes_to_claim",
        "median_minutes_to_resolve",
    ]
    assert rows(result) == [
        # claims after 0, 120, 60 minutes -> median 60; resolutions after 60 and 240 -> the upper middle, 240
        ("2026-11-02", 4, 3, 2, 1, 3, 25.0, 60.0, 240.0),
        ("2026-11-09", 1, 0, 0, 0, 1, 0.0, 0.0, 0.0),
    ]
