"""A real worker's web server answers our pages only: none of Faust's own views (the table dump, the router, the
statistics), and it listens on 127.0.0.1 by default."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from faust.web.base import DEBUG_BLUEPRINTS, DEFAULT_BLUEPRINTS, OPTIONAL_BLUEPRINTS, PRODUCTION_BLUEPRINTS
from mode.utils.imports import symbol_by_name

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from engage.simulator import Population, iter_event_days, last_finished_day
from engage.traffic import _client_batches
from kafka_io.admin import ensure_topics
from kafka_io.producer import EventProducer
from schemas.topics import catalogue
from tests.integration.workers import SERVER_KEY, WorkerProcess, wait_for

pytestmark = pytest.mark.integration

# Every path the worker's web server may answer: the engagement API (streams.worker.api, inbox_api), its
# metrics and its health. Anything else is an unknown path (404).
OUR_ROUTES = {
    "/v1/users/{user_id}/engagement",
    "/v1/users/{user_id}/profile",
    "/v1/users/{user_id}/badges",
    "/v1/users/{user_id}",
    "/v1/users/{user_id}/recalculate",
    "/v1/users/{user_id}/interventions",
    "/v1/users/{user_id}/inbox",
    "/v1/users/{user_id}/inbox/{item_id}/read",
    "/v1/erasures/{erasure_id}",
    "/v1/admin/keys",
    "/metrics",
    "/healthz",
}

# ``engage worker`` with Faust's server start recorded: the routes its web application holds once mounted.
_RECORDING_WORKER = """
import json, sys
from faust.web.base import Web
from engage.cli import main

init_server = Web.init_server

def recording(self):
    init_server(self)
    with open({path!r}, "w") as out:
        json.dump(sorted({{resource.canonical for resource in self.web_app.router.resources()}}), out)

Web.init_server = recording
sys.argv = ["engage", *sys.argv[1:]]
main()
"""


def _faust_paths(table: str, key: str) -> list[str]:
    """Every path of Faust's built-in views (from Faust's own lists), with a real table and key filled in."""
    paths = {"/stats/"}  # the statistics' old address, in case a Faust mounts them there
    for prefix, blueprint in [*DEFAULT_BLUEPRINTS, *PRODUCTION_BLUEPRINTS, *DEBUG_BLUEPRINTS, *OPTIONAL_BLUEPRINTS]:
        for route in symbol_by_name(blueprint).routes:
            paths.add((prefix.rstrip("/") + "/" + route.uri.lstrip("/")).format(name=table, key=key))
    return sorted(paths)


@pytest.fixture
def worker(infra: Infra, settings: Settings, tmp_path: Path) -> Iterator[tuple[WorkerProcess, str, Path]]:
    """A worker on the default bind address that has folded a few students; yields it, a student it knows, and
    where its routes were written."""
    s = settings.model_copy(
        update={
            "topic_prefix": f"routes-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp_path,
            "bind_host": Settings.model_fields["bind_host"].default,
        }
    )
    topics = catalogue(s.topic_prefix, s.event_partitions)
    ensure_topics(s.kafka, topics.all())
    population = Population.generate(3, seed=5, start=last_finished_day() - timedelta(days=2))
    events = [e for _, day in iter_event_days(population, 3) for e in day]
    with EventProducer(s.kafka, topics) as producer:
        for batch in _client_batches(events, 50):
            producer.send(batch)
        assert producer.flush(60) == 0
    routes = tmp_path / "routes.json"
    script = _RECORDING_WORKER.format(path=str(routes))
    process = WorkerProcess(s, free_port(), tmp_path / "worker.log", python=["-c", script]).start()
    try:
        yield process, events[0]["user_id"], routes
    finally:
        process.stop()


def _listening_addresses(port: int) -> set[str]:
    """The IPv4 addresses a socket listens on at ``port`` (the kernel's table: hex address, state 0A = LISTEN)."""
    addresses = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, local_port = local.split(":")
        if state == "0A" and int(local_port, 16) == port:
            addresses.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return addresses


def test_the_worker_answers_our_pages_only(worker: tuple[WorkerProcess, str, Path]) -> None:
    process, student, routes = worker
    assert wait_for(lambda: process.engagement(student).status_code == 200, timeout=60), "the student was not folded"

    assert set(json.loads(routes.read_text())) == OUR_ROUTES, "the web server mounts a path that is not ours"

    for path in _faust_paths("user-state", student):
        resp = httpx.get(f"{process.url}{path}", headers=SERVER_KEY, timeout=10)
        assert resp.status_code == 404, f"{path} answered {resp.status_code}: {resp.text[:200]}"
        assert student not in resp.text

    engagement = process.engagement(student)
    assert engagement.status_code == 200 and engagement.json()["user_id"] == student
    metrics = httpx.get(f"{process.url}/metrics", timeout=10)
    assert metrics.status_code == 200 and "engage_" in metrics.text
    assert httpx.get(f"{process.url}/healthz", timeout=10).json() == {"status": "ok"}


def test_by_default_the_worker_listens_on_loopback_only(worker: tuple[WorkerProcess, str, Path]) -> None:
    process, _, _ = worker
    assert process.url.startswith("http://127.0.0.1:")
    assert httpx.get(f"{process.url}/healthz", timeout=10).status_code == 200
    assert _listening_addresses(process.port) == {"127.0.0.1"}, "not bound to 127.0.0.1 alone"
