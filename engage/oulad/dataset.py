"""Read a directory in the official OULAD CSV layout into typed rows.

Accepts the full public download (one ``studentVle.csv``) and per-presentation clickstream files
(``studentVle_<MODULE>_<PRESENTATION>.csv.gz``, as in ``../shared/datasets/oulad``). All days are integers
relative to the presentation's start; ``'?'`` means missing.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO

MISSING = "?"
WITHDRAWN = "Withdrawn"


def _int(value: str) -> int | None:
    return None if value in (MISSING, "") else int(float(value))


def _float(value: str) -> float | None:
    return None if value in (MISSING, "") else float(value)


@dataclass(frozen=True)
class Presentation:
    module: str
    presentation: str  # e.g. 2013J: year, then B (starts in February) or J (starts in October)
    length_days: int

    @property
    def key(self) -> str:
        return f"{self.module}-{self.presentation}"

    @property
    def start(self) -> date:
        """Day 0. The dataset gives only the month: B presentations start in February, J ones in October."""
        year, term = int(self.presentation[:4]), self.presentation[4:]
        if term not in ("B", "J"):
            raise ValueError(f"presentation {self.presentation!r}: expected a year then B or J, e.g. 2013J")
        return date(year, 2 if term == "B" else 10, 1)


@dataclass(frozen=True)
class Assessment:
    id: int
    presentation: str  # Presentation.key
    kind: str  # TMA (tutor marked), CMA (computer marked), Exam
    due_day: int | None  # None for most exams: at the end of the presentation
    weight: float


@dataclass
class Enrolment:
    """One student in one presentation: a retake is another enrolment (and another product user)."""

    presentation: str  # Presentation.key
    student: int
    final_result: str = ""
    registered_day: int | None = None
    unregistered_day: int | None = None

    @property
    def user_id(self) -> str:
        return f"oulad-{self.presentation}-{self.student}"

    @property
    def withdrawn(self) -> bool:
        return self.final_result == WITHDRAWN


@dataclass(frozen=True)
class Submission:
    assessment_id: int
    student: int
    day: int
    banked: bool  # carried over from an earlier presentation
    score: float | None


@dataclass(frozen=True, slots=True)
class Click:
    student: int
    site: int
    day: int
    clicks: int


@dataclass
class OuladDataset:
    root: Path
    presentations: dict[str, Presentation] = field(default_factory=dict)
    assessments: dict[int, Assessment] = field(default_factory=dict)
    enrolments: dict[tuple[str, int], Enrolment] = field(default_factory=dict)
    submissions: list[Submission] = field(default_factory=list)
    sites: dict[int, str] = field(default_factory=dict)  # id_site -> activity_type
    site_presentations: dict[int, str] = field(default_factory=dict)  # id_site -> the presentation key it is in

    @classmethod
    def load(cls, root: str | Path, presentations: Iterable[str] | None = None) -> OuladDataset:
        """Everything but the clickstream (read lazily by ``clicks``); ``presentations`` keeps only those keys."""
        root = Path(root)
        for name in ("courses.csv", "assessments.csv", "studentInfo.csv", "studentRegistration.csv", "vle.csv"):
            if not (root / name).exists():
                raise FileNotFoundError(f"{root} is not an OULAD directory: {name} is missing")
        wanted = set(presentations) if presentations is not None else None
        data = cls(root)
        for row in _rows(root / "courses.csv"):
            p = Presentation(row["code_module"], row["code_presentation"], int(row["module_presentation_length"]))
            if wanted is None or p.key in wanted:
                data.presentations[p.key] = p
        if wanted is not None and (unknown := wanted - set(data.presentations)):
            raise ValueError(f"unknown presentations {sorted(unknown)}; known: {sorted(_all_keys(root))}")
        for row in _rows(root / "assessments.csv"):
            key = f"{row['code_module']}-{row['code_presentation']}"
            if key in data.presentations:
                a = Assessment(
                    int(row["id_assessment"]), key, row["assessment_type"], _int(row["date"]), float(row["weight"])
                )
                data.assessments[a.id] = a
        for row in _rows(root / "studentInfo.csv"):
            key = f"{row['code_module']}-{row['code_presentation']}"
            if key in data.presentations:
                e = Enrolment(key, int(row["id_student"]), final_result=row["final_result"])
                data.enrolments[(key, e.student)] = e
        for row in _rows(root / "studentRegistration.csv"):
            e2 = data.enrolments.get((f"{row['code_module']}-{row['code_presentation']}", int(row["id_student"])))
            if e2 is not None:
                e2.registered_day = _int(row["date_registration"])
                e2.unregistered_day = _int(row["date_unregistration"])
        if (root / "studentAssessment.csv").exists():
            for row in _rows(root / "studentAssessment.csv"):
                if int(row["id_assessment"]) in data.assessments:
                    data.submissions.append(
                        Submission(
                            int(row["id_assessment"]),
                            int(row["id_student"]),
                            int(row["date_submitted"]),
                            row["is_banked"] == "1",
                            _float(row["score"]),
                        )
                    )
        for row in _rows(root / "vle.csv"):
            data.sites[int(row["id_site"])] = row["activity_type"]
            data.site_presentations[int(row["id_site"])] = f"{row['code_module']}-{row['code_presentation']}"
        return data

    def clicks(self, presentation: str) -> list[Click]:
        """One presentation's clickstream rows (several rows may share student, site and day)."""
        module, code = presentation.split("-", 1)
        split = [self.root / f"studentVle_{module}_{code}.csv{ext}" for ext in (".gz", "")]
        path = next((p for p in split if p.exists()), None)
        rows: Iterator[dict[str, str]]
        if path is not None:
            rows = _rows(path)
        else:
            whole = next(
                (p for p in (self.root / "studentVle.csv.gz", self.root / "studentVle.csv") if p.exists()), None
            )
            if whole is None:
                raise FileNotFoundError(f"no clickstream for {presentation} in {self.root}")
            rows = (r for r in _rows(whole) if r["code_module"] == module and r["code_presentation"] == code)
        return [Click(int(r["id_student"]), int(r["id_site"]), int(r["date"]), int(r["sum_click"])) for r in rows]


def _open(path: Path) -> IO[str]:
    return gzip.open(path, "rt", newline="") if path.suffix == ".gz" else path.open(newline="")


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with _open(path) as f:
        yield from csv.DictReader(f)


def _all_keys(root: Path) -> set[str]:
    return {f"{r['code_module']}-{r['code_presentation']}" for r in _rows(root / "courses.csv")}
