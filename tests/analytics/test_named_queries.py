"""Every named analyst query, on a small data set whose answer is worked out by hand in each test.

Each test runs twice: on the local ClickHouse 18.16 server and on a current ClickHouse (chdb).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from models.training_data import day_number
from schemas.events import Channel
from schemas.interventions import InterventionOutcome, InterventionRequest, InterventionType, OutcomeKind
from sinks.clickhouse.tables import INTERVENTION_OUTCOMES as OUTCOMES
from tests.analytics.conftest import REQUESTS, RISK, Warehouse, event, request, risk


def rows(result: Any) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in result.records()]


def test_weekly_cohort_retention_by_first_activity_and_by_enrolment(warehouse: Warehouse) -> None:
    # Weeks (Mondays): W1 = Nov 2, W2 = Nov 9, W3 = Nov 16, W4 = Nov 23 (2026).
    dup = event("a1", "2026-11-02", event_id="a1-first")
    warehouse.events(
        dup,
        dup,  # delivered twice: still one active day, one student
        event("a1", "2026-11-10"),
        event("a1", "2026-11-17"),
        event("a2", "2026-11-03", "enrolled"),
        event("a2", "2026-11-03"),
        event("a2", "2026-11-18"),
        event("a3", "2026-11-04", "lesson_completed"),
        event("a4", "2026-11-01", "enrolled"),  # enrolment alone is not activity
        event("a4", "2026-11-09"),
        event("a4", "2026-11-09", "quiz_submitted"),
        event("a4", "2026-11-16"),
        event("a5", "2026-11-11", "content_viewed"),
        event("a5", "2026-11-25", "notification_opened"),  # not activity, and after as_of
    )
    by_activity = warehouse.query(
        "weekly_cohort_retention", **{"from": "2026-11-02", "to": "2026-11-22", "weeks": 3, "as_of": "2026-11-22"}
    )
    assert by_activity.columns == ["cohort_week", "week_n", "cohort_size", "retained", "retention_pct"]
    # W1 cohort a1, a2, a3: W2 only a1, W3 a1 and a2. W2 cohort a4, a5: W3 only a4. W4 has not ended.
    assert rows(by_activity) == [
        ("2026-11-02", 0, 3, 3, 100.0),
        ("2026-11-02", 1, 3, 1, 33.3),
        ("2026-11-02", 2, 3, 2, 66.7),
        ("2026-11-09", 0, 2, 2, 100.0),
        ("2026-11-09", 1, 2, 1, 50.0),
    ]
    by_enrolment = warehouse.query(
        "weekly_cohort_retention",
        **{"cohort_by": "enrolment", "from": "2026-10-26", "to": "2026-11-22", "weeks": 3, "as_of": "2026-11-22"},
    )
    # a4 enrolled in the week of Oct 26 (active in W2, W3); a2 enrolled in W1 (active W1, W3); nobody else did.
    assert rows(by_enrolment) == [
        ("2026-10-26", 0, 1, 0, 0.0),
        ("2026-10-26", 1, 1, 0, 0.0),
        ("2026-10-26", 2, 1, 1, 100.0),
        ("2026-10-26", 3, 1, 1, 100.0),
        ("2026-11-02", 0, 1, 1, 100.0),
        ("2026-11-02", 1, 1, 0, 0.0),
        ("2026-11-02", 2, 1, 1, 100.0),
    ]


def test_engagement_growth_states_partition_dau(warehouse: Warehouse) -> None:
    days = [f"2026-11-{d:02d}" for d in range(1, 11)]
    warehouse.events(
        *(event("g1", d) for d in days),  # every day Nov 1-10: current
        event("g2", "2026-10-01"),
        event("g2", "2026-11-10"),  # back after 40 days: resurrected
        event("g3", "2026-11-01"),
        event("g3", "2026-11-10"),  # back after 9 days: reactivated
        event("g4", "2026-11-10"),  # first day: new
        event("g4", "2026-11-10", "session_started", hour=11),
        event("g5", "2026-11-05"),
        event("g5", "2026-11-10", "notification_delivered"),  # not activity: at risk (WAU) on Nov 10
        event("g6", "2026-10-20"),  # at risk (MAU) on both days
        event("g7", "2026-09-01"),  # long gone: in no count
    )
    result = warehouse.query("engagement_growth", **{"from": "2026-11-09", "to": "2026-11-10"})
    assert result.columns == [
        "day",
        "dau",
        "wau",
        "mau",
        "stickiness",
        "new_students",
        "current_students",
        "reactivated",
        "resurrected",
        "at_risk_wau",
        "at_risk_mau",
    ]
    assert rows(result) == [
        # Nov 9: only g1 active; WAU g1, g5; MAU g1, g3, g5, g6; at risk: g5 (WAU), g3 and g6 (MAU)
        ("2026-11-09", 1, 2, 4, 0.25, 0, 1, 0, 0, 1, 2),
        # Nov 10: g1 current, g2 resurrected, g3 reactivated, g4 new; g5 at risk (WAU), g6 (MAU)
        ("2026-11-10", 4, 5, 6, 0.667, 1, 1, 1, 1, 1, 1),
    ]


def test_at_risk_now_lists_latest_scores_with_reasons(warehouse: Warehouse) -> None:
    r3 = risk("r3", "2026-11-12", 70.0, factors=("Quiz scores falling",))
    warehouse.contract(
        RISK,
        risk("r1", "2026-11-10", 85.0, factors=("A", "B", "C", "D")),
        risk("r1", "2026-11-11", 90.0, factors=("No login for 9 days", "Streak lost", "Lessons down 60%", "W")),
        risk("r2", "2026-11-11", 65.0),
        risk("r2", "2026-11-12", 30.0),  # recovered: no longer listed
        r3,
        r3,  # delivered twice
        risk("r4", "2026-11-12", 59.9),
    )
    result = warehouse.query("at_risk_now", min_risk=60)
    assert result.columns == [
        "user_id",
        "tier",
        "risk_7d",
        "risk_30d",
        "top_factors",
        "last_seen",
        "scored_as_of",
        "model_version",
    ]
    assert rows(result) == [
        (
            "r1",
            "critical",
            90.0,
            95.0,
            "No login for 9 days; Streak lost; Lessons down 60%",
            "2026-11-11T09:00:00+00:00",
            "2026-11-11T12:00:00+00:00",
            "heuristic-1",
        ),
        (
            "r3",
            "high",
            70.0,
            75.0,
            "Quiz scores falling",
            "2026-11-12T09:00:00+00:00",
            "2026-11-12T12:00:00+00:00",
            "heuristic-1",
        ),
    ]
    assert [r[0] for r in rows(warehouse.query("at_risk_now", min_risk=60, limit=1))] == ["r1"]


def test_tier_transitions_week_over_week(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("t1", "2026-11-05", 65.0),
        risk("t1", "2026-11-12", 85.0),  # high -> critical
        risk("t2", "2026-11-06", 61.0),
        risk("t2", "2026-11-13", 70.0),  # high -> high
        risk("t3", "2026-11-07", 62.0),  # high, no score in the week: still high
        risk("t4", "2026-11-10", 45.0),  # new -> medium
        risk("t5", "2026-11-02", 25.0),
        risk("t5", "2026-11-08", 10.0),
        risk("t5", "2026-11-15", 30.0),  # minimal -> low
        risk("t6", "2026-11-17", 90.0),  # after the week: not counted
    )
    result = warehouse.query("tier_transitions", week="2026-11-11")
    assert rows(result) == [
        ("new", "medium", 1, 100.0),
        ("high", "critical", 1, 33.3),
        ("high", "high", 2, 66.7),
        ("minimal", "low", 1, 100.0),
    ]


def test_intervention_effectiveness_uplift_with_confidence_interval(warehouse: Warehouse) -> None:
    remind, reach = InterventionType.gentle_reminder, InterventionType.human_outreach
    outreach = request("e7", "2026-11-03", "send", reach, "critical")
    warehouse.contract(
        REQUESTS,
        request("e1", "2026-11-01", "send", remind, "low"),  # back on day 2: returned
        request("e2", "2026-11-01", "send", remind, "low"),  # back on day 8: too late
        request("e3", "2026-11-02", "deferred", remind, "low"),  # back on day 7: returned
        request("e4", "2026-11-02", "send", remind, "low"),  # never back
        request("e5", "2026-11-01", "held_out", remind, "low"),  # active the same day only: not a return
        request("e6", "2026-11-01", "held_out", remind, "low"),  # back on day 4: returned
        outreach,
        outreach,  # delivered twice: one decision
        request("e8", "2026-11-03", "send", reach, "critical"),
        request("e9", "2026-11-03", "held_out", reach, "critical"),
        request("e10", "2026-11-20", "send", reach, "critical"),  # 7 days not over by as_of
        request("e11", "2026-10-01", "send", reach, "critical"),  # before from
    )
    warehouse.events(
        event("e1", "2026-11-03"),
        event("e2", "2026-11-09"),
        event("e3", "2026-11-09"),
        event("e5", "2026-11-01", hour=20),
        event("e6", "2026-11-05"),
        event("e7", "2026-11-04"),
        event("e8", "2026-11-04"),
        event("e10", "2026-11-21"),
        event("e11", "2026-10-02"),
    )

    # What became of the messages (tracking back): e1 opened twice and clicked, e2 delivered and opened, e3 clicked
    # with images blocked (no open seen: the click counts as one), e7 delivered; e5 is held out (nothing sent).
    def outcome(req: InterventionRequest, kind: OutcomeKind, hour: int = 12) -> InterventionOutcome:
        when = req.created_at.replace(hour=hour)
        return InterventionOutcome(
            intervention_id=req.intervention_id, user_id=req.user_id, outcome=kind, at=when, channel=Channel.email
        )

    e1, e2 = request("e1", "2026-11-01", "send", remind, "low"), request("e2", "2026-11-01", "send", remind, "low")
    e3, e4 = request("e3", "2026-11-02", "deferred", remind, "low"), request("e4", "2026-11-02", "send", remind, "low")
    e8 = request("e8", "2026-11-03", "send", reach, "critical")
    warehouse.contract(
        OUTCOMES,
        outcome(e1, OutcomeKind.opened),
        outcome(e1, OutcomeKind.opened, hour=15),
        outcome(e1, OutcomeKind.clicked),
        outcome(e2, OutcomeKind.delivered),
        outcome(e2, OutcomeKind.opened),
        outcome(e3, OutcomeKind.clicked),
        outcome(e4, OutcomeKind.failed),
        outcome(outreach, OutcomeKind.delivered),
        # offers: codes issued for e7 and e8 (e7's twice: one decision), e8's redeemed
        outcome(outreach, OutcomeKind.offer_issued),
        outcome(outreach, OutcomeKind.offer_issued, hour=13),
        outcome(e8, OutcomeKind.offer_issued),
        outcome(e8, OutcomeKind.offer_redeemed, hour=18),
    )
    result = warehouse.query("intervention_effectiveness", **{"from": "2026-11-01", "as_of": "2026-11-22"})
    assert result.columns[-13:] == [
        "treated_return_pct",
        "holdout_return_pct",
        "uplift_pts",
        "ci_low_pts",
        "ci_high_pts",
        "delivered",
        "opened",
        "clicked",
        "open_rate_pct",
        "click_rate_pct",
        "offers_issued",
        "offers_redeemed",
        "redemption_rate_pct",
    ]
    # reminders: treated 2/4, held out 1/2; uplift 0 +- 1.96 * sqrt(.25/4 + .25/2) = 0 +- 84.9 points;
    # opened 3 of 4 treated (e1, e2, e3), clicked 2 (e1, e3), delivered 1 (e2). Outreach: e7 delivered, no opens.
    # Offers: 2 issued to critical decisions, 1 redeemed: 50 %; none for reminders (no rate: NaN, read as None).
    found = rows(result)
    assert [r[:-1] for r in found] == [
        ("human_outreach", "critical", 2, 2, 1, 0, 100.0, 0.0, 100.0, 100.0, 100.0, 1, 0, 0, 0.0, 0.0, 2, 1),
        ("gentle_reminder", "low", 4, 2, 2, 1, 50.0, 50.0, 0.0, -84.9, 84.9, 1, 3, 2, 75.0, 50.0, 0, 0),
    ]
    assert found[0][-1] == 50.0 and found[1][-1] is None  # NaN reads as None


def _prediction_data(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("p1", "2026-11-02", 50.0, hour=8),
        risk("p1", "2026-11-02", 80.0, hour=20),  # the day's last score is the prediction
        risk("p2", "2026-11-02", 60.0),
        risk("p3", "2026-11-02", 60.0),
        risk("p4", "2026-11-02", 20.0),
        risk("p2", "2026-11-09", 10.0),
        risk("p4", "2026-11-09", 90.0),
        risk("p5", "2026-11-09", 30.0),
        risk("p2", "2026-11-20", 50.0),  # horizon not over by as_of
    )
    warehouse.events(
        event("p1", "2026-11-02"),  # the prediction day itself does not count
        event("p2", "2026-11-05"),
        event("p2", "2026-11-12"),
        event("p4", "2026-11-04"),
        event("p3", "2026-11-16"),  # silent through its 7-day horizon, then back: a pause, not a drop-out
        event("p5", "2026-11-10"),
        event("p5", "2026-11-12", "unenrolled"),  # active in the horizon, but unenrolled in it: dropped off
    )


def test_prediction_accuracy_auc_brier_and_calibration_in_the_large(warehouse: Warehouse) -> None:
    _prediction_data(warehouse)
    result = warehouse.query("prediction_accuracy", **{"from": "2026-11-02", "as_of": "2026-11-22"})
    assert result.columns == [
        "week",
        "model_version",
        "predictions",
        "positives",
        "positive_rate",
        "roc_auc",
        "brier",
        "mean_predicted_pct",
        "observed_pct",
    ]
    # Week of Nov 2: p1 (80) dropped off; p2 (60), p3 (60, back on Nov 16) and p4 (20) stayed.
    # AUC: p1 beats all three -> 1. Brier (.04 + .36 + .36 + .04) / 4.
    # Week of Nov 9: p4 (90) and p5 (30, unenrolled) dropped off, p2 (10) came back -> AUC 1,
    # Brier (.01 + .01 + .49) / 3.
    assert rows(result) == [
        ("2026-11-02", "heuristic-1", 4, 1, 0.25, 1.0, 0.2, 55.0, 25.0),
        ("2026-11-09", "heuristic-1", 3, 2, 0.667, 1.0, 0.17, 43.3, 66.7),
    ]


def test_prediction_accuracy_is_split_by_the_model_version_that_scored(warehouse: Warehouse) -> None:
    """A promotion mid-week: each prediction belongs to the version that made the day's last score."""
    _prediction_data(warehouse)
    warehouse.contract(
        RISK, risk("p4", "2026-11-09", 90.0, hour=22).model_copy(update={"model_version": "lightgbm-m2"})
    )
    result = warehouse.query("prediction_accuracy", **{"from": "2026-11-02", "as_of": "2026-11-22"})
    week2 = [(r[1], r[2], r[3]) for r in rows(result) if r[0] == "2026-11-09"]
    # p4 (dropped off) is now lightgbm-m2's only prediction; p2 (stayed) and p5 (dropped) remain the heuristic's.
    assert week2 == [("heuristic-1", 2, 1), ("lightgbm-m2", 1, 1)]


