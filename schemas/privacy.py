"""Erasing one student everywhere (the right to erasure): the request and the worker's confirmation.

The request travels on the events topic, keyed by the student, as ``{"schema_version": 1, "user_id": ...,
"erase": ErasureRequest}``: the worker that owns the student handles it after every event sent before it,
deletes the record (Faust writes a tombstone to the table's changelog) and everything it holds in memory, and
confirms on the erasures topic. The warehouse rows are deleted after that (``engage.privacy``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

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
