"""A chaos run stops the servers it started whatever fails, their own start included: a server that does not
come up must not leave the others running after the run."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from engage.chaos.harness import ChaosConfig, ChaosReport, _Chaos


class _Servers:
    def __init__(self) -> None:
        self.downs = 0

    def up(self) -> list[object]:
        raise RuntimeError("clickhouse-3 was not ready within 30 s")  # after the others had been spawned

    def down(self) -> None:
        self.downs += 1


def test_servers_are_stopped_when_one_of_them_fails_to_start() -> None:
    chaos = _Chaos.__new__(_Chaos)  # without __init__: no ports, settings or run directory needed
    config = ChaosConfig()
    chaos.config, chaos.console, chaos.report = config, Console(file=io.StringIO()), ChaosReport(config)
    chaos.settings = SimpleNamespace()  # type: ignore[assignment]
    servers = _Servers()
    chaos.servers = servers  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="not ready"):
        chaos.run()
    assert servers.downs == 1
