"""Unit tests for the ClickHouse columns derived from the event contract and for the Kafka topic catalogue."""

from __future__ import annotations

import dataclasses
import importlib
import re
from datetime import date
from typing import Any, Literal

import pytest
from pydantic import AwareDatetime, BaseModel

import schemas.columns as columns_module
from schemas.columns import Column, behavior_event_columns
from schemas.events import EVENT_TYPES, PAYLOAD_MODELS, EventEnvelope, parse_event
from schemas.topics import DAY_MS, TopicCatalogue, TopicSpec, catalogue

# Words that are keywords or common function names in ClickHouse SQL and would need quoting everywhere.
RESERVED_LOOKING = {
    "format",
    "select",
    "from",
    "where",
    "order",
    "group",
    "by",
    "limit",
    "table",
    "database",
    "default",
    "index",
    "key",
    "settings",
    "partition",
    "primary",
    "final",
    "sample",
    "array",
    "join",
    "as",
    "on",
    "with",
    "values",
    "date",
    "datetime",
    "timestamp",
    "interval",
    "all",
    "any",
    "and",
    "or",
    "not",
    "in",
    "user",
    "type",
    "case",
    "when",
    "then",
    "else",
    "end",
    "if",
    "null",
    "left",
    "right",
    "offset",
}


@pytest.fixture(scope="module")
def cols() -> list[Column]:
    return behavior_event_columns()


@pytest.fixture(scope="module")
def by_name(cols) -> dict[str, Column]:
    return {c.name: c for c in cols}


def is_payload_column(col: Column) -> bool:
    return col.path[0] == "payload" and col.kind != "json"


def balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def resolve(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


# ------------------------------------------------------------------------------------------------------
# behavior_event_columns()
# ------------------------------------------------------------------------------------------------------


def test_column_names_are_unique(cols):
    names = [c.name for c in cols]
    assert len(names) == len(set(names))


def test_core_columns_are_present(by_name):
    assert {"event_id", "user_id", "event_time", "event_type", "payload_json"} <= set(by_name)
    assert by_name["event_time"].ch_type == "DateTime('UTC')"
    assert by_name["event_type"].ch_type == "String"
    assert by_name["payload_json"].kind == "json"
    assert by_name["payload_json"].path == ("payload",)
    assert by_name["payload_json"].expr == "visitParamExtractRaw(event_json, 'payload')"
    # The sort key is computed exactly in Python, not extracted by ClickHouse.
    assert by_name["event_time"].expr is None and by_name["tz_offset_minutes"].expr is None


def test_column_names_are_plain_identifiers(cols):
    for col in cols:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", col.name), col.name


def test_no_reserved_looking_names(cols):
    assert not {c.name for c in cols} & RESERVED_LOOKING


def test_types_are_well_formed(cols):
    for col in cols:
        assert balanced(col.ch_type), col
        assert col.kind in {"str", "int", "float", "bool", "datetime", "json", "date", "tz_offset"}, col


def test_no_nullable_or_low_cardinality_and_every_other_column_is_extracted(cols):
    payload = [c for c in cols if is_payload_column(c)]
    assert payload, "the payload fields must become columns"
    for col in cols:
        assert "Nullable" not in col.ch_type and "LowCardinality" not in col.ch_type, col
        if col.name not in ("event_time", "tz_offset_minutes"):
            assert col.expr is not None and "event_json" in col.expr, col
            assert f"'{col.path[-1]}'" in col.expr, col


def test_every_payload_field_has_a_column(by_name):
    for event_type, model in PAYLOAD_MODELS.items():
        for field in model.model_fields:
            assert field in by_name, (event_type, field)
            assert by_name[field].path == ("payload", field)


def test_every_envelope_field_has_a_column(by_name):
    for field, info in EventEnvelope.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            for sub in info.annotation.model_fields:
                assert f"{field}_{sub}" in by_name
                assert by_name[f"{field}_{sub}"].path == (field, sub)
        else:
            assert field in by_name, field
            assert by_name[field].path == (field,)


@pytest.mark.parametrize(
    ("name", "ch_type", "kind"),
    [
        ("score", "Float64", "float"),
        ("attempt", "Int64", "int"),
        ("passed", "UInt8", "bool"),
        ("content_format", "String", "str"),
        ("lesson_id", "String", "str"),
        ("schema_version", "UInt8", "int"),
        ("platform", "String", "str"),
        ("device_type", "String", "str"),
        ("received_at", "DateTime('UTC')", "datetime"),
        ("session_id", "String", "str"),
        ("timezone", "String", "str"),
    ],
)
def test_type_mapping(by_name, name, ch_type, kind):
    assert (by_name[name].ch_type, by_name[name].kind) == (ch_type, kind)


def test_shared_fields_have_one_column(cols):
    # duration_seconds is declared on three payloads with the same type: one column, no error
    assert [c.name for c in cols].count("duration_seconds") == 1


def test_layout_derived_first_payload_sorted_json_last(cols):
    assert [c.name for c in cols[:3]] == ["event_time", "tz_offset_minutes", "event_type"]
    assert cols[-1].name == "payload_json"
    payload_names = [c.name for c in cols if is_payload_column(c)]
    assert payload_names == sorted(payload_names)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_column_paths_resolve_in_a_dumped_event(make_event, cols, event_type):
    dumped = parse_event(make_event(event_type)).model_dump(mode="json")
    own = set(PAYLOAD_MODELS[event_type].model_fields)
    for col in cols:
        if is_payload_column(col) and col.path[1] not in own:
            assert col.path[1] not in dumped["payload"]
            continue
        resolve(dumped, col.path)  # KeyError = a column the sink could not fill


def test_columns_are_deterministic():
    assert behavior_event_columns() == behavior_event_columns()


# ------------------------------------------------------------------------------------------------------
# The builder on synthetic payload models
# ------------------------------------------------------------------------------------------------------


class _CountAsInt(BaseModel):
    amount: int
    note: str = ""


class _CountAsFloat(BaseModel):
    amount: float


class _SameAmount(BaseModel):
    amount: int | None = None


class _ClashesWithEnvelope(BaseModel):
    user_id: str


class _WithDates(BaseModel):
    happened_at: AwareDatetime
    day: date
    grade: Literal["a", "b"]


def test_same_field_with_two_types_raises(monkeypatch):
    monkeypatch.setattr(columns_module, "PAYLOAD_MODELS", {"one": _CountAsInt, "two": _CountAsFloat})
    with pytest.raises(TypeError) as info:
        columns_module.behavior_event_columns()
    message = str(info.value)
    assert "'amount'" in message
    assert "Int64" in message and "Float64" in message


def test_same_field_with_the_same_type_is_one_column(monkeypatch):
    monkeypatch.setattr(columns_module, "PAYLOAD_MODELS", {"one": _CountAsInt, "two": _SameAmount})
    names = [c.name for c in columns_module.behavior_event_columns()]
    assert names.count("amount") == 1
    assert "note" in names


def test_payload_field_clashing_with_envelope_raises(monkeypatch):
    monkeypatch.setattr(columns_module, "PAYLOAD_MODELS", {"one": _ClashesWithEnvelope})
    with pytest.raises(TypeError, match="user_id"):
        columns_module.behavior_event_columns()


def test_synthetic_date_and_literal_payload_types(monkeypatch):
    monkeypatch.setattr(columns_module, "PAYLOAD_MODELS", {"one": _WithDates})
    found = {c.name: c for c in columns_module.behavior_event_columns()}
    assert (found["day"].ch_type, found["day"].kind) == ("Date", "date")
    assert (found["grade"].ch_type, found["grade"].kind) == ("String", "str")
    assert found["happened_at"].kind == "datetime"


def test_datetime_payload_field_gets_a_valid_type(monkeypatch):
    monkeypatch.setattr(columns_module, "PAYLOAD_MODELS", {"one": _WithDates})
    found = {c.name: c for c in columns_module.behavior_event_columns()}
    assert found["happened_at"].ch_type == "DateTime('UTC')"
    assert found["happened_at"].expr == (
        "parseDateTimeBestEffortOrZero("
        "visitParamExtractString(visitParamExtractRaw(event_json, 'payload'), 'happened_at'))"
    )


class _ReusesDeviceKey(BaseModel):
    os: str


def test_json_key_repeated_anywhere_in_the_event_raises(monkeypatch):
    # visitParamExtract matches a key at any depth: a payload "os" would be confused with device.os
    monkeypatch.setattr(columns_module, "PAYLOAD_MODELS", {"one": _ReusesDeviceKey})
    with pytest.raises(TypeError, match="'os'"):
        columns_module.behavior_event_columns()


def test_real_payload_models_have_no_type_conflicts():
    # the real contract must build (this is the test the events module comment refers to)
    seen: dict[str, str] = {}
    for col in behavior_event_columns():
        assert seen.setdefault(col.name, col.ch_type) == col.ch_type


# ------------------------------------------------------------------------------------------------------
# Topics
# ------------------------------------------------------------------------------------------------------


def test_topic_names_are_distinct_and_versioned():
    topics = catalogue().all()
    names = [t.name for t in topics]
    # all() lists every topic of the catalogue, once
    specs = [f for f in dataclasses.fields(TopicCatalogue) if f.type in ("TopicSpec", TopicSpec)]
    assert len(names) == len(set(names)) == len(specs)
    assert catalogue("tenant-a").prefix == "tenant-a"
    for name in names:
        assert re.fullmatch(r"engage\.[a-z][a-z0-9-]*\.v[0-9]+", name), name


def test_topic_names_are_valid_kafka_names():
    for topic in catalogue(prefix="tenant_a-prod").all():
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", topic.name), topic.name
        assert topic.name.startswith("tenant_a-prod.")


def test_prefix_and_partitions_are_applied():
    cat = catalogue(prefix="test-run-7", partitions=12)
    assert cat.events.name == "test-run-7.events.v1"
    assert cat.dead_letters.name == "test-run-7.dead-letters.v1"
    assert cat.events.partitions == 12
    assert cat.dead_letters.partitions >= 1


@pytest.mark.parametrize("topic", catalogue().all(), ids=lambda t: t.name)
def test_config_has_cleanup_policy_and_retention(topic):
    cfg = topic.config()
    assert cfg["cleanup.policy"] in {"delete", "compact", "compact,delete", "delete,compact"}
    assert int(cfg["retention.ms"]) == topic.retention_ms
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in cfg.items())
    assert int(cfg["max.message.bytes"]) > 0


