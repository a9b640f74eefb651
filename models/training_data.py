"""Point-in-time training rows: one per student-day snapshot, features as known that day, labels after it.

Features come only from the day's stored snapshot (``user_daily_signals``: the last re-score of that day, so
everything in it is dated on or before the prediction time). Labels come from what happened after
(``models.labels``). ``audit_point_in_time`` proves the separation: it rebuilds the rows from the data cut
at each cut-off day and any feature whose value changes is reported as leaking future information.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models.features import FEATURES, SIGNAL_COLUMNS
from models.labels import HORIZONS, StudentOutcome, label

EPOCH = date(1970, 1, 1)


def day_number(d: date) -> int:
    """Days since 1970-01-01, as ClickHouse's toUInt32(Date)."""
    return (d - EPOCH).days


@dataclass(frozen=True)
class RowContext:
    """What a feature may look at for one prediction: the day's snapshot, and the student's known data."""

    user_id: str
    day: int
    row: Mapping[str, Any]
    outcome: StudentOutcome  # the student's activity and unenrolments (features must not peek past ``day``)


Extractor = Callable[[RowContext], float]


def _column(name: str) -> Extractor:
    def extract(ctx: RowContext) -> float:
        value = ctx.row[name]
        return math.nan if value is None else float(value)

    return extract


DEFAULT_EXTRACTORS: dict[str, Extractor] = {f: _column(c) for f, c in zip(FEATURES, SIGNAL_COLUMNS, strict=True)}


@dataclass
class Warehouse:
    """The stored history training reads: snapshot rows (``user_daily_signals``) and each student's outcome."""

    rows: list[dict[str, Any]]  # each has user_id, day (date) and the signals_* columns
    outcomes: dict[str, StudentOutcome]
    data_end: int  # day number of the last day with data

    def cut(self, last_day: int) -> Warehouse:
        """Everything as it was known at the end of ``last_day``."""
        return Warehouse(
            [r for r in self.rows if day_number(r["day"]) <= last_day],
            {
                u: StudentOutcome(
                    [d for d in o.active_days if d <= last_day], [d for d in o.unenrol_days if d <= last_day]
                )
                for u, o in self.outcomes.items()
            },
            min(self.data_end, last_day),
        )


@dataclass
class TrainingSet:
    feature_names: list[str]
    user_ids: list[str] = field(default_factory=list)
    days: list[int] = field(default_factory=list)
    features: list[list[float]] = field(default_factory=list)
    rows: list[Mapping[str, Any]] = field(default_factory=list)
    labels: dict[int, list[int | None]] = field(default_factory=lambda: {h: [] for h in HORIZONS})

    def __len__(self) -> int:
        return len(self.days)


def build(warehouse: Warehouse, extractors: Mapping[str, Extractor] | None = None) -> TrainingSet:
    extractors = extractors if extractors is not None else DEFAULT_EXTRACTORS
    out = TrainingSet(list(extractors))
    empty = StudentOutcome()
    for row in sorted(warehouse.rows, key=lambda r: (day_number(r["day"]), r["user_id"])):
        user, day = row["user_id"], day_number(row["day"])
        outcome = warehouse.outcomes.get(user, empty)
        ctx = RowContext(user, day, row, outcome)
        out.user_ids.append(user)
        out.days.append(day)
        out.rows.append(row)
        out.features.append([fn(ctx) for fn in extractors.values()])
        for h in HORIZONS:
            out.labels[h].append(label(outcome, day, h, warehouse.data_end))
    return out


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def audit_point_in_time(
    warehouse: Warehouse, cutoffs: Iterable[int], extractors: Mapping[str, Extractor] | None = None
) -> list[str]:
    """Names of features whose value for a prediction on day d changes when the data after d is removed.

    A feature that only uses what was known on its day cannot change; one that peeks into the future does.
    """
    full = build(warehouse, extractors)
    by_key = {(u, d): f for u, d, f in zip(full.user_ids, full.days, full.features, strict=True)}
    leaking: set[str] = set()
    for cutoff in cutoffs:
        cut = build(warehouse.cut(cutoff), extractors)
        for u, d, f in zip(cut.user_ids, cut.days, cut.features, strict=True):
            if d != cutoff:
                continue
            for name, a, b in zip(cut.feature_names, f, by_key[(u, d)], strict=True):
                if not _same(a, b):
                    leaking.add(name)
    return sorted(leaking)


