"""The demo's last part: what an analyst gets from ClickHouse, through the same named queries as `engage query`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from analytics.runner import Result, run
from config.settings import Settings
from sinks.clickhouse.client import connect


def _table(title: str, result: Result, columns: list[str], headers: list[str] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    for header in headers or columns:
        table.add_column(header, justify="right")
    for record in result.records():
        table.add_row(*(_cell(record[c]) for c in columns))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def show_analytics(settings: Settings, console: Console) -> None:
    client = connect(settings, settings.clickhouse_database)
    end: date = client.execute("SELECT max(day) FROM user_daily_activity")[0][0]
    console.rule("[bold]What analysts get from ClickHouse (engage query NAME)")
    growth = run(client, "engagement_growth", {"from": (end - timedelta(days=6)).isoformat(), "to": end.isoformat()})
    console.print(
        _table(
            "engagement_growth: the last 7 days",
            growth,
            ["day", "dau", "wau", "mau", "stickiness", "new_students", "current_students", "reactivated",
             "resurrected", "at_risk_wau"],
            ["day", "DAU", "WAU", "MAU", "DAU/MAU", "new", "current", "reactivated", "resurrected", "at risk"],
        )
    )  # fmt: skip

    retention = run(
        client,
        "weekly_cohort_retention",
        {"from": (end - timedelta(days=27)).isoformat(), "to": end.isoformat(), "weeks": "3", "as_of": end.isoformat()},
    )
    pivot: dict[str, dict[int, float]] = {}
    sizes: dict[str, int] = {}
    for r in retention.records():
        pivot.setdefault(r["cohort_week"], {})[r["week_n"]] = r["retention_pct"]
        sizes[r["cohort_week"]] = r["cohort_size"]
    table = Table(
        title="weekly_cohort_retention: % of each first-activity cohort active in week N", title_justify="left"
    )
    for header in ("cohort week", "students", "week 0", "week 1", "week 2", "week 3"):
        table.add_column(header, justify="right")
    for week, by_n in pivot.items():
        table.add_row(week, str(sizes[week]), *(f"{by_n[n]:g}%" if n in by_n else "" for n in range(4)))
    console.print(table)

    effect = run(
        client, "intervention_effectiveness", {"from": (end - timedelta(days=40)).isoformat(), "as_of": end.isoformat()}
    )
    console.print(
        _table(
            "intervention_effectiveness: back within 7 days, treated vs held out (percentage points, 95% CI)",
            effect,
            ["intervention_type", "tier", "treated", "treated_return_pct", "holdout", "holdout_return_pct",
             "uplift_pts", "ci_low_pts", "ci_high_pts"],
            ["type", "tier", "treated", "% back", "held out", "% back", "uplift", "CI low", "CI high"],
        )
    )  # fmt: skip

    accuracy = run(
        client, "prediction_accuracy", {"from": (end - timedelta(days=40)).isoformat(), "as_of": end.isoformat()}
    )
    console.print(
        _table(
            "prediction_accuracy: 7-day risk against who was inactive the next 7 days",
            accuracy,
            ["week", "model_version", "predictions", "positive_rate", "roc_auc", "brier", "mean_predicted_pct",
             "observed_pct"],
            ["week", "model", "predictions", "drop-off rate", "ROC AUC", "Brier", "mean predicted %", "observed %"],
        )
    )  # fmt: skip
    console.print(
        "  The heuristic's scores are not probabilities (calibration comes with the LightGBM model): "
        "compare the last two columns."
    )
