"""JSON Schema of the contracts, for client SDK authors (``engage schemas export``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.events import EVENT_ADAPTER
from schemas.interventions import InterventionOutcome, InterventionRequest
from schemas.messages import DeadLetter, EventBatch, PartitionBatch
from schemas.risk import RiskUpdate
from schemas.streaks import StreakMilestone


def event_json_schema() -> dict[str, Any]:
    schema = EVENT_ADAPTER.json_schema(ref_template="#/$defs/{model}")
    schema["title"] = "BehaviorEvent"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def all_schemas() -> dict[str, dict[str, Any]]:
    models: dict[str, type[BaseModel]] = {
        "EventBatch": EventBatch,
        "PartitionBatch": PartitionBatch,
        "DeadLetter": DeadLetter,
        "RiskUpdate": RiskUpdate,
        "InterventionRequest": InterventionRequest,
        "InterventionOutcome": InterventionOutcome,
        "StreakMilestone": StreakMilestone,
    }
    out = {"BehaviorEvent": event_json_schema()}
    out.update({name: m.model_json_schema() for name, m in models.items()})
    return out


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in all_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