def test_prediction_calibration_per_band(warehouse: Warehouse) -> None:
    _prediction_data(warehouse)
    result = warehouse.query("prediction_calibration", **{"from": "2026-11-02", "as_of": "2026-11-22"})
    assert rows(result) == [
        ("2026-11-02", "20-30", 1, 20.0, 0.0),
        ("2026-11-02", "60-70", 2, 60.0, 0.0),
        ("2026-11-02", "80-90", 1, 80.0, 100.0),
        ("2026-11-09", "10-20", 1, 10.0, 0.0),
        ("2026-11-09", "30-40", 1, 30.0, 100.0),
        ("2026-11-09", "90-100", 1, 90.0, 100.0),
    ]


def test_a_return_after_as_of_is_a_drop_out_until_as_of_reaches_it(warehouse: Warehouse) -> None:
    """Both queries read the view labelled_predictions; what counts as back depends on as_of, not on the view."""
    warehouse.contract(RISK, risk("r1", "2026-11-02", 40.0), risk("r2", "2026-11-02", 40.0))
    warehouse.events(
        event("r1", "2026-10-20"),  # before the prediction: no outcome
        event("r1", "2026-11-20"),  # back after 18 days
        event("r2", "2026-11-04"),
        event("r2", "2026-11-30", "unenrolled"),  # after the 7-day horizon: r2 stayed
    )
    early = warehouse.query("prediction_calibration", **{"from": "2026-11-02", "as_of": "2026-11-15"})
    late = warehouse.query("prediction_calibration", **{"from": "2026-11-02", "as_of": "2026-12-01"})
    assert rows(early) == [("2026-11-02", "40-50", 2, 40.0, 50.0)]
    assert rows(late) == [("2026-11-02", "40-50", 2, 40.0, 0.0)]
    # the view read for fewer columns than it has (18.16 then drops the others: its lambdas must not need them)
    assert warehouse.client.execute("SELECT count() FROM labelled_predictions") == [(2,)]
    assert warehouse.client.execute(
        "SELECT user_id, next_active_on FROM labelled_predictions WHERE unenrolled_within_7d = 0 ORDER BY user_id"
    ) == [("r1", day_number(date(2026, 11, 20))), ("r2", day_number(date(2026, 11, 4)))]


