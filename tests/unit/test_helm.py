"""deploy/helm/engage is not installed here (no Kubernetes cluster), so what the real helm can check without one is
checked: `helm lint --strict`, and the objects `helm template` renders with the default values and with an override
(three workers, replication 3 / min ISR 2, another Secret): every container has probes on an endpoint its process
serves and resources, the worker is a StatefulSet with its state on a claim and advertises its own pod address, no
secret setting is a plain value, every ENGAGE_* variable is a setting, and every process kind of
deploy/docker-compose.yml runs. helm is built by deploy/install-system-deps.sh into .cache/bin (`make test` runs it)."""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from config.settings import PROJECT_ROOT, Settings

CHART = PROJECT_ROOT / "deploy" / "helm" / "engage"
HELM = PROJECT_ROOT / ".cache" / "bin" / "helm"
COMPOSE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "deploy" / "docker-compose.yml").read_text())
SECRET_WORDS = re.compile(r"PASSWORD|SECRET|KEY|TOKEN")
WORKLOADS = ("Deployment", "StatefulSet")

OVERRIDE: dict[str, Any] = {
    "kafka": {
        "bootstrapServers": ["kafka-0.kafka:9092", "kafka-1.kafka:9092", "kafka-2.kafka:9092"],
        "replicationFactor": 3,
        "minInsyncReplicas": 2,
        "partitions": 12,
        "securityProtocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-256", "username": "engage"},
        "caConfigMap": {"name": "kafka-ca"},
    },
    "worker": {"replicas": 3, "advertise": "ip"},
    "secrets": {"existingSecret": "prod-engage", "extraEnv": {"ENGAGE_SMTP_USERNAME": "smtp-user"}},
    "clickhouse": {"secure": True, "port": 9440, "caConfigMap": {"name": "clickhouse-ca"}},
    "shared": {"existingClaim": "engage-shared"},
    "env": {"ENGAGE_NOTIFY_PLATFORM_URL": "https://app.example"},
    "dashboards": {"replicas": 2},
}
CASES = {"defaults": {}, "override": OVERRIDE}

# Per compose service: the paths its probes ask (liveness, readiness) and the file that serves them.
PROBES = {
    "collector": ("/healthz", "/readyz", "streams/collector/app.py"),
    "worker": ("/healthz", "/healthz", "streams/worker/api.py"),
    "desk": ("/healthz", "/healthz", "desk/api.py"),
    "leaderboards": ("/healthz", "/readyz", "leaderboards/api.py"),
    "dashboards": ("/healthz", "/healthz", "dashboards/app.py"),
    # no health endpoint: prometheus_client's /metrics server (it answers every path)
    "sinks": ("/metrics", "/metrics", "sinks/service.py"),
    "notify": ("/metrics", "/metrics", "notifications/service.py"),
    "model-monitor": ("/metrics", "/metrics", "engage/model_monitor.py"),
}


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM.relative_to(PROJECT_ROOT)} is missing: run deploy/install-system-deps.sh (make test does)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)