def test_retention_values():
    cat = catalogue()
    assert cat.events.config()["retention.ms"] == str(7 * DAY_MS)
    assert cat.dead_letters.config()["retention.ms"] == str(30 * DAY_MS)
    # dead letters are kept longer than the events they rescue, so nothing is lost before someone looks
    assert cat.dead_letters.retention_ms > cat.events.retention_ms


def test_keys_and_contracts():
    cat = catalogue()
    assert cat.events.key == "user_id"
    for topic in cat.all():
        module_name, _, class_name = topic.contract.rpartition(".")
        model = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(model, BaseModel)
    assert cat.events.contract.endswith(".EventBatch")
    assert cat.dead_letters.contract.endswith(".DeadLetter")


def test_extra_config_is_merged_and_can_override():
    spec = TopicSpec(
        "x.v1", 1, cleanup_policy="compact", retention_ms=-1, extra_config={"segment.ms": "9", "max.message.bytes": "7"}
    )
    assert spec.config() == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "segment.ms": "9",
        "max.message.bytes": "7",
    }


def test_catalogue_calls_do_not_share_mutable_config():
    first, second = catalogue(), catalogue()
    first.events.extra_config["max.message.bytes"] = "1"
    assert second.events.config()["max.message.bytes"] == "4194304"
