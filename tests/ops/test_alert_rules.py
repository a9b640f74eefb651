"""The alert rules and dashboards really work, checked with Prometheus's own tool and the code's own metrics.

- ``promtool check rules`` / ``check config`` accept deploy/prometheus/{alerts,prometheus}.yml;
- ``promtool test rules tests/ops/alerts_test.yml``: every alert fires on synthetic series where it should (exact
  labels and annotations) and stays quiet on a healthy case; the same cases fail against rules that never fire
  or always fire, so they can tell a working rule from a broken one;
- every PromQL expression of every dashboard is parsed by promtool (as recording rules), and every metric, label
  and label value the rules, their unit tests and the dashboards use exists in the code's Prometheus registry;
- no metric label can carry personal data.

promtool comes from Debian's ``prometheus`` package (deploy/install-system-deps.sh). Without it these tests skip,
except under CI, where a missing promtool fails them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

# Every module that defines metrics, so the registry holds all of them.
import desk.metrics
import engage.model_monitor
import models.serving
import sinks.runner
import streams.collector.app
import streams.worker.metrics
from config.settings import Settings
from deploy.process import free_port
from processors.policy import DECISION_OUTCOMES
from schemas.events import Channel
from schemas.interventions import InterventionType, OutcomeKind
from schemas.risk import Trigger
from schemas.signals import Tier
from sinks.positions import SERVICE_NAMES
from sinks.service import serve_metrics

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yml")
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

# Grafana's variables, replaced by what Grafana would put there before promtool parses an expression.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "6h"}
# Labels Prometheus adds to every scraped series, and the bucket label of histograms.
TARGET_LABELS = {"job", "instance"}
# Label values the code can produce, where they are a closed set (a typo in a matcher would match nothing).
KNOWN_VALUES: dict[tuple[str, str], set[str]] = {
    ("engage_collector_events", "outcome"): {"accepted", "rejected", "duplicate"},
    ("engage_collector_requests", "outcome"): {
        "ok",
        "unauthorized",
        "forbidden",
        "payload_too_large",
        "bad_request",
        "unavailable",
    },
    ("engage_intervention_requests", "outcome"): set(DECISION_OUTCOMES),
    ("engage_intervention_requests", "intervention_type"): {t.value for t in InterventionType} | {"none"},
    ("engage_intervention_outcomes", "outcome"): {o.value for o in OutcomeKind},
    ("engage_intervention_outcomes", "channel"): {c.value for c in Channel} | {"none"},
    ("engage_risk_updates", "tier"): set(get_args(Tier)),
    ("engage_risk_updates", "trigger"): set(get_args(Trigger)),
    ("engage_users_by_tier", "tier"): set(get_args(Tier)),
    ("engage_risk_score", "horizon"): {"7d", "30d"},
    ("engage_model_reloads", "outcome"): {"loaded", "failed"},
    ("engage_sink_rows_written", "sink"): set(SERVICE_NAMES),
    ("engage_sink_write_failures", "sink"): set(SERVICE_NAMES),
    ("engage_sink_dead_letters", "sink"): set(SERVICE_NAMES),
    ("engage_desk_requests", "action"): set(desk.metrics.REQUEST_ACTIONS),
    ("engage_desk_api_requests", "outcome"): set(desk.metrics.API_OUTCOMES),
}
# A label with one of these in its name could carry personal data or a per-student value (unbounded too).
PERSONAL = re.compile(r"user|email|student|learner|name|phone|address|session|device|ip$|^ip|_id$|^id$")

METRIC = re.compile(r"\b(engage_[a-z0-9_]+|up)\b(?:\s*\{([^}]*)\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
TEMPLATE_LABEL = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}|\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")


# ------------------------------------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(
            "promtool is missing under CI: deploy/install-system-deps.sh installs it (Debian package prometheus)"
        )
    pytest.skip("promtool is not installed (run deploy/install-system-deps.sh); under CI this test fails instead")


def run(promtool: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside collapsed rows


def dashboard_targets() -> list[tuple[str, str, dict[str, Any]]]:
    """(dashboard file, panel title, target) for every query of every dashboard."""
    return [
        (path.name, panel["title"], target)
        for path in DASHBOARDS
        for panel in dashboard_panels(json.loads(path.read_text()))
        for target in panel.get("targets", [])
    ]


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def registry() -> dict[str, tuple[str, set[str]]]:
    """Every metric family in the registry: name (counters without ``_total``) -> (type, label names)."""
    labels_of: dict[str, set[str]] = {}
    # prometheus_client has no public way to list a labelled metric's label names before it has a child.
    for collector, names in REGISTRY._collector_to_names.items():
        for name in names:
            labels_of[name] = set(getattr(collector, "_labelnames", ()))
    families: dict[str, tuple[str, set[str]]] = {}
    for family in REGISTRY.collect():
        labels = labels_of.get(family.name, set()) | {k for s in family.samples for k in s.labels}
        families[family.name] = (family.type, labels - {"le", "quantile"})
    return families


def exposed_series() -> dict[str, tuple[str, set[str]]]:
    """Series name as Prometheus stores it -> (family name, its labels), with the suffixes each type exposes."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "gauge": ("",),
        "info": ("_info",),
    }
    out: dict[str, tuple[str, set[str]]] = {}
    for family, (kind, labels) in registry().items():
        for suffix in suffixes.get(kind, ("",)):
            out[family + suffix] = (family, labels | ({"le"} if suffix == "_bucket" else set()))
    out["up"] = ("up", set())
    return out