def _with_values(values: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as file:
        yaml.safe_dump(values, file)
        file.flush()
        return _helm(*args, str(CHART), "--values", file.name)


@functools.cache
def _rendered(values_yaml: str) -> list[dict[str, Any]]:
    result = _with_values(yaml.safe_load(values_yaml), "template", "engage", "--namespace", "learning")
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render(case: str) -> list[dict[str, Any]]:
    return _rendered(yaml.safe_dump(CASES[case]))


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Deployments and StatefulSets by their component label (the compose service's name)."""
    found = [d for d in docs if d["kind"] in WORKLOADS]
    by_component = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in found}
    assert len(by_component) == len(found), "two workloads for one component"
    return by_component


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def plain_env(c: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def engine_processes() -> dict[str, str]:
    """The compose services built from the engine's image, and what they run (without --host/--port and values)."""
    kinds: dict[str, str] = {}
    for name, svc in COMPOSE["services"].items():
        if "build" in svc:
            command = re.sub(r" --(host|port) \S+", "", " ".join(svc["command"]))
            kinds[name] = command
    return kinds


@pytest.mark.parametrize("case", CASES)
def test_lint_passes_strict(case: str) -> None:
    result = _with_values(CASES[case], "lint", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_process_kind_of_compose_has_a_workload_running_it() -> None:
    running = workloads(render("defaults"))
    kinds = engine_processes()
    assert set(kinds) == set(PROBES), "a compose service the chart (and this test) does not know"
    for name, kind in kinds.items():
        assert name in running, f"no workload for compose service {name!r}"
        command = " ".join(container(running[name])["command"])
        assert command == kind or command.startswith(kind + " "), f"{name} runs {command!r}, not {kind!r}"
    assert set(running) == set(kinds)


@pytest.mark.parametrize("case", CASES)
def test_every_container_has_probes_and_resources(case: str) -> None:
    for name, workload in workloads(render(case)).items():
        c = container(workload)
        for probe in ("livenessProbe", "readinessProbe"):
            assert probe in c, f"{name}: no {probe}"
            assert {"httpGet", "tcpSocket", "exec", "grpc"} & set(c[probe]), f"{name}: {probe} checks nothing"
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(bound, {})), f"{name}: no {bound}"


def test_probes_ask_endpoints_each_process_serves_on_its_port() -> None:
    running = workloads(render("defaults"))
    for name, (liveness, readiness, source) in PROBES.items():
        c = container(running[name])
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (("livenessProbe", liveness), ("readinessProbe", readiness)):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{name}: {probe} asks {get['path']}, not {path}"
            assert get["port"] in ports, f"{name}: {probe} on a port the container does not name"
        text = (PROJECT_ROOT / source).read_text()
        if liveness == "/metrics":
            assert "start_http_server(" in text, f"{source} no longer serves /metrics with prometheus_client"
        else:
            for served in {liveness, readiness}:
                assert f'"{served}"' in text, f"{source} does not serve {served}"
    for name, workload in running.items():  # Prometheus' annotations name a port serving /metrics
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        serves_metrics = '"/metrics"' in (PROJECT_ROOT / PROBES[name][2]).read_text() or PROBES[name][0] == "/metrics"
        assert ("prometheus.io/scrape" in annotations) == serves_metrics, name
        if serves_metrics:
            numbers = [p["containerPort"] for p in container(workload)["ports"]]
            assert int(annotations["prometheus.io/port"]) in numbers and annotations["prometheus.io/path"] == "/metrics"
    env = {name: plain_env(container(w)) for name, w in running.items()}
    defaults = {name: field.default for name, field in Settings.model_fields.items()}
    assert container(running["sinks"])["ports"][0]["containerPort"] == int(env["sinks"]["ENGAGE_SINK_METRICS_PORT"])
    assert container(running["notify"])["ports"][0]["containerPort"] == int(env["notify"]["ENGAGE_NOTIFY_METRICS_PORT"])
    assert env["sinks"]["ENGAGE_SINK_METRICS_PORT"] == str(defaults["sink_metrics_port"])
    assert env["notify"]["ENGAGE_NOTIFY_METRICS_PORT"] == str(defaults["notify_metrics_port"])
    monitor = container(running["model-monitor"])
    assert monitor["command"][monitor["command"].index("--port") + 1] == str(monitor["ports"][0]["containerPort"])


@pytest.mark.parametrize("case", CASES)
def test_worker_is_a_statefulset_with_its_state_on_a_claim_per_pod(case: str) -> None:
    docs = render(case)
    worker = workloads(docs)["worker"]
    assert worker["kind"] == "StatefulSet"
    assert worker["spec"]["replicas"] == CASES[case].get("worker", {}).get("replicas", 1)
    claims = {t["metadata"]["name"] for t in worker["spec"]["volumeClaimTemplates"]}
    c = container(worker)
    env = plain_env(c)
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    state = [path for volume, path in mounts.items() if volume in claims]
    assert state == [env["ENGAGE_RUN_DIR"]], "the claim is not mounted at the worker's run directory"
    # streams/worker/app.py keeps the tables' RocksDB files in run_dir/worker-<port>, inside the claim
    source = (PROJECT_ROOT / "streams" / "worker" / "app.py").read_text()
    assert 'return settings.run_dir / f"worker-{settings.worker_web_port}"' in source
    datadir = Path(env["ENGAGE_RUN_DIR"]) / f"worker-{env['ENGAGE_WORKER_WEB_PORT']}"
    assert datadir.parent == Path(state[0])
    volumes = {v["name"] for v in worker["spec"]["template"]["spec"].get("volumes", [])}
    assert not claims & volumes, "a pod volume hides the claim"
    headless = next(
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == worker["spec"]["serviceName"]
    )
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert headless["spec"]["selector"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(("case", "reference", "field"), [("defaults", "POD_NAME", "metadata.name"),
                                                          ("override", "POD_IP", "status.podIP")])  # fmt: skip
def test_each_worker_listens_everywhere_and_advertises_its_own_pod(case: str, reference: str, field: str) -> None:
    docs = render(case)
    worker = workloads(docs)["worker"]
    c = container(worker)
    env = plain_env(c)
    names = [e["name"] for e in c["env"]]
    assert env["ENGAGE_BIND_HOST"] == "0.0.0.0"
    advertised = env["ENGAGE_WORKER_HOST"]
    assert f"$({reference})" in advertised
    downward = next(e for e in c["env"] if e["name"] == reference)
    assert downward["valueFrom"]["fieldRef"]["fieldPath"] == field
    assert names.index(reference) < names.index("ENGAGE_WORKER_HOST"), "$(...) needs the variable defined before"
    if reference == "POD_NAME":
        assert advertised.startswith(f"$(POD_NAME).{worker['spec']['serviceName']}.$(POD_NAMESPACE).svc.")
    # the other components reach the workers through the (non-headless) Service
    service = env_of(docs, "dashboards")["ENGAGE_DASHBOARDS_WORKER_URL"]
    assert service == f"http://{worker['metadata']['name']}:{env['ENGAGE_WORKER_WEB_PORT']}"


def env_of(docs: list[dict[str, Any]], component: str) -> dict[str, str]:
    return plain_env(container(workloads(docs)[component]))


@pytest.mark.parametrize("case", CASES)
def test_no_secret_setting_is_a_plain_value(case: str) -> None:
    docs = render(case)
    secret = CASES[case].get("secrets", {}).get("existingSecret", "engage-secrets")
    assert not [d for d in docs if d["kind"] == "Secret"], "the chart must not carry a Secret of its own"
    # every secret setting of config/settings.py, and the API key lists, come from the Secret
    secret_settings = {
        f"ENGAGE_{n.upper()}" for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)
    }
    secret_settings |= {"ENGAGE_WRITE_KEYS", "ENGAGE_SERVER_KEYS", "ENGAGE_ADMIN_KEYS"}
    for name, workload in workloads(docs).items():
        from_secret: set[str] = set()
        for e in container(workload)["env"]:
            if not SECRET_WORDS.search(e["name"]):
                continue
            assert "value" not in e, f"{name}: {e['name']} is a plain value"
            ref = e["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret and ref["key"]
            from_secret.add(e["name"])
        assert secret_settings <= from_secret, f"{name}: not from the Secret: {secret_settings - from_secret}"
    if case == "override":
        assert "ENGAGE_SMTP_USERNAME" in {
            e["name"] for e in container(workloads(docs)["notify"])["env"] if "secretKeyRef" in e.get("valueFrom", {})
        }
    dashboards = workloads(docs)["dashboards"]["spec"]["template"]["spec"]
    key_volume = next(v for v in dashboards["volumes"] if "secret" in v)
    assert key_volume["secret"]["secretName"] == secret


@pytest.mark.parametrize("case", CASES)
def test_every_engage_variable_is_a_setting_and_they_parse(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    known = {f"ENGAGE_{n.upper()}" for n in Settings.model_fields}
    for name, workload in workloads(render(case)).items():
        env = plain_env(container(workload))
        unknown = {n for n in env if n.startswith("ENGAGE_")} - known
        assert not unknown, f"{name}: not settings of config/settings.py: {unknown}"
        for n in known:
            monkeypatch.delenv(n, raising=False)
        for n, value in env.items():
            if n.startswith("ENGAGE_") and "$(" not in value:
                monkeypatch.setenv(n, value)
        s = Settings()
        assert s.bind_host == "0.0.0.0"
        assert isinstance(s.clickhouse_password, SecretStr)


def test_the_replication_settings_reach_every_component_and_the_worker() -> None:
    kafka = OVERRIDE["kafka"]
    docs = render("override")
    for name in workloads(docs):
        env = env_of(docs, name)
        assert env["ENGAGE_KAFKA_REPLICATION_FACTOR"] == "3", name
        assert env["ENGAGE_KAFKA_MIN_INSYNC_REPLICAS"] == "2", name
        assert env["ENGAGE_KAFKA_BOOTSTRAP_SERVERS"] == ",".join(kafka["bootstrapServers"]), name
        assert env["ENGAGE_EVENT_PARTITIONS"] == "12", name
        assert env["ENGAGE_CLICKHOUSE_SECURE"] == "true" and env["ENGAGE_CLICKHOUSE_PORT"] == "9440", name
        assert env["ENGAGE_CLICKHOUSE_CA_FILE"].startswith("/etc/engage/clickhouse-ca/"), name
        assert env["ENGAGE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["ENGAGE_KAFKA_SASL_USERNAME"] == "engage"
        assert env["ENGAGE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-256", name
        assert env["ENGAGE_KAFKA_SSL_CA_FILE"].startswith("/etc/engage/kafka-ca/"), name
        sasl = next(e for e in container(workloads(docs)[name])["env"] if e["name"] == "ENGAGE_KAFKA_SASL_PASSWORD")
        assert "optional" not in sasl["valueFrom"]["secretKeyRef"], f"{name}: the SASL password may be missing"
    defaults = env_of(render("defaults"), "worker")
    assert (defaults["ENGAGE_KAFKA_REPLICATION_FACTOR"], defaults["ENGAGE_KAFKA_MIN_INSYNC_REPLICAS"]) == ("1", "1")


def test_services_select_their_pods_on_a_port_the_container_names() -> None:
    docs = render("defaults")
    pods = {w["metadata"]["name"]: container(w) for w in docs if w["kind"] in WORKLOADS}
    labels = [w["spec"]["template"]["metadata"]["labels"] for w in docs if w["kind"] in WORKLOADS]
    for service in (d for d in docs if d["kind"] == "Service"):
        selected = [i for i, pod in enumerate(labels) if service["spec"]["selector"].items() <= pod.items()]
        assert len(selected) == 1, f"{service['metadata']['name']} selects {len(selected)} workloads"
        c = list(pods.values())[selected[0]]
        named = {p["name"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= named
    served = {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs if d["kind"] == "Service"}
    assert served == set(PROBES)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka": {"replicationFactor": 2, "minInsyncReplicas": 3}}, "must be at most kafka.replicationFactor"),
        ({"secrets": {"existingSecret": ""}}, "secrets.existingSecret is empty"),
        ({"worker": {"replicas": 5}}, "more than kafka.partitions"),
        ({"notify": {"extraEnv": {"ENGAGE_SMTP_PASSWORD": "hunter2"}}}, "looks like a secret"),
        ({"env": {"ENGAGE_FCM_ACCESS_TOKEN": "ya29"}}, "looks like a secret"),
        ({"dashboards": {"replicas": 2}, "secrets": {"keys": {"dashboardsSigningKey": ""}}}, "sign sessions"),
        ({"kafka": {"bootstrapServers": []}}, "kafka.bootstrapServers is empty"),
        ({"kafka": {"securityProtocol": "SASL_SSL"}}, "needs kafka.sasl.username"),
        ({"kafka": {"securityProtocol": "TLS"}}, "kafka.securityProtocol must be one of"),
    ],
)
def test_values_that_cannot_work_are_refused(values: dict[str, Any], message: str) -> None:
    result = _with_values(values, "template", "engage")
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_demo_keys_only_when_asked_and_then_no_secret_is_referenced() -> None:
    docs = _rendered(yaml.safe_dump({"secrets": {"existingSecret": "", "allowDemoKeys": True}}))
    for workload in workloads(docs).values():
        assert not [e for e in container(workload)["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]]
        assert not [e for e in container(workload)["env"] if SECRET_WORDS.search(e["name"])]