def load_warehouse(
    client: Any,
    data_end: date | None = None,
    user_prefix: str | tuple[str, ...] = "",
    since: date | None = None,
    days: Iterable[date] | None = None,
) -> Warehouse:
    """Read the snapshots and outcomes from ClickHouse (``client`` has the database selected).

    ``user_prefix``: only students whose id starts with it (or with one of them); ``since``: only snapshots
    from that day on; ``days``: only snapshots of those days (outcomes are always read whole: labels need
    everything after a row's day). Snapshots are read one month (one partition) at a time: deduplicating a
    large table (``FINAL``) in one query needs more memory than a server may give a query.
    """
    prefixes = (user_prefix,) if isinstance(user_prefix, str) else user_prefix
    prefixes = tuple(p for p in prefixes if p)
    params: dict[str, str | date] = {f"prefix{i}": p for i, p in enumerate(prefixes)}  # the driver escapes them
    starts = [f"startsWith(user_id, %(prefix{i})s)" for i in range(len(prefixes))]
    by_user = "(" + " OR ".join(starts) + ")" if starts else ""
    conditions = [by_user] if by_user else []
    if since is not None:
        params["since"] = since
        conditions.append("day >= toDate(%(since)s)")
    if days is not None:
        wanted = sorted(set(days))
        params.update({f"day{i}": d for i, d in enumerate(wanted)})
        listed = ", ".join(f"toDate(%(day{i})s)" for i in range(len(wanted)))
        conditions.append(f"day IN ({listed})" if listed else "0")
    columns = ["user_id", "day", "as_of", "risk_7d", "risk_30d", "model_version", *(
        f"signals_{n}" for n in ("user_id", "as_of", "timezone", "first_seen", "last_event_time", "schema_version")
    ), *SIGNAL_COLUMNS]  # fmt: skip
    rows: list[dict[str, Any]] = []
    months = client.execute(
        "SELECT DISTINCT toYYYYMM(day) AS month FROM user_daily_signals "
        f"{'WHERE ' + ' AND '.join(conditions) if conditions else ''} ORDER BY month",
        params,
    )
    for (month,) in months:
        in_month = " AND ".join([*conditions, f"toYYYYMM(day) = {int(month)}"])
        query = f"SELECT {', '.join(columns)} FROM user_daily_signals FINAL WHERE {in_month}"
        data, types = client.execute(query, params, with_column_types=True)
        names = [n for n, _ in types]
        rows.extend(dict(zip(names, r, strict=True)) for r in data)
    outcomes: dict[str, StudentOutcome] = {}
    active = client.execute(
        "SELECT user_id, arraySort(groupArray(toUInt32(day))) FROM (SELECT user_id, day FROM user_daily_activity "
        f"{'WHERE ' + by_user if by_user else ''} GROUP BY user_id, day HAVING maxMerge(active) = 1) GROUP BY user_id",
        params,
    )
    for user, active_days in active:
        outcomes.setdefault(user, StudentOutcome()).active_days = [int(d) for d in active_days]
    unenrolled = client.execute(
        "SELECT user_id, arraySort(groupArray(toUInt32(toDate(event_time)))) FROM behavior_events FINAL "
        f"WHERE event_type = 'unenrolled' {'AND ' + by_user if by_user else ''} GROUP BY user_id",
        params,
    )
    for user, unenrol_days in unenrolled:
        outcomes.setdefault(user, StudentOutcome()).unenrol_days = [int(d) for d in unenrol_days]
    if data_end is None:
        last = client.execute("SELECT max(day) FROM user_daily_activity")[0][0]
        end = day_number(last) if last else 0
    else:
        end = day_number(data_end)
    return Warehouse(rows, outcomes, end)


def labelled(training: TrainingSet, horizon: int, indices: Sequence[int] | None = None) -> list[int]:
    """Indices of rows whose label for ``horizon`` exists (the horizon is over)."""
    pool = range(len(training)) if indices is None else indices
    return [i for i in pool if training.labels[horizon][i] is not None]
