"""Erasing one student everywhere (the right to erasure): the request, the worker's confirmation, the report.

The request travels on the events topic, keyed by the student, as ``{"schema_version": 1, "user_id": ...,
"erase": ErasureRequest}``: the worker that owns the student handles it after every event sent before it,
deletes the record (Faust writes a tombstone to the table's changelog) and everything it holds in memory, and
confirms on the erasures topic (``ErasureDone``). The same request also goes on the erasure-requests topic,
keyed by its id, for the sinks service: after the confirmation it deletes the warehouse rows and publishes an
``ErasureReport`` on the erasure-reports topic (``streams.erasure`` sends and reads, ``sinks.erasure`` deletes).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    erasure_id: str
    user_id: Identifier
    requested_at: AwareDatetime
    requested_by: str  # the app (API key owner) or "cli"


class ErasureDone(BaseModel):
    """A worker's confirmation that it erased a student's state (``found``: it had any). It names the request,
    not the student: the audit trail keeps no trace of whom it erased."""

    schema_version: Literal[1] = 1
    erasure_id: str
    erased_at: AwareDatetime
    found: bool


class ErasureReport(BaseModel):
    """What the sinks service found and deleted for one erasure, and what was left when it counted again.

    Like the confirmation it names the request, not the student. ``error``: why it stopped before counting (no
    worker confirmed in time, sinks behind, ClickHouse refused...); the erasure is then failed and may be asked
    for again (every step is idempotent)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    erasure_id: str
    reported_at: AwareDatetime
    worker_had_state: bool = False
    rows_deleted: dict[str, int] = Field(default_factory=dict)  # per warehouse table, found before deleting
    rows_left: dict[str, int] = Field(default_factory=dict)  # per warehouse table, counted after
    seconds: float = 0.0  # from the sinks service taking the request to its report
    error: str | None = None

    @property
    def complete(self) -> bool:
        return self.error is None and not any(self.rows_left.values())

    @property
    def status(self) -> str:
        """``complete`` or ``failed: why``, as ``GET /v1/erasures/{id}`` answers."""
        if self.error is not None:
            return f"failed: {self.error}"
        return "complete" if self.complete else f"failed: rows left {self.rows_left}"
