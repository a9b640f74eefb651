"""Named analyst queries: header parsing, parameters rendered as typed literals (never raw text), output."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import pytest

from analytics.catalog import QueryError, get, load_all, parse
from analytics.runner import Result, as_csv, as_json, as_text_rows

EXPECTED = {
    "weekly_cohort_retention",
    "engagement_growth",
    "at_risk_now",
    "tier_transitions",
    "intervention_effectiveness",
    "prediction_accuracy",
    "prediction_calibration",
    "streak_distribution",
    "offer_redemption",
    "outreach_sla",
    "xp_distribution",
    "achievement_unlocks",
    "achievement_retention",
    "experiment_readout",
    "bandit_arms",
    "type_choice_returns",
    "student_week_activity",
    "student_course_progress",
    "live_activity",
    "tiers_over_time",
    "at_risk_page",
    "at_risk_count",
    "student_history",
    "student_interventions",
    "delivery_funnel",
}


def test_every_shipped_query_has_a_header_and_described_parameters() -> None:
    queries = load_all()
    assert set(queries) == EXPECTED
    for q in queries.values():
        assert len(q.answers) > 40, q.name
        assert q.body.lstrip().upper().startswith("SELECT"), q.name
        for p in q.params:
            assert p.description and p.default is not None, (q.name, p.name)
        assert "{" not in q.render({}), q.name  # every placeholder filled from its default


def test_values_become_typed_literals() -> None:
    q = get("weekly_cohort_retention")
    sql = q.render({"from": "2026-11-02", "weeks": "3", "cohort_by": "enrolment"})
    assert "toMonday(toDate('2026-11-02'))" in sql
    assert "range(toUInt32(3 + 1))" in sql
    assert "if('enrolment' = 'enrolment'" in sql
    assert "toFloat64(60.5)" in get("at_risk_now").render({"min_risk": "60.5"})
    assert "LIMIT 7" in get("at_risk_now").render({"limit": "7"})


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("weekly_cohort_retention", {"from": "2026-11-02'; DROP TABLE x; --"}, "wants a Date"),
        ("weekly_cohort_retention", {"weeks": "-1"}, "wants a UInt32"),
        ("weekly_cohort_retention", {"weeks": "1; SELECT 1"}, "wants a UInt32"),
        ("weekly_cohort_retention", {"cohort_by": "signup' OR 1=1"}, "must be one of first_activity, enrolment"),
        ("at_risk_now", {"min_risk": "nan'"}, "wants a Float64"),
        ("at_risk_now", {"min_rsk": "50"}, "no parameter min_rsk; its parameters: min_risk, limit"),
    ],
)
def test_bad_values_are_refused_with_the_reason(name: str, params: dict[str, str], message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(")):
        get(name).render(params)


def test_unknown_query_names_the_known_ones() -> None:
    with pytest.raises(
        QueryError, match="no query named 'retention'; known: achievement_retention, achievement_unlocks, at_risk_count"
    ):
        get("retention")


def test_header_mistakes_are_caught() -> None:
    with pytest.raises(QueryError, match="needs one '-- name:' line"):
        parse("SELECT 1")
    with pytest.raises(QueryError, match=r"placeholder \{n:UInt32\} does not match"):
        parse("-- name: q\n-- answers: a\nSELECT {n:UInt32}")
    with pytest.raises(QueryError, match="declared but never used: n"):
        parse("-- name: q\n-- answers: a\n-- param: n UInt32 = 1 | a number\nSELECT 1")
    with pytest.raises(QueryError, match="cannot read parameter line"):
        parse("-- name: q\n-- answers: a\n-- param: n Int8 = 1 | a number\nSELECT {n:Int8}")
    with pytest.raises(QueryError, match="needs --param n=<Date>"):
        parse("-- name: q\n-- answers: a\n-- param: n Date | the day\nSELECT {n:Date}").render({})


def test_answers_may_run_over_several_lines() -> None:
    q = parse("-- name: q\n-- answers: first line\n--   second line\nSELECT 1")
    assert q.answers == "first line second line"


def test_output_formats_turn_dates_into_text_and_nan_into_null() -> None:
    result = Result(
        ["day", "at", "rate", "n"],
        [(date(2026, 11, 2), datetime(2026, 11, 2, 9, tzinfo=UTC), math.nan, 3), (date(2026, 11, 3), None, 0.25, 4)],
    )
    assert as_csv(result) == "day,at,rate,n\n2026-11-02,2026-11-02T09:00:00+00:00,,3\n2026-11-03,,0.25,4\n"
    assert '"rate": null' in as_json(result)
    assert as_text_rows(result)[0] == ["2026-11-02", "2026-11-02T09:00:00+00:00", "-", "3"]
