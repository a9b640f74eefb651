"""Which package may import which: the face (``engage/``) stands on the floors below and nothing imports it.

``config/`` (settings) and ``access/`` (API keys and roles) are the low floor streams, sinks, models and deploy
import; the worker (``streams/``) runs no ClickHouse code: the warehouse half of an erasure is ``sinks/``'s.
Every service talks to Kafka through ``kafka_io/`` (the producer, the admin helpers), so none imports another to
send a message; no two floors import each other (tested). Read from the source (the import statements, wherever
they are in a module), so a lazy import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from config.settings import PROJECT_ROOT

# Project packages each package may import (besides itself and third-party code). engage/ may import any.
MAY_IMPORT: dict[str, set[str]] = {
    "schemas": set(),
    # config: the settings build kafka_io's description of the connection (KafkaClient), used by every client.
    "config": {"kafka_io", "schemas"},
    "access": {"schemas"},
    "kafka_io": {"schemas"},
    "models": {"config", "schemas"},
    "processors": {"models", "schemas"},
    "deploy": {"config", "schemas"},
    # analytics: an experiment's readout runs its statistics, pure domain code (processors/experiments/stats.py).
    "analytics": {"config", "processors", "schemas"},
    "notifications": {"config", "kafka_io", "processors", "schemas"},
    # notifications: the collector's tracking endpoints verify its tokens, the workers' API serves its inbox store.
    "streams": {"access", "config", "kafka_io", "models", "notifications", "processors", "schemas"},
    "sinks": {"config", "kafka_io", "processors", "schemas", "streams"},
    "desk": {"access", "config", "kafka_io", "processors", "schemas"},
    # processors: the weekly leagues' rules (processors/gamification/leagues.py), pure domain code the service runs.
    "leaderboards": {"access", "config", "kafka_io", "processors", "schemas"},
}
PACKAGES = {*MAY_IMPORT, "engage"}
# Third-party clients only some floors may use: the warehouse is the sinks' business.
ONLY_IN: dict[str, set[str]] = {"clickhouse_driver": {"sinks"}}


def imported(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def modules(package: str) -> list[Path]:
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_floor_imports_only_the_floors_below_it(package: str) -> None:
    wrong = {
        str(path.relative_to(PROJECT_ROOT)): sorted(found)
        for path in modules(package)
        if (found := (imported(path) & PACKAGES) - MAY_IMPORT[package] - {package})
    }
    assert not wrong, f"{package}/ may import only {sorted(MAY_IMPORT[package])}: {wrong}"


@pytest.mark.parametrize("client", sorted(ONLY_IN))
def test_the_warehouse_client_is_used_only_by_the_sinks(client: str) -> None:
    users = {
        str(path.relative_to(PROJECT_ROOT))
        for package in PACKAGES
        for path in modules(package)
        if client in imported(path) and package not in ONLY_IN[client]
    }
    assert not users


def test_every_package_is_listed_for_setuptools_and_mypy() -> None:
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    for package in PACKAGES:
        assert f'"{package}*"' in pyproject and f'"{package}"' in pyproject, package


def test_the_rules_read_imports_wherever_they_are(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import a.b\nfrom c.d import e\nfrom . import f\n\ndef g():\n    from engage import cli\n")
    assert imported(module) == {"a", "c", "engage"}


def test_no_two_floors_import_each_other() -> None:
    both = sorted(
        (a, b) for a, allowed in MAY_IMPORT.items() for b in allowed if a < b and a in MAY_IMPORT.get(b, set())
    )
    assert not both, f"floors importing each other: {both}"