def test_streak_distribution_and_freezes(warehouse: Warehouse) -> None:
    warehouse.contract(
        RISK,
        risk("s1", "2026-11-10", 20.0, current_streak_days=5),
        risk("s1", "2026-11-12", 20.0, current_streak_days=0),  # lost it: bucket 0
        risk("s2", "2026-11-12", 20.0, current_streak_days=8, streak_freezes_held=1, streak_freezes_used=1),
        risk("s3", "2026-11-12", 20.0, current_streak_days=10, streak_freezes_held=2),
        risk("s4", "2026-11-11", 20.0, current_streak_days=120, streak_freezes_held=2, streak_freezes_used=3),
        risk("s5", "2026-11-14", 20.0, current_streak_days=1),
        risk("s5", "2026-11-20", 20.0, current_streak_days=3),  # after as_of
    )
    result = warehouse.query("streak_distribution", as_of="2026-11-15")
    assert rows(result) == [
        ("0", 1, 20.0, 0.0, 0, 0),
        ("1-2", 1, 20.0, 0.0, 0, 0),
        ("7-13", 2, 40.0, 1.5, 1, 1),
        ("100+", 1, 20.0, 2.0, 1, 3),
    ]


def test_daily_signals_keep_the_last_snapshot_of_each_day(warehouse: Warehouse) -> None:
    warehouse.contract(RISK, risk("d1", "2026-11-02", 50.0, hour=8), risk("d1", "2026-11-02", 80.0, hour=20))
    got = warehouse.client.execute(
        f"SELECT day, risk_7d, signals_avg_quiz_score_pct_30d FROM {warehouse.database}.user_daily_signals FINAL"
    )
    assert len(got) == 1 and got[0][:2] == (date(2026, 11, 2), 80.0)
    assert got[0][2] != got[0][2]  # unknown (None) is stored as NaN, not as 0
