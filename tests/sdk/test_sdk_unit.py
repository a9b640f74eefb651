"""The JS SDK's own tests (node's test runner, fake fetch and clock), its build, and its generated types' freshness."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from engage.sdkcheck.npm import BUNDLE, SDK, build, npm


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sdk_generate", SDK / "scripts" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_types_match_the_event_schemas() -> None:
    generate = _generator()
    assert generate.TARGET.read_text() == generate.current(), (
        "sdk/js/src/generated/events.ts is stale: run `python sdk/js/scripts/generate.py`"
    )


def test_generator_refuses_a_schema_shape_it_does_not_know() -> None:
    generate = _generator()
    schema = {
        "oneOf": [{"$ref": "#/$defs/Odd"}],
        "$defs": {
            "Device": {"properties": {}},
            "Odd": {"properties": {"event_type": {"const": "odd"}, "payload": {"$ref": "#/$defs/OddPayload"}}},
            "OddPayload": {"properties": {"blob": {"type": "object"}}, "required": ["blob"]},
        },
    }
    try:
        generate.render(schema, set(), set())
    except ValueError as error:
        assert "teach generate.py" in str(error)
    else:
        raise AssertionError("an object-typed field was rendered without a type")


def test_npm_test_passes() -> None:
    npm("test")


def test_npm_build_writes_the_browser_bundle() -> None:
    assert build() == BUNDLE
    text = BUNDLE.read_text()
    assert "createBrowserTracker" in text and "/v1/events" in text
