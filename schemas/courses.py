"""Course data the engine knows: each course's calendar (start, end, assessments with due dates and weights).

Published on the compacted ``courses`` topic keyed by ``course_id`` (the latest calendar of a course wins);
every worker reads all of it, so "an assessment was due and the student has not submitted it" is a live
signal. A submission is matched by ``quiz_submitted.payload.quiz_id == assessment_id`` in the same course.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import Identifier


class CourseAssessment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    assessment_id: Identifier = Field(description="the quiz_id submissions of it carry")
    kind: str = Field("", max_length=32, description="e.g. TMA, CMA, Exam")
    due_on: date | None = Field(None, description="the course's local date it is due; None: no due date")
    weight: float = Field(0.0, ge=0, le=100, description="share of the final mark, percent")


class CourseCalendar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    course_id: Identifier
    starts_on: date
    ends_on: date
    assessments: list[CourseAssessment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ends_after_start(self) -> CourseCalendar:
        if self.ends_on < self.starts_on:
            raise ValueError(f"ends_on ({self.ends_on}) is before starts_on ({self.starts_on})")
        return self
