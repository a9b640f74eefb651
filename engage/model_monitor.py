"""`engage model monitor`: accuracy of matured predictions and feature drift, as Prometheus gauges.

Reads ClickHouse (the daily snapshots with the score each carried, and what happened afterwards) and the
promoted model's training reference. Run once (a table) or as a small service that re-measures every few
minutes and serves ``/metrics`` on loopback for Prometheus; ``deploy/prometheus/alerts.yml`` alerts on it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
from prometheus_client import Gauge, start_http_server

from config.settings import Settings
from models.features import FEATURES, row_vector
from models.labels import StudentOutcome, label
from models.metrics import calibration_table, expected_calibration_error, roc_auc
from models.monitoring import feature_psi
from models.registry import ModelRegistry
from models.training_data import EPOCH, day_number, load_warehouse
from sinks.clickhouse.client import connect

AUC = Gauge("engage_model_roc_auc", "ROC AUC of matured predictions", ["horizon", "model_version"])
ECE = Gauge(
    "engage_model_calibration_error", "Expected calibration error of matured predictions", ["horizon", "model_version"]
)
MATURED = Gauge("engage_model_matured_predictions", "Predictions judged", ["horizon", "model_version"])
PSI = Gauge("engage_feature_psi", "Population stability index of a feature, recent week vs training", ["feature"])
PSI_MAX = Gauge("engage_feature_psi_max", "The largest feature PSI (drift of the served model's inputs)")
NOTHING = StudentOutcome()
LAST_RUN = Gauge("engage_model_monitor_last_run_timestamp_seconds", "When the monitor last measured")


@dataclass
class MonitorReport:
    data_end: date | None = None
    accuracy: dict[tuple[int, str], dict[str, float]] = field(default_factory=dict)
    psi: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None


def measure(settings: Settings, window_days: int = 30) -> MonitorReport:
    report = MonitorReport()
    found = connect(settings).execute(
        f"SELECT count() FROM system.tables WHERE database = '{settings.clickhouse_database}' "
        "AND name = 'user_daily_activity'"
    )[0][0]
    if not found:
        return report  # nothing stored yet (engage db migrate, then sinks)
    return measure_with(
        connect(settings, settings.clickhouse_database), ModelRegistry(settings.model_registry), window_days
    )


def measure_with(client: Any, registry: ModelRegistry, window_days: int = 30) -> MonitorReport:
    """``client`` has the engine's database selected (clickhouse-driver, or chdb in tests)."""
    report = MonitorReport()
    last = client.execute("SELECT max(day) FROM user_daily_activity")[0][0]
    if not last or last <= EPOCH:
        return report
    report.data_end = last
    since = last - timedelta(days=window_days + 30)
    warehouse = load_warehouse(client, since=since)
    end = day_number(last)
    for horizon in (7, 30):
        scores: dict[str, list[float]] = defaultdict(list)
        labels: dict[str, list[int]] = defaultdict(list)
        for row in warehouse.rows:
            day = day_number(row["day"])
            if not end - horizon - window_days <= day <= end - horizon:
                continue
            # no activity stored at all is an outcome too: nothing came after the prediction
            y = label(warehouse.outcomes.get(row["user_id"], NOTHING), day, horizon, end)
            if y is None:
                continue
            scores[row["model_version"]].append(row["risk_7d" if horizon == 7 else "risk_30d"] / 100)
            labels[row["model_version"]].append(y)
        for version, p in scores.items():
            y_arr = np.asarray(labels[version])
            report.accuracy[(horizon, version)] = {
                "roc_auc": roc_auc(p, y_arr),
                "ece": expected_calibration_error(calibration_table(p, y_arr)),
                "n": float(len(p)),
            }
    entry = registry.promoted()
    if entry is not None and "drift_reference" in entry.metadata:
        report.model_version = f"lightgbm-{entry.version}"
        recent = [r for r in warehouse.rows if day_number(r["day"]) > end - 7]
        if recent:
            matrix = np.asarray([row_vector(r) for r in recent], dtype=float)
            report.psi = feature_psi(entry.metadata["drift_reference"], matrix, list(FEATURES))
    return report


def publish(report: MonitorReport) -> None:
    for (horizon, version), m in report.accuracy.items():
        AUC.labels(str(horizon), version).set(m["roc_auc"])
        ECE.labels(str(horizon), version).set(m["ece"])
        MATURED.labels(str(horizon), version).set(m["n"])
    for feature, value in report.psi.items():
        PSI.labels(feature).set(value)
    PSI_MAX.set(max(report.psi.values(), default=0.0))
    LAST_RUN.set(time.time())


def serve(settings: Settings, port: int, interval: float) -> None:  # pragma: no cover - a loop around measure
    start_http_server(port, addr="127.0.0.1")
    while True:
        publish(measure(settings))
        time.sleep(interval)


def summary_rows(report: MonitorReport) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for (horizon, version), m in sorted(report.accuracy.items()):
        rows.append([f"{horizon} d", version, f"{int(m['n']):,}", f"{m['roc_auc']:.3f}", f"{m['ece']:.3f}"])
    return rows
