"""Turn pydantic validation errors into short sentences a client developer can act on."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from schemas.events import EVENT_TYPES
from schemas.messages import FieldError

_MAX_INPUT_REPR = 80
MAX_ERRORS = 20  # per input: an object with 100k unknown keys gets a reason of a few lines, not megabytes
KNOWN_EVENT_TYPES = frozenset(EVENT_TYPES)


def _location(loc: tuple[int | str, ...], event_types: frozenset[str]) -> list[str]:
    # The discriminated union inserts the event type tag into locations; the client never wrote that.
    return [_printable(str(p)) for p in loc if not (isinstance(p, str) and p in event_types)]


def _printable(name: str) -> str:
    """A location part as the client wrote it, unless it is an unknown key that would garble a reason or a log
    line (control or bidi characters, NUL, newlines) or bloat it: then escaped and shortened."""
    if name.isprintable() and len(name) <= _MAX_INPUT_REPR:
        return name
    text = repr(name)[1:-1] if not name.isprintable() else name
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."


def _joined(parts: list[str]) -> str:
    return ".".join(parts) or "(event)"


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:  # JSON nested ~1000 levels deep (orjson reads up to 1024)
        return f"a {type(value).__name__} nested too deeply to show"
    return text if len(text) <= _MAX_INPUT_REPR else text[: _MAX_INPUT_REPR - 3] + "..."


def describe(exc: ValidationError, event_types: frozenset[str] = KNOWN_EVENT_TYPES) -> list[FieldError]:
    out: list[FieldError] = []
    errors = exc.errors(include_url=False)
    for err in errors[:MAX_ERRORS]:
        parts = _location(tuple(err["loc"]), event_types)
        field = _joined(parts)
        kind = err["type"]
        msg = str(err["msg"]).removeprefix("Value error, ")
        if kind == "union_tag_invalid":
            tag = err.get("input", {}).get("event_type") if isinstance(err.get("input"), dict) else None
            msg = f"unknown event_type {_shown(tag)}; expected one of: {', '.join(sorted(event_types))}"
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
    if len(errors) > MAX_ERRORS:
        out.append(FieldError(field="(event)", message=f"{len(errors) - MAX_ERRORS} more problems not listed"))
    return out


def summary(errors: list[FieldError]) -> str:
    """One line: 'payload.score: ...; platform: ...'."""
    return "; ".join(f"{e.field}: {e.message}" for e in errors)
