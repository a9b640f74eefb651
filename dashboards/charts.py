"""Charts as inline SVG (and the retention triangle as an HTML table), made by pure functions: data in, markup out.

Every chart names what it shows in a ``<title>`` and has ``role="img"``; every series is named in a legend in text,
drawn with its own dash pattern and marker as well as its colour, and the last value is printed beside it, so colour
never carries meaning alone. Values are escaped; the result is ``Markup`` for the templates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# Okabe-Ito: told apart by most people with a colour vision deficiency; dashes and markers tell them apart anyway.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "10 4", "4 4")
MARKERS = ("circle", "square", "triangle", "diamond", "cross", "circle", "square")
TIER_ORDER = ("critical", "high", "medium", "low", "minimal")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.1f}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _marker(kind: str, x: float, y: float, colour: str) -> str:
    if kind == "square":
        return f'<rect x="{x - 3:.1f}" y="{y - 3:.1f}" width="6" height="6" fill="{colour}"/>'
    if kind == "triangle":
        return f'<path d="M{x:.1f} {y - 4:.1f} L{x + 4:.1f} {y + 3:.1f} L{x - 4:.1f} {y + 3:.1f} Z" fill="{colour}"/>'
    if kind == "diamond":
        points = f"M{x:.1f} {y - 4:.1f} L{x + 4:.1f} {y:.1f} L{x:.1f} {y + 4:.1f} L{x - 4:.1f} {y:.1f} Z"
        return f'<path d="{points}" fill="{colour}"/>'
    if kind == "cross":
        return (
            f'<path d="M{x - 3:.1f} {y - 3:.1f} L{x + 3:.1f} {y + 3:.1f} M{x + 3:.1f} {y - 3:.1f} '
            f'L{x - 3:.1f} {y + 3:.1f}" stroke="{colour}" stroke-width="2"/>'
        )
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'


def _open(element_id: str, title: str, desc: str, width: int, height: int) -> str:
    eid = escape(element_id)
    return (
        f'<svg id="{eid}" class="chart" role="img" aria-labelledby="{eid}-title {eid}-desc" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{eid}-title">{escape(title)}</title><desc id="{eid}-desc">{escape(desc)}</desc>'
    )


def _empty(element_id: str, title: str, width: int, height: int) -> Markup:
    return Markup(
        _open(element_id, title, "No data yet.", width, height)
        + f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" class="chart-empty">No data yet</text>'
        "</svg>"
    )


def line_chart(
    element_id: str,
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str = "",
    y_max: float | None = None,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """Several lines over the same x labels (e.g. days); a missing value (None) breaks the line there."""
    values = [v for s in series for v in s.values if v is not None]
    if not x_labels or not values:
        return _empty(element_id, title, width, height)
    left, right, top, bottom = 56, 170, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = y_max if y_max is not None else _nice_max(max(values))
    n = len(x_labels)

    def x_at(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y_at(v: float) -> float:
        return top + plot_h - plot_h * min(max(v, 0.0), top_value) / top_value

    last = ", ".join(f"{s.name} {_num(s.values[-1])}" for s in series if s.values and s.values[-1] is not None)
    parts = [
        _open(
            element_id,
            title,
            f"{len(series)} series over {n} points ({x_labels[0]} to {x_labels[-1]}); latest: {last or 'none'}.",
            width,
            height,
        )
    ]
    for k in range(5):  # grid and y axis labels
        tick = top_value * k / 4
        y = y_at(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_num(tick)}</text>')
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        parts.append(
            f'<text x="{x_at(i):.1f}" y="{top + plot_h + 18}" text-anchor="middle" class="tick">'
            f"{escape(x_labels[i])}</text>"
        )
    if y_label:
        parts.append(
            f'<text x="14" y="{top + plot_h / 2:.0f}" transform="rotate(-90 14 {top + plot_h / 2:.0f})" '
            f'text-anchor="middle" class="axis-label">{escape(y_label)}</text>'
        )
    for idx, s in enumerate(series):
        colour, dash, marker = PALETTE[idx % len(PALETTE)], DASHES[idx % len(DASHES)], MARKERS[idx % len(MARKERS)]
        path, pen_down = [], False
        for i, v in enumerate(s.values[:n]):
            if v is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x_at(i):.1f} {y_at(v):.1f}")
            pen_down = True
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g class="series" data-series="{escape(s.name)}">')
        parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        parts.extend(_marker(marker, x_at(i), y_at(v), colour) for i, v in enumerate(s.values[:n]) if v is not None)
        parts.append("</g>")
        ly = top + 14 + idx * 20  # legend: the name in words, the dash, the marker, the latest value
        lx = left + plot_w + 12
        parts.append(
            f'<line x1="{lx}" x2="{lx + 24}" y1="{ly - 4}" y2="{ly - 4}" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/>'
        )
        parts.append(_marker(marker, lx + 12, ly - 4, colour))
        newest = [v for v in s.values if v is not None]
        label = f"{s.name}: {_num(newest[-1])}" if newest else s.name
        parts.append(f'<text x="{lx + 30}" y="{ly}" class="legend">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def tiers_chart(element_id: str, rows: Sequence[Mapping[str, object]], title: str = "Students per risk tier") -> Markup:
    """``tiers_over_time`` rows (day, tier, students) as one line per tier, tiers in their order of severity."""
    days = sorted({str(r["day"]) for r in rows})
    counts = {(str(r["day"]), str(r["tier"])): float(str(r["students"])) for r in rows}
    tiers = [t for t in TIER_ORDER if any(k[1] == t for k in counts)]
    series = [Series(t, [counts.get((d, t), 0.0) for d in days]) for t in tiers]
    return line_chart(element_id, title, [d[5:] for d in days], series, y_label="students")


def bar_chart(
    element_id: str, title: str, bars: Sequence[tuple[str, float]], *, unit: str = "", width: int = 720
) -> Markup:
    """Horizontal bars, each labelled with its name and value in text."""
    bar_h, gap, left, right = 22, 8, 200, 90
    height = max(60, len(bars) * (bar_h + gap) + 20)
    if not bars:
        return _empty(element_id, title, width, 60)
    top_value = _nice_max(max((v for _, v in bars), default=0.0))
    listing = "; ".join(f"{name} {_num(v)}{unit}" for name, v in bars)
    parts = [_open(element_id, title, listing, width, height)]
    for i, (name, value) in enumerate(bars):
        y = 10 + i * (bar_h + gap)
        w = (width - left - right) * max(value, 0.0) / top_value
        parts.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" class="tick">{escape(name)}</text>')
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{PALETTE[0]}"/>')
        parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 15}" class="value">{_num(value)}{escape(unit)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def retention_table(element_id: str, rows: Sequence[Mapping[str, object]]) -> Markup:
    """``weekly_cohort_retention`` rows as the triangle: a row per cohort week, a column per week after, each cell
    the percentage in figures, shaded by it (the shade only repeats the printed number)."""
    if not rows:
        return Markup(f'<p id="{escape(element_id)}" class="empty">No cohort has a finished week yet.</p>')
    weeks = sorted({int(str(r["week_n"])) for r in rows})
    cohorts: dict[str, dict[int, float]] = {}
    sizes: dict[str, int] = {}
    for r in rows:
        week = str(r["cohort_week"])
        cohorts.setdefault(week, {})[int(str(r["week_n"]))] = float(str(r["retention_pct"]))
        sizes[week] = int(str(r["cohort_size"]))
    head = "".join(f'<th scope="col">week {w}</th>' for w in weeks)
    body = []
    for week in sorted(cohorts):
        cells = []
        for w in weeks:
            pct = cohorts[week].get(w)
            if pct is None:
                cells.append('<td class="na">-</td>')
            else:
                cells.append(f'<td style="--shade: {pct / 100:.2f}" data-value="{pct}">{pct:.1f}%</td>')
        body.append(f'<tr><th scope="row">{escape(week)}</th><td>{sizes[week]:,}</td>{"".join(cells)}</tr>')
    return Markup(
        f'<table id="{escape(element_id)}" class="retention"><caption>Weekly cohort retention: share of each cohort '
        f'active N weeks after its first week</caption><thead><tr><th scope="col">cohort week</th>'
        f'<th scope="col">students</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )
