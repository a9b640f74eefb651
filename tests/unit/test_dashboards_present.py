"""The at-risk list's parameters (bad input gets a clear message), pagination and figures in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards.present import BadRequest, ListQuery, ago, pages, trend_words

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)


def test_defaults_and_the_named_querys_parameters() -> None:
    q = ListQuery.parse({})
    assert (q.page, q.size, q.sort, q.dir, q.tier) == (1, 50, "risk", "desc", "")
    params = ListQuery.parse({"page": "3", "size": "20", "tier": "high", "tz": " Europe/Berlin "}).page_params(NOW)
    assert params == {"tier": "high", "course": "", "tz": "Europe/Berlin", "sort": "risk", "dir": "desc",
                      "offset": "40", "limit": "20", "now": "2026-11-12 10:00:00"}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"page": "0"}, "page must be a whole number from 1"),
        ({"size": "500"}, "size must be a whole number from 1 to 200; got '500'"),
        ({"size": "1e3"}, "size must be a whole number"),
        ({"sort": "risk; DROP"}, "sort must be one of risk, last_seen, user"),
        ({"dir": "up"}, "dir must be one of desc, asc"),
        ({"tier": "severe"}, "tier must be one of empty, critical, high, medium, low, minimal"),
        ({"course": "c" * 101}, "course is longer than 100 characters"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(args: dict[str, str], message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        ListQuery.parse(args)


def test_urls_keep_the_filters_and_flip_the_sort() -> None:
    q = ListQuery.parse({"tier": "high", "page": "2"})
    assert q.url(page=3) == "/admin/at-risk?page=3&tier=high"
    assert q.sort_url("risk") == "/admin/at-risk?dir=asc&tier=high"  # current sort: flipped, back to page 1
    assert q.sort_url("user") == "/admin/at-risk?sort=user&dir=asc&tier=high"
    assert pages(0, 50) == 1 and pages(101, 50) == 3


def test_trend_and_time_in_words() -> None:
    assert trend_words(12.4) == ("↑", "up 12")
    assert trend_words(-3.5) == ("↓", "down 3.5")
    assert trend_words(0.2) == ("→", "steady")
    assert trend_words(float("nan")) == ("", "no earlier score")
    assert ago((NOW - timedelta(hours=3)).isoformat(), NOW) == "3 h ago"
    assert ago(NOW - timedelta(days=12), NOW) == "12 days ago"
    assert ago("1970-01-01T00:00:00+00:00", NOW) == "never" and ago(None, NOW) == "never"
