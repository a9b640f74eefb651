"""The collector's OpenAPI 3.1 document, built from the same pydantic contracts it validates against."""

from __future__ import annotations

from typing import Any

from config.settings import Settings
from schemas.export import event_json_schema
from schemas.interventions import InterventionOutcome
from streams.collector.tracking import openapi_paths as tracking_paths
from streams.collector.tracking import openapi_schemas as tracking_schemas


def openapi_document(settings: Settings) -> dict[str, Any]:
    event = event_json_schema()
    defs = event.pop("$defs", {})
    components = {name: schema for name, schema in defs.items()}
    components["BehaviorEvent"] = event
    outcome_schema = InterventionOutcome.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(outcome_schema.pop("$defs", {}))
    components["InterventionOutcome"] = outcome_schema
    refs = {"$ref": "#/components/schemas/BehaviorEvent"}
    problem = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
        "required": ["error", "detail"],
    }
    field_error = {
        "type": "object",
        "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
    }
    outcome = {
        "type": "object",
        "properties": {
            "accepted": {"type": "array", "items": {"type": "string"}, "description": "event ids stored"},
            "duplicates": {
                "type": "array",
                "items": {"type": "string"},
                "description": "repeated ids in this batch",
            },
            "rejected": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "index": {"type": "integer"},
                        "event_id": {"type": ["string", "null"]},
                        "reason": {"type": "string"},
                        "errors": {"type": "array", "items": field_error},
                    },
                },
            },
        },
    }
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "engage collector",
            "version": "1",
            "description": "Track student behaviour events from web and mobile apps.",
        },
        "servers": [{"url": f"http://{settings.collector_host}:{settings.collector_port}"}],
        "components": {
            "schemas": {**components, **tracking_schemas(), "Problem": problem, "TrackOutcome": outcome},
            "securitySchemes": {
                "writeKey": {"type": "http", "scheme": "bearer", "description": "per-app write key"},
                "serverKey": {"type": "http", "scheme": "bearer", "description": "server key (backend only)"},
            },
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "Track a batch of events",
                    "description": (
                        "Each event is validated on its own; refused events are listed with a reason and kept "
                        "in the dead-letter topic. Send gzip with Content-Encoding: gzip. "
                        f"At most {settings.collector_max_batch_events} events and "
                        f"{settings.collector_max_body_bytes} bytes per request."
                    ),
                    "security": [{"writeKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {
                                            "type": "object",
                                            "properties": {"events": {"type": "array", "items": refs}},
                                        },
                                        {"type": "array", "items": refs},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _resp("Per-event outcome", "TrackOutcome"),
                        "400": _resp("The body is not a usable batch", "Problem"),
                        "401": _resp("Missing or unknown key", "Problem"),
                        "403": _resp("The key may not track", "Problem"),
                        "413": _resp("Body or decompressed body too large", "Problem"),
                        "503": _resp("Kafka unavailable; retry the batch", "Problem"),
                    },
                }
            },
            "/v1/interventions/outcomes": {
                "post": {
                    "summary": "Report what became of intervention requests (sent, delivered, opened, clicked...)",
                    "description": (
                        "Each outcome is validated on its own; refused ones are listed with a reason and kept in "
                        "the dead-letter topic. Needs a server key: app keys are public."
                    ),
                    "security": [{"serverKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "outcomes": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/InterventionOutcome"},
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "accepted count and refused outcomes with reasons"},
                        "400": _resp("The body is not a batch of outcomes", "Problem"),
                        "401": _resp("Missing or unknown key", "Problem"),
                        "403": _resp("The key may not act (write keys cannot)", "Problem"),
                        "503": _resp("Kafka unavailable; retry the batch", "Problem"),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
            "/readyz": {
                "get": {
                    "summary": "Readiness (Kafka producer up)",
                    "responses": {"200": {"description": "ready"}},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text"}}}},
            **tracking_paths(),
        },
    }
    return _rewrite_refs(doc)


def _resp(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _rewrite_refs(doc: dict[str, Any]) -> dict[str, Any]:
    """pydantic's ``#/$defs/`` references as OpenAPI's ``#/components/schemas/``, everywhere in ``doc``."""
    return {k: _rewritten(k, v) for k, v in doc.items()}


def _rewritten(key: str, value: Any) -> Any:
    if key == "$ref" and isinstance(value, str):
        return value.replace("#/$defs/", "#/components/schemas/")
    if isinstance(value, dict):
        return _rewrite_refs(value)
    if isinstance(value, list):
        return [_rewritten("", v) for v in value]
    return value
