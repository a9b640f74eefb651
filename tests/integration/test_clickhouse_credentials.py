"""ClickHouse with a password: every component connects as the configured user, and wrong credentials stop a
service at start with an error that names the server, the user and the settings to check (#27).

A ClickHouse server of its own (the same code as `engage infra up`, with a user and password from the settings),
on free ports, stopped by PID at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import SecretStr

from config.settings import Settings
from deploy import server
from deploy.infra import Infra
from deploy.process import free_ports
from sinks.clickhouse.client import ClickHouseUnavailable, check_connection, connect
from sinks.service import run_sinks
from tests.integration.workers import wait_for


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    tcp, http = free_ports(2)
    s = Settings(run_dir=Path(tmp_path_factory.mktemp("ch-locked")), clickhouse_port=tcp, clickhouse_http_port=http,
                 clickhouse_user="engage", clickhouse_password=SecretStr("correct horse"))  # fmt: skip
    clickhouse = Infra.from_settings(s).clickhouse
    server.start(clickhouse)
    try:
        yield s
    finally:
        server.stop(clickhouse)


def test_the_configured_user_and_password_get_in(locked: Settings) -> None:
    check_connection(locked)
    assert connect(locked).execute("SELECT 1") == [(1,)]  # 18.16 has no currentUser(): the refusals below show who


@pytest.mark.parametrize(
    ("user", "password"), [("engage", "wrong"), ("engage", ""), ("default", ""), ("nobody", "correct horse")]
)
def test_wrong_credentials_are_refused_saying_which(locked: Settings, user: str, password: str) -> None:
    wrong = locked.model_copy(update={"clickhouse_user": user, "clickhouse_password": SecretStr(password)})
    with pytest.raises(ClickHouseUnavailable) as refused:
        check_connection(wrong)
    message = str(refused.value)
    assert f"ClickHouse at 127.0.0.1:{locked.clickhouse_port} refused user {user!r}" in message
    assert "ENGAGE_CLICKHOUSE_PASSWORD" in message
    assert "correct horse" not in message


def test_a_sink_with_wrong_credentials_stops_at_start(locked: Settings) -> None:
    wrong = locked.model_copy(update={"clickhouse_password": SecretStr("wrong")})
    with pytest.raises(ClickHouseUnavailable, match="refused user 'engage'"):
        run_sinks(wrong, ["events"], idle_exit=1.0)


def test_an_unreachable_server_is_named_too(locked: Settings) -> None:
    (closed,) = free_ports(1)
    away = locked.model_copy(update={"clickhouse_port": closed})
    with pytest.raises(ClickHouseUnavailable, match=f"ClickHouse at 127.0.0.1:{closed} could not be reached"):
        check_connection(away)


def test_a_password_is_rotated_through_a_second_user_without_a_restart(tmp_path: Path) -> None:
    """The runbook's rotation (deploy/SCALING.md): users.xml gains the next user, the components move to it, the
    old user is removed; the server re-reads users.xml each time, never restarted."""
    tcp, http = free_ports(2)
    s = Settings(run_dir=tmp_path, clickhouse_port=tcp, clickhouse_http_port=http, clickhouse_user="engage_a",
                 clickhouse_password=SecretStr("first secret"))  # fmt: skip
    clickhouse = Infra.from_settings(s).clickhouse
    started = server.start(clickhouse)
    try:
        nxt = s.model_copy(update={"clickhouse_user": "engage_b", "clickhouse_password": SecretStr("second secret")})

        def refused(settings: Settings) -> bool:
            try:
                check_connection(settings)
                return False
            except ClickHouseUnavailable:
                return True

        assert refused(nxt)
        time.sleep(1.1)  # the server notices a change by the file's mtime in whole seconds: not within its start's
        clickhouse.write_users(("engage_b", "second secret"))
        assert wait_for(lambda: not refused(nxt), 30)  # re-read within seconds
        assert not refused(s)  # both work while the components move
        time.sleep(1.1)
        replace(clickhouse, user="engage_b", password="second secret").write_users()  # the old user removed
        assert wait_for(lambda: refused(s), 30)
        assert not refused(nxt)
        assert server.status(clickhouse).startswith(f"running (pid {started.pid}")  # the same process throughout
    finally:
        server.stop(clickhouse)
