"""Settings passed to child processes as ENGAGE_* variables, and how simulated traffic is cut into requests."""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, settings_env
from engage.simulator import last_finished_day
from engage.traffic import TrafficPlan, _client_batches


def rebuild(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> Settings:
    for name in list(os.environ):
        if name.startswith("ENGAGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


# ------------------------------------------------------------------------------------------------------
# settings_env
# ------------------------------------------------------------------------------------------------------


def test_every_field_becomes_one_engage_variable_of_text():
    settings = Settings()
    env = settings_env(settings)
    unset = {name for name, value in settings.model_dump().items() if value is None}
    assert set(env) == {f"ENGAGE_{name.upper()}" for name in Settings.model_fields if name not in unset}
    assert all(isinstance(v, str) for v in env.values())


def test_default_settings_round_trip(monkeypatch):
    original = Settings()
    assert rebuild(monkeypatch, settings_env(original)).model_dump() == original.model_dump()


def test_customised_settings_round_trip_including_lists(monkeypatch, tmp_path):
    original = Settings(
        run_dir=tmp_path / "run dir",
        cache_dir=Path("/nonexistent/cache"),
        kafka_port=29092,
        kafka_heap="768m",
        topic_prefix="007",  # a text that looks like a number stays text
        event_partitions=7,
        sink_batch_seconds=0.25,
        collector_cors_origins=["https://a.example", "https://b.example:8443"],
        write_keys=["web:wk_web_1234", "mobile:wk,with,commas"],
        server_keys=[],
        admin_keys=["ops:ak:with:colons"],
    )
    env = settings_env(original)
    assert json.loads(env["ENGAGE_WRITE_KEYS"]) == ["web:wk_web_1234", "mobile:wk,with,commas"]
    assert json.loads(env["ENGAGE_SERVER_KEYS"]) == []
    assert env["ENGAGE_TOPIC_PREFIX"] == "007"
    assert env["ENGAGE_KAFKA_PORT"] == "29092"
    assert env["ENGAGE_RUN_DIR"] == str(tmp_path / "run dir")

    rebuilt = rebuild(monkeypatch, env)
    assert rebuilt.model_dump() == original.model_dump()
    assert rebuilt.topic_prefix == "007"
    assert rebuilt.server_keys == []
    assert rebuilt.kafka.bootstrap == "127.0.0.1:29092"


def test_provider_secrets_reach_a_child_in_clear_and_are_masked_elsewhere(monkeypatch):
    original = Settings(twilio_auth_token="tw-secret", fcm_access_token="ya29.token", smtp_password="pw-123")
    env = settings_env(original)
    assert env["ENGAGE_TWILIO_AUTH_TOKEN"] == "tw-secret"
    assert env["ENGAGE_FCM_ACCESS_TOKEN"] == "ya29.token" and env["ENGAGE_SMTP_PASSWORD"] == "pw-123"
    assert all(secret not in repr(original) for secret in ("tw-secret", "ya29.token", "pw-123"))
    rebuilt = rebuild(monkeypatch, env)
    assert rebuilt.twilio_auth_token is not None and rebuilt.twilio_auth_token.get_secret_value() == "tw-secret"
    assert rebuilt.model_dump() == original.model_dump()


def test_environment_overrides_defaults(monkeypatch):
    rebuilt = rebuild(monkeypatch, {"ENGAGE_KAFKA_PORT": "30000", "ENGAGE_WRITE_KEYS": '["a:12345678"]'})
    assert rebuilt.kafka_port == 30000
    assert rebuilt.write_keys == ["a:12345678"]
    assert rebuilt.clickhouse_port == Settings.model_fields["clickhouse_port"].default


# ------------------------------------------------------------------------------------------------------
# _client_batches
# ------------------------------------------------------------------------------------------------------


def ev(user: str, n: int) -> dict[str, Any]:
    return {"user_id": user, "n": n}


def test_client_batches_are_per_user_in_order_and_capped():
    events = [ev("u1", 1), ev("u2", 2), ev("u1", 3), ev("u1", 4), ev("u3", 5), ev("u1", 6), ev("u2", 7), ev("u1", 8)]
    batches = list(_client_batches(events, 2))
    assert [[e["n"] for e in b] for b in batches] == [[1, 3], [4, 6], [8], [2, 7], [5]]
    for batch in batches:
        assert 1 <= len(batch) <= 2
        assert len({e["user_id"] for e in batch}) == 1


def test_client_batches_lose_and_repeat_nothing():
    events = [ev(f"u{i % 7}", i) for i in range(103)]
    batches = list(_client_batches(events, 5))
    assert sorted(e["n"] for b in batches for e in b) == list(range(103))
    for user in {e["user_id"] for e in events}:
        sent = [e["n"] for b in batches for e in b if e["user_id"] == user]
        assert sent == [e["n"] for e in events if e["user_id"] == user]
    assert max(len(b) for b in batches) == 5


def test_client_batches_with_a_large_cap_send_one_request_per_user():
    events = [ev("a", 1), ev("b", 2), ev("a", 3)]
    assert [[e["n"] for e in b] for b in _client_batches(events, 100)] == [[1, 3], [2]]


def test_client_batches_of_nothing():
    assert list(_client_batches([], 10)) == []


# ------------------------------------------------------------------------------------------------------
# TrafficPlan.start
# ------------------------------------------------------------------------------------------------------


def test_default_plan_ends_on_the_last_day_over_in_every_zone():
    last = last_finished_day()
    plan = TrafficPlan(days=28)
    assert plan.start == last - timedelta(days=27)
    assert plan.start + timedelta(days=plan.days - 1) == last
    assert date.today() - timedelta(days=2) <= last < date.today()


def test_explicit_end_is_the_last_day():
    assert TrafficPlan(days=28, end=date(2024, 3, 31)).start == date(2024, 3, 4)
    assert TrafficPlan(days=1, end=date(2024, 3, 31)).start == date(2024, 3, 31)
    assert TrafficPlan(days=3, end=date(2024, 3, 1)).start == date(2024, 2, 28)  # leap year
