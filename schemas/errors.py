"""Turn pydantic validation errors into short sentences a client developer can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schemas.events import EVENT_TYPES
from schemas.messages import FieldError

_MAX_INPUT_REPR = 80
KNOWN_EVENT_TYPES = frozenset(EVENT_TYPES)


def _location(loc: tuple[int | str, ...], event_types: frozenset[str]) -> list[str]:
    # The discriminated union inserts the event type tag into locations; the client never wrote that.
    return [str(p) for p in loc if not (isinstance(p, str) and p in event_types)]


def _joined(parts: list[str]) -> str:
    return ".".join(parts) or "(event)"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."


def describe(exc: ValidationError, event_types: frozenset[str] = KNOWN_EVENT_TYPES) -> list[FieldError]:
    out: list[FieldError] = []
    for err in exc.errors(include_url=False):
        parts = _location(tuple(err["loc"]), event_types)
        field = _joined(parts)
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "union_tag_invalid":
            tag = err.get("input", {}).get("event_type") if isinstance(err.get("input"), dict) else None
            msg = f"unknown event_type {tag!r}; expected one of: {', '.join(sorted(event_types))}"
            field = _joined([*parts, "event_type"])
        elif kind == "union_tag_not_found":
            msg = "event_type is missing"
            field = _joined([*parts, "event_type"])
        elif kind == "missing":
            msg = "is required"
        elif kind == "extra_forbidden":
            msg = "is not a known field (check the spelling; unknown fields are refused, not ignored)"
        elif kind in ("model_type", "dict_type", "model_attributes_type") and field == "(event)":
            msg = f"an event must be a JSON object, got {type(err.get('input')).__name__}"
        elif "input" in err and kind not in ("value_error", "assertion_error"):
            msg = f"{msg} (got {_shown(err['input'])})"
        out.append(FieldError(field=field, message=msg))
    return out


def summary(errors: list[FieldError]) -> str:
    """One line: 'payload.score: ...; platform: ...'."""
    return "; ".join(f"{e.field}: {e.message}" for e in errors)
