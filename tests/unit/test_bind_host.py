"""Every server of the engine listens on the one ``bind_host`` setting; clients keep calling 127.0.0.1."""

from __future__ import annotations

import ast
from typing import Any

import prometheus_client
import pytest

import engage.model_monitor
import notifications.service
import sinks.service
from config.settings import PROJECT_ROOT, Settings

# Calls that open a listening socket, and where their address goes (a keyword, or else a position).
SERVER_CALLS = {
    "start_http_server": ("addr", 1),
    "uvicorn.Config": ("host", None),
    "uvicorn.run": ("host", None),
    "faust.App": ("web_bind", None),
    "web.TCPSite": ("host", 1),
    "loop.create_server": ("host", 1),
    "asyncio.start_server": ("host", 1),
}

# The engine's servers: each must listen on settings.bind_host. A server added anywhere shows up here.
ENGINE_SERVERS = {
    ("sinks/service.py", "start_http_server"),
    ("notifications/service.py", "start_http_server"),
    ("engage/model_monitor.py", "start_http_server"),
    ("desk/runner.py", "uvicorn.Config"),
    ("leaderboards/runner.py", "uvicorn.Config"),
    ("engage/cli.py", "uvicorn.run"),  # the collector
    ("dashboards/cli.py", "uvicorn.run"),
    ("streams/worker/app.py", "faust.App"),
}

# Loopback on purpose: stand-ins for the providers, and harnesses of the tests and the benchmarks.
LOOPBACK_ONLY = {
    "deploy/providers/http.py",
    "deploy/providers/smtp.py",
    "engage/sdkcheck/fault_proxy.py",
    "engage/chromium.py",
    "engage/bench/bare_collector.py",
    "dashboards/server.py",
}


def _calls_in(source: str, module: str) -> list[tuple[str, str, str]]:
    """(module, call, the address it is given) for every listening call in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, module)):
        if not isinstance(node, ast.Call) or (call := ast.unparse(node.func)) not in SERVER_CALLS:
            continue
        keyword, position = SERVER_CALLS[call]
        given = [k.value for k in node.keywords if k.arg == keyword]
        if not given and position is not None and len(node.args) > position:
            given = [node.args[position]]
        found.append((module, call, ast.unparse(given[0]) if given else "(none)"))
    return found


def _server_calls() -> list[tuple[str, str, str]]:
    """Every listening call in the engine's own code (not the tests)."""
    found = []
    for path in sorted(PROJECT_ROOT.rglob("*.py")):
        module = path.relative_to(PROJECT_ROOT).as_posix()
        if not module.startswith("tests/") and not any(part.startswith(".") for part in module.split("/")):
            found += _calls_in(path.read_text(), module)
    return found


def test_the_default_is_loopback_and_the_environment_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().bind_host == "127.0.0.1"
    assert "listens" in (Settings.model_fields["bind_host"].description or "")
    monkeypatch.setenv("ENGAGE_BIND_HOST", "0.0.0.0")
    assert Settings().bind_host == "0.0.0.0"


def test_every_server_of_the_engine_listens_on_the_setting() -> None:
    calls = _server_calls()
    engine = [(module, call, address) for module, call, address in calls if module not in LOOPBACK_ONLY]
    assert {(module, call) for module, call, _ in engine} == ENGINE_SERVERS
    assert [c for c in engine if "bind_host" not in c[2]] == [], "a server with its own address"
    assert {module for module, _, _ in calls if module in LOOPBACK_ONLY} == LOOPBACK_ONLY


@pytest.mark.parametrize(
    "serve",
    [
        lambda s: sinks.service.serve_metrics(s.model_copy(update={"sink_metrics_port": 16067})),
        lambda s: notifications.service.serve_metrics(s.model_copy(update={"notify_metrics_port": 16068})),
        lambda s: engage.model_monitor.serve_metrics(s, 16070),
    ],
    ids=["sinks", "notify", "model-monitor"],
)
def test_the_metrics_servers_are_given_the_setting(monkeypatch: pytest.MonkeyPatch, serve: Any) -> None:
    """Captured, not started: a server on 0.0.0.0 is not for a test machine."""
    asked: list[tuple[int, str]] = []

    def start_http_server(port: int, addr: str) -> tuple[object, None]:
        asked.append((port, addr))
        return object(), None

    monkeypatch.setattr(prometheus_client, "start_http_server", start_http_server)
    monkeypatch.setattr(engage.model_monitor, "start_http_server", start_http_server)
    serve(Settings(bind_host="0.0.0.0"))
    assert [addr for _, addr in asked] == ["0.0.0.0"]


def test_clients_keep_calling_loopback_when_the_servers_listen_everywhere() -> None:
    s = Settings(bind_host="0.0.0.0")
    assert s.worker_base == f"http://127.0.0.1:{s.worker_web_port}"
    assert s.leaderboards_base == f"http://127.0.0.1:{s.leaderboard_port}"
    assert s.dashboards_url == f"http://127.0.0.1:{s.dashboards_port}"
    assert (s.collector_host, s.worker_host) == ("127.0.0.1", "127.0.0.1")


def test_the_scan_sees_the_address_a_server_is_given() -> None:
    """The wiring test rests on the scan: a literal address, positional or by keyword, is seen as one."""
    source = 'uvicorn.run(app, host="127.0.0.1", port=1)\nstart_http_server(1, "0.0.0.0")\nfaust.App("x")\n'
    assert _calls_in(source, "m.py") == [
        ("m.py", "uvicorn.run", "'127.0.0.1'"),
        ("m.py", "start_http_server", "'0.0.0.0'"),
        ("m.py", "faust.App", "(none)"),
    ]
