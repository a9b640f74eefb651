"""`engage model monitor`: accuracy of matured predictions and feature drift, as Prometheus gauges.

Reads ClickHouse (the daily snapshots with the score each carried, and what happened afterwards) and the
promoted model's training reference. Run once (a table) or as a small service that re-measures every few
minutes and serves ``/metrics`` on loopback for Prometheus; ``deploy/prometheus/alerts.yml`` alerts on it.
"""

from __future__ import annotations

import time
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import Gauge, start_http_server

from config.settings import Settings
from models.monitoring import MonitorReport, measure_with
from models.registry import ModelRegistry
from sinks.clickhouse.client import check_connection, connect

AUC = Gauge("engage_model_roc_auc", "ROC AUC of matured predictions", ["horizon", "model_version"])
ECE = Gauge(
    "engage_model_calibration_error", "Expected calibration error of matured predictions", ["horizon", "model_version"]
)
MATURED = Gauge("engage_model_matured_predictions", "Predictions judged", ["horizon", "model_version"])
PSI = Gauge("engage_feature_psi", "Population stability index of a feature, recent week vs training", ["feature"])
PSI_MAX = Gauge("engage_feature_psi_max", "The largest feature PSI (drift of the served model's inputs)")
LAST_RUN = Gauge("engage_model_monitor_last_run_timestamp_seconds", "When the monitor last measured")


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


def publish(report: MonitorReport) -> None:
    for (horizon, version), m in report.accuracy.items():
        AUC.labels(str(horizon), version).set(m["roc_auc"])
        ECE.labels(str(horizon), version).set(m["ece"])
        MATURED.labels(str(horizon), version).set(m["n"])
    for feature, value in report.psi.items():
        PSI.labels(feature).set(value)
    PSI_MAX.set(max(report.psi.values(), default=0.0))
    LAST_RUN.set(time.time())


def serve_metrics(settings: Settings, port: int) -> WSGIServer:
    """The monitor's gauges for Prometheus on ``bind_host``:``port``, served from a daemon thread."""
    server, _thread = start_http_server(port, addr=settings.bind_host)
    return server


def serve(settings: Settings, port: int, interval: float) -> None:  # pragma: no cover - a loop around measure
    check_connection(settings)  # wrong ClickHouse credentials: a clear error now
    serve_metrics(settings, port)
    while True:
        publish(measure(settings))
        time.sleep(interval)


def summary_rows(report: MonitorReport) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for (horizon, version), m in sorted(report.accuracy.items()):
        rows.append([f"{horizon} d", version, f"{int(m['n']):,}", f"{m['roc_auc']:.3f}", f"{m['ece']:.3f}"])
    return rows
