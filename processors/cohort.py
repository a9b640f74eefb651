"""Where a student stands among the other students of their course: percentile ranks of activity and work.

Absolute numbers do not travel between courses: 90 minutes a week is a lot in one module and little in
another, and a model trained on some courses is used on others. A student's *rank* among the students of the
same course (0 = least, 0.5 = the median student, 1 = most) means the same everywhere. On real students
(OULAD) the standing against the course's median student carried much of the signal for withdrawal.

``CourseCohorts`` keeps, per course, the latest values of every student scored in it, and answers a student's
mid-rank percentile among them. It is plain in-memory state, rebuilt as students are re-scored (every
student is re-scored at least daily), so after a restart ranks are missing until ``min_peers`` students of
a course have been scored again. With several workers each ranks among its own share of the course's
students (a hash sample of them), an estimate of the same rank.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

# The values ranked, in this order (``CohortValues``).
METRICS: tuple[str, ...] = ("activity_7d", "activity_30d", "submitted_share", "score")


@dataclass(frozen=True, slots=True)
class CohortValues:
    """One student's values that are ranked within the course (None: not applicable yet, not ranked)."""

    activity_7d: float
    activity_30d: float
    submitted_share: float | None  # share of the course's past-due assessments the student submitted
    score: float | None  # average assessment score in the student's current courses, percent

    def as_tuple(self) -> tuple[float | None, ...]:
        return (self.activity_7d, self.activity_30d, self.submitted_share, self.score)


@dataclass(frozen=True, slots=True)
class CohortRanks:
    """Percentile ranks (0..1) of a student's ``CohortValues`` in their course, and how many peers they had."""

    peers: int = 0
    activity_7d: float | None = None
    activity_30d: float | None = None
    submitted_share: float | None = None
    score: float | None = None


@dataclass
class _Course:
    latest: dict[str, tuple[float | None, ...]] = field(default_factory=dict)
    sorted_values: list[list[float]] = field(default_factory=list)
    changes: int = 0  # updates since sorted_values was built


def mid_rank(sorted_values: list[float], value: float) -> float:
    """Share of values below ``value`` plus half the share equal to it: 0.5 for the median, ties share a rank."""
    below = bisect_left(sorted_values, value)
    equal = bisect_right(sorted_values, value) - below
    return (below + 0.5 * equal) / len(sorted_values)


class CourseCohorts:
    """Per course, every scored student's latest values; ranks against a copy sorted now and then.

    Re-sorting on every update would cost O(n log n) per student; the sorted copy is rebuilt once the course
    has seen ``rebuild_share`` of its size in updates (at least ``rebuild_min``), so the amortised cost per
    student is a few microseconds and a rank lags the newest values by at most that share of students.
    """

    def __init__(self, min_peers: int = 20, rebuild_share: float = 0.05, rebuild_min: int = 20) -> None:
        self.min_peers = min_peers
        self.rebuild_share = rebuild_share
        self.rebuild_min = rebuild_min
        self._courses: dict[str, _Course] = {}
        self._course_of: dict[str, str] = {}  # user -> the course they are ranked in

    def __len__(self) -> int:
        return len(self._course_of)

    def observe(self, user_id: str, course_id: str | None, values: CohortValues | None) -> CohortRanks:
        """Record the student's current values in their course (None: no current course) and rank them."""
        previous = self._course_of.get(user_id)
        if previous is not None and previous != course_id:
            self.forget(user_id)
        if course_id is None or values is None:
            return CohortRanks()
        course = self._courses.setdefault(course_id, _Course())
        course.latest[user_id] = values.as_tuple()
        self._course_of[user_id] = course_id
        course.changes += 1
        if not course.sorted_values or course.changes >= max(self.rebuild_min, self.rebuild_share * len(course.latest)):
            self._rebuild(course)
        return self._ranks(course, values)

    def forget(self, user_id: str) -> None:
        """Drop a student from their course's cohort (unenrolled, moved course, or deleted)."""
        course_id = self._course_of.pop(user_id, None)
        course = self._courses.get(course_id) if course_id is not None else None
        if course is not None and course.latest.pop(user_id, None) is not None:
            course.changes += 1
            if not course.latest:
                del self._courses[course_id]  # type: ignore[arg-type]

    def _rebuild(self, course: _Course) -> None:
        columns: list[list[float]] = [[] for _ in METRICS]
        for row in course.latest.values():
            for column, value in zip(columns, row, strict=True):
                if value is not None:
                    column.append(value)
        for column in columns:
            column.sort()
        course.sorted_values = columns
        course.changes = 0

    def _ranks(self, course: _Course, values: CohortValues) -> CohortRanks:
        peers = len(course.latest)
        if peers < self.min_peers:
            return CohortRanks(peers=peers)
        ranks: list[float | None] = []
        for column, value in zip(course.sorted_values, values.as_tuple(), strict=True):
            enough = value is not None and len(column) >= self.min_peers
            ranks.append(mid_rank(column, value) if enough else None)  # type: ignore[arg-type]
        return CohortRanks(peers, *ranks)
