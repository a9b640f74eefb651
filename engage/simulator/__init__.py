"""A deterministic synthetic student population and the behaviour events it produces.

Pure Python, no I/O except writing the ground truth: the CLI decides where the events go.
"""

from engage.simulator.behaviour import (
    Event,
    Timeline,
    activity_probability,
    events_for_day,
    iter_event_days,
)
from engage.simulator.ground_truth import GroundTruth, ground_truth, write_ground_truth
from engage.simulator.population import (
    ARCHETYPES,
    COURSES,
    DEFAULT_START,
    ZONES,
    Archetype,
    Course,
    DeviceProfile,
    Population,
    Student,
    last_finished_day,
)

__all__ = [
    "ARCHETYPES",
    "COURSES",
    "DEFAULT_START",
    "ZONES",
    "Archetype",
    "Course",
    "DeviceProfile",
    "Event",
    "GroundTruth",
    "Population",
    "Student",
    "Timeline",
    "activity_probability",
    "events_for_day",
    "ground_truth",
    "iter_event_days",
    "last_finished_day",
    "write_ground_truth",
]