def check_expression(expr: str, where: str, legend: str = "") -> list[str]:
    """Problems with the metrics, labels and label values ``expr`` (and a legend or annotation) names."""
    series = exposed_series()
    problems: list[str] = []
    allowed = set(TARGET_LABELS)
    found = METRIC.findall(expr)
    if not found:
        problems.append(f"{where}: names no engage_ metric (nor up): {expr}")
    for name, _ in found:
        if name in series:
            allowed |= series[name][1]
    for name, selector in found:
        if name not in series:
            problems.append(f"{where}: {name} is not a metric the code exports")
            continue
        family, labels = series[name]
        for label, op, value in MATCHER.findall(selector):
            if label not in labels | TARGET_LABELS:
                problems.append(f"{where}: {name} has no label {label!r} (it has {sorted(labels)})")
            known = KNOWN_VALUES.get((family, label))
            if known is None or op not in ("=", "=~"):
                continue
            values = value.split("|") if op == "=~" else [value]
            problems += [
                f"{where}: {name}{{{label}={v!r}}} matches nothing the code emits ({sorted(known)})"
                for v in values
                if v not in known
            ]
    for group in GROUPING.findall(expr):
        for label in filter(None, (g.strip() for g in group.split(","))):
            if label not in allowed:
                problems.append(f"{where}: groups by {label!r}, which none of its metrics has")
    for a, b in TEMPLATE_LABEL.findall(legend):
        label = a or b
        if label not in allowed | {"alertname", "le"}:
            problems.append(f"{where}: legend/annotation uses label {label!r}, which none of its metrics has")
    return problems


