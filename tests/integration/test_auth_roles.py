"""Keys and roles on the running services: a real collector and a real worker (separate processes), keys made,
rotated and revoked with the real CLI while both keep running; logs and metrics carry no secret, no user id."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from access.keys import KeyRegistry
from config.settings import PROJECT_ROOT, Settings, settings_env
from deploy.infra import Infra
from deploy.process import free_port
from engage.children import child, wait_http
from kafka_io.admin import ensure_topics
from schemas.topics import catalogue
from tests.integration.workers import WorkerProcess, wait_for

pytestmark = pytest.mark.integration

OK = {200, 201}


@dataclass
class Stack:
    settings: Settings
    collector: str
    collector_proc: subprocess.Popen[bytes]
    collector_log: Path
    worker: WorkerProcess
    user: str  # a student with events, so reads and acts answer 200
    secrets: list[str] = field(default_factory=list)  # every secret used: none may leak into logs or metrics
    users: list[str] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "engage.cli", "keys", *args],
            env=settings_env(self.settings),
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    def create(self, app: str, role: str) -> tuple[str, str]:
        """`engage keys create`: (key id, secret), the secret taken from the one line that shows it."""
        out = self.cli("create", "--app", app, "--role", role)
        (secret,) = [line.split()[1] for line in out.splitlines() if line.startswith("secret")]
        self.secrets.append(secret)
        return out.split()[1].rstrip(":"), secret

    def event(self, user: str | None = None) -> dict[str, Any]:
        return {
            "event_id": f"ev-{uuid.uuid4().hex}",
            "user_id": user or self.user,
            "event_type": "login",
            "event_time": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "platform": "web",
            "timezone": "Europe/London",
        }

    # One request per grant, with a key (None: no Authorization header).
    def track(self, key: str | None) -> int:
        return httpx.post(
            f"{self.collector}/v1/events", json=[self.event()], headers=_auth(key), timeout=10
        ).status_code

    def read(self, key: str | None) -> int:
        return httpx.get(
            f"{self.worker.url}/v1/users/{self.user}/engagement", headers=_auth(key), timeout=10
        ).status_code

    def act(self, key: str | None) -> int:
        return httpx.post(
            f"{self.worker.url}/v1/users/{self.user}/recalculate", headers=_auth(key), timeout=10
        ).status_code

    def admin(self, key: str | None) -> int:
        return httpx.get(f"{self.worker.url}/v1/admin/keys", headers=_auth(key), timeout=10).status_code

    def grants(self, key: str | None) -> dict[str, int]:
        return {"track": self.track(key), "read": self.read(key), "act": self.act(key), "admin": self.admin(key)}

    def stop(self) -> None:
        """SIGTERM both services and wait until they have exited (the fixture's own stop is then a no-op)."""
        self.collector_proc.terminate()
        self.collector_proc.wait(timeout=30)
        self.worker.stop()
        assert self.worker.proc is not None and self.worker.proc.poll() is not None

    def alive(self) -> None:
        assert self.collector_proc.poll() is None and self.worker.proc is not None and self.worker.proc.poll() is None


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


@pytest.fixture(scope="module")
def stack(infra: Infra, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("auth")
    s = settings.model_copy(
        update={
            "topic_prefix": f"auth-{uuid.uuid4().hex[:8]}",
            "run_dir": tmp,
            "collector_port": free_port(),
            "key_registry_path": tmp / "keys.json",
            "broker_session_timeout_seconds": 6.0,
            "score_debounce_seconds": 0.2,
        }
    )
    ensure_topics(s.kafka, catalogue(s.topic_prefix, s.event_partitions).all())
    log = tmp / "collector.log"
    collector = f"http://127.0.0.1:{s.collector_port}"
    worker = WorkerProcess(s, free_port(), tmp / "worker.log", loglevel="info")  # more log lines to search
    with child([sys.executable, "-m", "engage.cli", "collector"], log, settings_env(s)) as proc:
        wait_http(f"{collector}/healthz", proc, timeout=60, log=log)
        assert wait_for(lambda: httpx.get(f"{collector}/readyz", timeout=2).status_code == 200, timeout=30)
        worker.start()
        try:
            stack = Stack(s, collector, proc, log, worker, user=f"auth-student-{uuid.uuid4().hex[:10]}")
            stack.users.append(stack.user)
            demo_write, demo_server = "wk_demo_web", "sk_demo_backend"
            stack.secrets += [demo_write, demo_server, "ak_demo_admin"]
            assert stack.track(demo_write) == 200
            assert wait_for(lambda: stack.read(demo_server) == 200, timeout=90), "the worker never saw the student"
            yield stack
        finally:
            worker.stop()


def test_each_role_is_refused_what_it_may_not_do(stack: Stack) -> None:
    write_id, write = stack.create("web", "write")
    _, server = stack.create("backend", "server")
    _, admin = stack.create("ops", "admin")
    # Created while both services run: they pick the keys up from the registry without a restart.
    assert wait_for(lambda: stack.track(admin) == 200 and stack.admin(admin) == 200, timeout=10)

    assert stack.grants(write) == {"track": 200, "read": 403, "act": 403, "admin": 403}
    assert stack.grants(server) == {"track": 200, "read": 200, "act": 200, "admin": 403}
    assert stack.grants(admin) == {"track": 200, "read": 200, "act": 200, "admin": 200}
    # The settings' demo keys keep their roles too.
    assert stack.grants("wk_demo_web") == {"track": 200, "read": 403, "act": 403, "admin": 403}
    assert stack.grants("sk_demo_backend") == {"track": 200, "read": 200, "act": 200, "admin": 403}
    # Nobody without a key, or with an unknown one.
    assert set(stack.grants(None).values()) == {401}
    assert set(stack.grants(f"{write_id}_not-the-secret-at-all-0123456789").values()) == {401}

    # Acting on the collector (intervention outcomes) and triggering an intervention: server yes, write no.
    outcome = {"outcomes": [{"intervention_id": "i-1", "user_id": stack.user, "outcome": "opened",
                             "at": datetime.now(UTC).isoformat()}]}  # fmt: skip
    outcomes = f"{stack.collector}/v1/interventions/outcomes"
    assert httpx.post(outcomes, json=outcome, headers=_auth(write), timeout=10).status_code == 403
    assert httpx.post(outcomes, json=outcome, headers=_auth(server), timeout=10).status_code == 200
    trigger = f"{stack.worker.url}/v1/users/{stack.user}/interventions"
    body = {"intervention_type": "gentle_reminder", "reason": "test"}
    assert httpx.post(trigger, json=body, headers=_auth(write), timeout=10).status_code == 403
    assert httpx.post(trigger, json=body, headers=_auth(server), timeout=10).status_code == 201

    # The admin listing: ids, apps, roles and states, never a secret or a digest.
    listing = httpx.get(f"{stack.worker.url}/v1/admin/keys", headers=_auth(admin), timeout=10)
    keys = {k["key_id"]: k for k in listing.json()["keys"]}
    assert keys[write_id] | {"created_at": None} == {
        "key_id": write_id,
        "app_id": "web",
        "role": "write",
        "source": "registry",
        "created_at": None,
        "expires_at": None,
        "revoked_at": None,
        "replaced_by": None,
        "state": "active",
    }
    assert {"demo-web", "demo-backend", "demo-admin", "web", "backend", "ops"} <= {k["app_id"] for k in keys.values()}
    assert "sha256" not in listing.text and all(secret not in listing.text for secret in stack.secrets)
    stack.alive()


def test_a_revoked_key_is_refused_within_seconds_without_a_restart(stack: Stack) -> None:
    key_id, server = stack.create("backend", "server")
    assert wait_for(lambda: stack.track(server) == 200 and stack.read(server) == 200, timeout=10)
    pids = (stack.collector_proc.pid, stack.worker.proc.pid if stack.worker.proc else None)

    stack.cli("revoke", key_id)
    revoked_at = time.monotonic()
    assert wait_for(lambda: stack.track(server) == 401 and stack.read(server) == 401, timeout=5, interval=0.1)
    took = time.monotonic() - revoked_at
    assert stack.grants(server) == {"track": 401, "read": 401, "act": 401, "admin": 401}
    print(f"\n[auth] revoked key refused by collector and worker {took:.2f} s after `engage keys revoke` returned")

    # Same processes all along; other keys unaffected.
    stack.alive()
    assert (stack.collector_proc.pid, stack.worker.proc.pid if stack.worker.proc else None) == pids
    assert stack.grants("sk_demo_backend") == {"track": 200, "read": 200, "act": 200, "admin": 403}
    assert "revoked" in stack.cli("list").split(key_id, 1)[1].splitlines()[0]


def test_a_revoked_settings_key_is_refused_too(stack: Stack) -> None:
    (demo,) = [r for r in KeyRegistry.from_settings(stack.settings).all() if r.app_id == "demo-mobile"]
    assert stack.track("wk_demo_mobile") == 200
    stack.secrets.append("wk_demo_mobile")
    stack.cli("revoke", demo.key_id)
    assert wait_for(lambda: stack.track("wk_demo_mobile") == 401, timeout=5, interval=0.1)
    assert stack.track("wk_demo_web") == 200


def test_a_rotated_key_works_during_the_grace_then_stops(stack: Stack) -> None:
    old_id, old = stack.create("backend", "server")
    assert wait_for(lambda: stack.read(old) == 200, timeout=10)

    grace = 10
    out = stack.cli("rotate", old_id, "--grace-seconds", str(grace))
    (new,) = [line.split()[1] for line in out.splitlines() if line.startswith("secret")]
    stack.secrets.append(new)
    retired = KeyRegistry.from_settings(stack.settings).find(old_id)
    assert retired.expires_at is not None and retired.replaced_by == new[: len(old_id)]
    grace_ends = time.monotonic() + (retired.expires_at - datetime.now(UTC)).total_seconds()

    # During the grace: both secrets work, for the same app and role, on both services.
    assert wait_for(lambda: stack.read(new) == 200, timeout=5, interval=0.1)
    assert grace_ends - time.monotonic() > 2, "the machine is too slow to see the grace period"
    assert stack.grants(old) == {"track": 200, "read": 200, "act": 200, "admin": 403}
    assert stack.grants(new) == {"track": 200, "read": 200, "act": 200, "admin": 403}

    # After it: the old secret is refused everywhere, the new one keeps working.
    time.sleep(max(0.0, grace_ends - time.monotonic()) + 0.2)
    assert stack.grants(old) == {"track": 401, "read": 401, "act": 401, "admin": 401}
    assert stack.grants(new) == {"track": 200, "read": 200, "act": 200, "admin": 403}
    stack.alive()


def test_logs_and_metrics_carry_no_secrets_and_no_user_ids(stack: Stack) -> None:
    # Requests of every kind, by every role, for a second student too, and refusals (unknown and revoked keys).
    key_id, server = stack.create("backend", "server")
    _, write = stack.create("web", "write")
    other = f"auth-student-{uuid.uuid4().hex[:10]}"
    stack.users.append(other)
    assert wait_for(lambda: stack.track(write) == 200 and stack.read(server) == 200, timeout=10)
    assert (
        httpx.post(f"{stack.collector}/v1/events", json=[stack.event(other)], headers=_auth(write)).status_code == 200
    )
    bad = stack.event(other) | {"event_type": "teleported"}  # refused: dead-lettered with the reason
    assert httpx.post(f"{stack.collector}/v1/events", json=[bad], headers=_auth(write)).status_code == 200
    for key in (write, server, None, "sk_never_issued_but_long_enough"):
        stack.grants(key)
    stack.cli("revoke", key_id)
    assert wait_for(lambda: stack.read(server) == 401 and stack.track(server) == 401, timeout=5, interval=0.1)
    httpx.get(f"{stack.worker.url}/v1/users/{other}/engagement", headers=_auth("sk_demo_backend"), timeout=10)
    httpx.get(f"{stack.worker.url}/v1/users/no-such-student-7/engagement", headers=_auth("sk_demo_backend"))

    metrics = {
        "collector": httpx.get(f"{stack.collector}/metrics", timeout=10).text,
        "worker": httpx.get(f"{stack.worker.url}/metrics", timeout=10).text,
    }
    # The logs once both processes have exited: every line they wrote is in the files, shutdown included. (So
    # this test stops the module's stack: it stays the last one here.)
    stack.stop()
    logs = {"collector": stack.collector_log.read_text(), "worker": stack.worker.log.read_text()}
    secrets = [*stack.secrets, "sk_never_issued_but_long_enough"]
    for name, text in {
        **{f"{k} log": v for k, v in logs.items()},
        **{f"{k} /metrics": v for k, v in metrics.items()},
    }.items():
        for secret in secrets:
            assert secret not in text, f"a key secret is in the {name}"
            random_part = secret.split("_", 2)[-1]
            assert len(random_part) < 20 or random_part not in text, f"part of a key secret is in the {name}"
        for user in [*stack.users, "no-such-student-7"]:
            assert user not in text, f"a user id is in the {name}"

    # What is there instead: refusals counted by reason (no key id, no user), revoked keys logged by public id.
    for name in ("collector", "worker"):
        assert 'engage_auth_refused_total{reason="revoked"}' in metrics[name]
        assert _sample(metrics[name], 'engage_auth_refused_total{reason="revoked"}') >= 1
        assert _sample(metrics[name], 'engage_auth_refused_total{reason="unknown"}') >= 1
        assert f"refused revoked key {key_id}" in logs[name], f"the {name} did not log the refusal by key id"


def _sample(text: str, series: str) -> float:
    (line,) = [line for line in text.splitlines() if line.startswith(series + " ")]
    return float(line.rsplit(" ", 1)[1])
