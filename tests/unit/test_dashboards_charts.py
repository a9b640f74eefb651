"""The SVG charts: named (title, role), every series named in words with its own dash and marker, values escaped;
the retention triangle prints every number."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from dashboards.charts import Series, bar_chart, line_chart, retention_table, tiers_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_tiers_chart_names_every_tier_in_the_legend_and_parses_as_svg() -> None:
    rows = [
        {"day": "2026-11-10", "tier": "high", "students": 3},
        {"day": "2026-11-11", "tier": "high", "students": 5},
        {"day": "2026-11-11", "tier": "critical", "students": 2},
    ]
    svg = ET.fromstring(str(tiers_chart("tiers-chart", rows)))
    assert svg.get("role") == "img" and svg.get("id") == "tiers-chart"
    assert svg.find(f"{SVG}title").text == "Students per risk tier"  # type: ignore[union-attr]
    legend = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert legend == ["critical: 2", "high: 5"]  # severity order; a tier missing on a day counts 0 there
    dashes = {p.get("stroke-dasharray") for p in svg.iter(f"{SVG}path") if p.get("fill") == "none"}
    assert len(dashes) == 2  # told apart without colour


def test_values_are_escaped_and_empty_data_says_so() -> None:
    chart = str(line_chart("c", "<script>", ["a<b"], [Series("x&y", [1.0])]))
    assert "<script>" not in chart and "&lt;script&gt;" in chart and "x&amp;y: 1" in chart
    empty = str(line_chart("e", "Nothing", [], []))
    assert "No data yet" in empty and 'role="img"' in empty
    bars = ET.fromstring(str(bar_chart("b", "Funnel", [("sent", 10.0), ("delivered", 7.0)])))
    assert [t.text for t in bars.iter(f"{SVG}text") if t.get("class") == "value"] == ["10", "7"]


def test_retention_table_prints_each_percentage() -> None:
    rows = [
        {"cohort_week": "2026-11-02", "week_n": 0, "cohort_size": 3, "retention_pct": 100.0},
        {"cohort_week": "2026-11-02", "week_n": 1, "cohort_size": 3, "retention_pct": 33.3},
        {"cohort_week": "2026-11-09", "week_n": 0, "cohort_size": 2, "retention_pct": 100.0},
    ]
    html = str(retention_table("retention-triangle", rows))
    assert re.findall(r">([\d.]+%)<", html) == ["100.0%", "33.3%", "100.0%"]
    assert "<caption>" in html and html.count('<th scope="row">') == 2 and ">-</td>" in html