# ------------------------------------------------------------------------------------------------ rules
def test_promtool_accepts_the_alert_rules(promtool: str) -> None:
    result = run(promtool, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_accepts_the_prometheus_config(promtool: str) -> None:
    result = run(promtool, "check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_when_it_should_and_stays_quiet_when_healthy(promtool: str) -> None:
    result = run(promtool, "test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_case_and_a_healthy_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "alerts without a case where they fire"
    assert names - quiet == set(), "alerts without a healthy case"
    assert (firing | quiet) - names == set(), "cases for alerts that do not exist"


def _mutated_rules_run(promtool: str, tmp_path: Path, expr: str) -> set[str]:
    """Run the unit tests against alerts.yml with every alert's expression replaced; the alerts that failed."""
    rules = load_yaml(ALERTS)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["expr"] = expr
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = load_yaml(ALERT_TESTS)
    tests["rule_files"] = [str(tmp_path / "alerts.yml")]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = run(promtool, "test", "rules", tmp_path / "alerts_test.yml")
    assert result.returncode != 0, "the unit tests passed against broken rules"
    return set(re.findall(r"alertname: (\w+)", result.stdout + result.stderr))


def test_the_unit_tests_fail_for_rules_that_never_fire(promtool: str, tmp_path: Path) -> None:
    assert _mutated_rules_run(promtool, tmp_path, "vector(1) == 0") == {rule["alert"] for rule in alert_rules()}


def test_the_unit_tests_fail_for_rules_that_always_fire(promtool: str, tmp_path: Path) -> None:
    assert _mutated_rules_run(promtool, tmp_path, "vector(1)") == {rule["alert"] for rule in alert_rules()}


def test_every_alert_has_a_severity_a_summary_and_a_runbook_naming_engage_commands() -> None:
    for rule in alert_rules():
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), rule["alert"]
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), rule["alert"]
        assert "engage " in annotations.get("runbook", ""), f"{rule['alert']}: runbook names no engage command"


def test_rules_and_their_unit_tests_use_only_metrics_labels_and_values_the_code_exports() -> None:
    problems: list[str] = []
    for rule in alert_rules():
        text = " ".join(str(v) for v in rule.get("annotations", {}).values())
        problems += check_expression(rule["expr"], f"alert {rule['alert']}", text)
    # Series in the unit tests must be real too: a typo repeated in a rule and its test would pass unnoticed.
    for case in load_yaml(ALERT_TESTS)["tests"]:
        for series in case.get("input_series", []):
            problems += check_expression(series["series"], f"test {case['name']!r}")
    assert problems == []


def test_runbooks_name_real_engage_commands() -> None:
    from typer.main import get_command

    from engage.cli import app

    def commands(group: Any, prefix: str) -> set[str]:
        """The runnable commands (leaves: `engage db status`, not the group `engage db`)."""
        subs = getattr(group, "commands", {})
        if not subs:
            return {prefix}
        return set().union(*(commands(sub, f"{prefix} {name}") for name, sub in subs.items()))

    known = commands(get_command(app), "engage")
    assert {"engage infra status", "engage db status", "engage sink", "engage model rollback"} <= known
    for rule in alert_rules():
        for mention in re.findall(r"\bengage(?: [a-z][a-z-]+)+", rule["annotations"]["runbook"]):
            words = mention.split()  # a command, then maybe arguments or prose: some prefix must be a command
            prefixes = {" ".join(words[:n]) for n in range(2, len(words) + 1)}
            assert prefixes & known, f"{rule['alert']}: {mention!r} does not start with an engage command"


# ------------------------------------------------------------------------------------------------ dashboards
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_importable_grafana_json(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["schemaVersion"] >= 36
    assert board["uid"] and board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard_panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dashboard_panels(board):
        assert panel.get("title"), f"panel {panel['id']} has no title"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{panel['title']}: no description"
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']}: empty query"
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    assert len({json.loads(p.read_text())["uid"] for p in DASHBOARDS}) == len(DASHBOARDS)


def test_the_three_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} >= {"pipeline-health.json", "model-health.json", "business.json"}


def test_every_dashboard_expression_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = []
    for i, (name, title, target) in enumerate(dashboard_targets()):
        expr = as_promql(target["expr"])
        assert "$" not in expr, f"{name} / {title}: a Grafana variable the test does not know: {expr}"
        rules.append({"record": f"dashboard:expr_{i}", "expr": expr, "labels": {"panel": f"{name}: {title}"}})
    assert len(rules) > 50
    path = tmp_path / "dashboards_as_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}, sort_keys=False))
    result = run(promtool, "check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_dashboards_use_only_metrics_labels_and_values_the_code_exports() -> None:
    problems: list[str] = []
    for name, title, target in dashboard_targets():
        problems += check_expression(as_promql(target["expr"]), f"{name} / {title}", target.get("legendFormat", ""))
    assert problems == []


def test_the_checker_catches_wrong_names_labels_and_values() -> None:
    assert check_expression("rate(engage_collector_events_total[5m])", "ok") == []
    assert check_expression("rate(engage_collector_event_total[5m])", "x")  # metric typo
    assert check_expression("engage_worker_consumer_lag_seconds_total", "x")  # a gauge has no _total
    assert check_expression('engage_users_by_tier{tier="hihg"}', "x")  # value typo
    assert check_expression('engage_risk_score_bucket{horizon="7"}', "x")  # the monitor's horizon, not the worker's
    assert check_expression("sum by (sink) (engage_worker_consumer_lag_seconds)", "x")  # label it lacks
    assert check_expression("engage_model_serving", "x", "{{version}}")  # legend label it lacks


# ------------------------------------------------------------------------------------------------ wiring
def test_prometheus_scrapes_the_ports_the_engine_serves_metrics_on() -> None:
    from engage.cli import model_monitor

    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alerts.yml"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    default = {name: field.default for name, field in Settings.model_fields.items()}  # not ENGAGE_* overrides
    assert targets == {
        "engage-collector": [f"127.0.0.1:{default['collector_port']}"],
        "engage-worker": [f"127.0.0.1:{default['worker_web_port']}"],
        "engage-sink": [f"127.0.0.1:{default['sink_metrics_port']}"],
        "engage-model-monitor": [f"127.0.0.1:{inspect.signature(model_monitor).parameters['port'].default}"],
        "engage-desk": [f"127.0.0.1:{default['desk_port']}"],
        "engage-notify": [f"127.0.0.1:{default['notify_metrics_port']}"],
        "engage-leaderboards": [f"127.0.0.1:{default['leaderboard_port']}"],
    }
    jobs_in_rules = set(re.findall(r'job="([^"]+)"', ALERTS.read_text()))
    assert jobs_in_rules <= set(targets)


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards() -> None:
    sources = load_yaml(PROVISIONING / "datasources.yml")["datasources"]
    assert [(s["type"], s["url"]) for s in sources] == [("prometheus", "http://127.0.0.1:9090")]
    providers = load_yaml(PROVISIONING / "dashboards.yml")["providers"]
    assert providers[0]["type"] == "file"
    assert providers[0]["options"]["path"].endswith("deploy/grafana/dashboards")


def test_sinks_serve_their_metrics_and_a_busy_port_is_not_fatal() -> None:
    settings = Settings(sink_metrics_port=free_port())
    server = serve_metrics(settings)
    assert server is not None
    try:
        sinks.runner.ROWS_WRITTEN.labels("events")
        text = httpx.get(f"http://127.0.0.1:{settings.sink_metrics_port}/metrics", timeout=5).text
        assert 'engage_sink_rows_written_total{sink="events"}' in text
        assert serve_metrics(settings) is None  # the port is taken now: logged, no exception
    finally:
        server.shutdown()
        server.server_close()
    assert serve_metrics(Settings(sink_metrics_port=0)) is None


class _AcknowledgingProducer:
    in_flight = 0  # nothing waits for Kafka here (the collector's admission reads it)

    async def send_async(
        self, events: Any, dead_letters: Any = (), received_at: Any = None, outcomes: Any = ()
    ) -> None:
        return None


def test_collector_counts_reported_intervention_outcomes_by_outcome_and_channel() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("engage_intervention_outcomes_total", outcome="opened", channel="push")
    before_none = value("engage_intervention_outcomes_total", outcome="sent", channel="none")
    before_rejected = value("engage_collector_rejected_outcomes_total")
    app = streams.collector.app.create_app(Settings(), producer=_AcknowledgingProducer())  # type: ignore[arg-type]
    body = {
        "outcomes": [
            {
                "intervention_id": "i-1",
                "user_id": "u-1",
                "outcome": "opened",
                "at": "2026-01-01T10:00:00Z",
                "channel": "push",
            },
            {"intervention_id": "i-2", "user_id": "u-2", "outcome": "sent", "at": "2026-01-01T10:00:00Z"},
            {"intervention_id": "i-3", "user_id": "u-3", "outcome": "teleported", "at": "2026-01-01T10:00:00Z"},
        ]
    }

    async def post() -> httpx.Response:  # no lifespan: the collector's Kafka start-up is not needed here
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://collector") as client:
            return await client.post(
                "/v1/interventions/outcomes", json=body, headers={"Authorization": "Bearer sk_demo_backend"}
            )

    response = asyncio.run(post())
    assert response.status_code == 200, response.text
    assert value("engage_intervention_outcomes_total", outcome="opened", channel="push") == before + 1
    assert value("engage_intervention_outcomes_total", outcome="sent", channel="none") == before_none + 1
    assert value("engage_collector_rejected_outcomes_total") == before_rejected + 1


# ------------------------------------------------------------------------------------------------ privacy
def test_no_metric_label_can_carry_personal_data() -> None:
    assert registry(), "no metrics registered"
    offending = {
        (family, label) for family, (_, labels) in registry().items() for label in labels if PERSONAL.search(label)
    }
    assert offending == set(), "labels that could carry a user id or personal data"


def test_the_privacy_check_catches_personal_labels() -> None:
    for label in ("user_id", "email", "student", "student_id", "session_id", "username", "ip", "device_id"):
        assert PERSONAL.search(label), label
    for label in ("tier", "outcome", "sink", "horizon", "model_version", "feature", "event_type", "channel"):
        assert not PERSONAL.search(label), label


def test_all_metric_modules_are_loaded() -> None:
    # The imports above exist for their side effect (registering metrics); keep them used.
    modules = (engage.model_monitor, models.serving, sinks.runner, streams.collector.app, streams.worker.metrics)
    assert all(inspect.ismodule(m) for m in modules)
    assert {"engage_model_roc_auc", "engage_model_serving", "engage_sink_rows_written", "engage_risk_score"} <= set(
        registry()
    )
