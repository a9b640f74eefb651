"""deploy/docker-compose.yml is not run here (no Docker engine), so what can be checked without running it is
checked: every long-running process kind of the engine is a service, Prometheus scrapes each of them by service
name on its settings' port, and Grafana gets the shipped dashboards and a data source pointing at that Prometheus."""

from __future__ import annotations

from typing import Any

import yaml

from config.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def _commands() -> dict[str, str]:
    return {name: " ".join(svc.get("command", [])) for name, svc in SERVICES.items()}


def test_every_process_kind_of_the_engine_runs() -> None:
    commands = set(_commands().values())
    for kind in ("engage collector", "engage worker", "engage sink all", "engage notify", "engage desk serve",
                 "engage leaderboards serve", "engage dashboards serve", "engage model monitor --serve"):  # fmt: skip
        assert any(c == kind or c.startswith(kind + " ") for c in commands), f"no service runs `{kind}`"
    assert {"kafka", "clickhouse", "prometheus", "grafana"} <= set(SERVICES)


def test_prometheus_scrapes_each_engine_service_by_name_on_its_settings_port() -> None:
    s = Settings()
    ports = {"collector": 8080, "worker": s.worker_web_port, "sinks": s.sink_metrics_port, "model-monitor": 16070,
             "desk": s.desk_port, "leaderboards": s.leaderboard_port, "notify": s.notify_metrics_port}  # fmt: skip
    config = yaml.safe_load((DEPLOY / "prometheus" / "compose.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{name}:{port}" for name, port in ports.items()}
    assert set(ports) <= set(SERVICES), "a scraped name that is not a service"
    assert "--port 8080" in _commands()["collector"] and "--serve" in _commands()["model-monitor"]
    assert config["rule_files"] == ["alerts.yml"] and (DEPLOY / "prometheus" / "alerts.yml").exists()
    assert "./prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]


def test_grafana_gets_the_shipped_dashboards_and_the_compose_prometheus() -> None:
    grafana = SERVICES["grafana"]
    volumes = grafana["volumes"]
    repo = grafana["environment"]["ENGAGE_REPO"]
    assert f"./grafana/dashboards:{repo}/deploy/grafana/dashboards:ro" in volumes
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "${ENGAGE_REPO}/deploy/grafana/dashboards"
    assert list((DEPLOY / "grafana" / "dashboards").glob("*.json")), "no dashboards shipped"
    datasource_file = next(v.split(":")[0] for v in volumes if "datasources" in v.split(":")[1])
    datasources = yaml.safe_load((DEPLOY / datasource_file.removeprefix("./")).read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"
