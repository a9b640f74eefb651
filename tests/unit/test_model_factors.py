"""The trained model's factors in words: a standing in the course is said as a place in it."""

from __future__ import annotations

import math

import pytest

from models.features import FEATURES
from models.lightgbm_model import COURSE_RANKS, course_place, describe


def test_every_course_rank_the_factors_name_is_a_model_feature() -> None:
    assert set(COURSE_RANKS) <= set(FEATURES)


@pytest.mark.parametrize(
    ("rank", "place"),
    [
        (0.0, "in the bottom 10 % of their course"),
        (0.099, "in the bottom 10 % of their course"),
        (0.10, "in the bottom quarter of their course"),
        (0.30, "below their course's median"),
        (0.50, "at or above their course's median"),
        (0.75, "in the top quarter of their course"),
        (0.90, "in the top 10 % of their course"),
        (1.0, "in the top 10 % of their course"),
    ],
)
def test_a_rank_is_a_place_in_the_course(rank: float, place: str) -> None:
    assert course_place(rank) == place


def test_a_course_rank_factor_reads_as_a_place_with_its_percentile() -> None:
    assert describe("course_activity_rank_7d", 0.06) == (
        "time on the platform in the last 7 days: in the bottom 10 % of their course (percentile 6)"
    )
    assert describe("course_score_rank", math.nan) == "assessment scores: unknown"


def test_other_features_keep_their_name_and_value() -> None:
    assert describe("days_since_last_login", 9.0) == "days since last login: 9"
    assert describe("logins_7d", 0.5) == "logins (7 days): 0.50"
