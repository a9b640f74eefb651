"""Send-time optimisation: the decayed weekday x hour histogram, its compact form, the next best slot, the bench."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from typer.testing import CliRunner

from engage.bench.sendtime import POLICIES, SendTimeBenchConfig, measure_sendtime
from engage.cli import app
from engage.simulator import ARCHETYPES
from processors.notify.sendtime import (
    BUCKETS,
    MAX_JSON_BYTES,
    ActivityHistogram,
    SendTimeConfig,
    cohort_profile,
    local_hour,
    next_best_slot,
)
from processors.policy import QuietHours

NY, BERLIN, KOLKATA = ZoneInfo("America/New_York"), ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Kolkata")
HALF_LIFE = 28.0
QUIET = QuietHours()  # 21:00-08:00, as deploy/policy/default.json


def habit(zone: ZoneInfo, first_day: datetime, days: int, *hours_minutes: tuple[int, int]) -> ActivityHistogram:
    """A student active every day at the given local times, for ``days`` days from ``first_day``."""
    histogram = ActivityHistogram()
    for d in range(days):
        day = first_day + timedelta(days=d)
        for hour, minute in hours_minutes:
            histogram.observe(datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).timestamp(), zone, 28)
    return histogram


def local(at: datetime, zone: ZoneInfo) -> tuple[int, int]:
    as_local = at.astimezone(zone)
    return as_local.hour, as_local.minute


SEPT = datetime(2024, 9, 2)  # a Monday
NOW = datetime(2024, 10, 1, 9, 0, tzinfo=NY)  # a Tuesday morning after four weeks of habit


# -- the histogram --------------------------------------------------------------------------------------------


def test_buckets_are_local_weekday_times_hour() -> None:
    monday_0030 = datetime(2024, 9, 2, 0, 30, tzinfo=NY).timestamp()
    assert local_hour(monday_0030, NY)[0] == 0
    sunday_2359 = datetime(2024, 9, 8, 23, 59, tzinfo=BERLIN).timestamp()
    assert local_hour(sunday_2359, BERLIN)[0] == BUCKETS - 1
    # the same instant is a different bucket in another zone
    assert local_hour(monday_0030, BERLIN)[0] == 6


def test_an_hour_counts_once_however_many_events_it_holds() -> None:
    h = ActivityHistogram()
    base = datetime(2024, 9, 2, 19, 5, tzinfo=NY).timestamp()
    assert h.observe(base, NY, HALF_LIFE)
    assert not h.observe(base + 600, NY, HALF_LIFE)  # 19:15, same local hour
    assert h.observe(base + 3600, NY, HALF_LIFE)  # 20:05
    assert not h.observe(base + 1200, NY, HALF_LIFE)  # late, but 19:xx already counted
    assert h.weights == {19: pytest.approx(2 ** (-1 / (28 * 24))), 20: 1.0}  # 19:xx is an hour older


def test_late_events_count_within_a_week_and_not_beyond() -> None:
    h = ActivityHistogram()
    now = datetime(2024, 9, 20, 12, 0, tzinfo=NY).timestamp()
    h.observe(now, NY, HALF_LIFE)
    assert h.observe(now - 6 * 86_400, NY, HALF_LIFE)  # six days late: counted, decayed
    assert not h.observe(now - 7 * 86_400 - 3600, NY, HALF_LIFE)  # more than 168 local hours late: history
    assert sum(h.weights.values()) == pytest.approx(1 + 2 ** (-6 / 28))


def test_the_order_events_arrive_in_does_not_matter() -> None:
    rng = random.Random(5)
    start = datetime(2024, 9, 2, tzinfo=BERLIN).timestamp()
    times = [start + rng.random() * 5 * 86_400 for _ in range(200)]
    in_order, shuffled = ActivityHistogram(), ActivityHistogram()
    for t in sorted(times):
        in_order.observe(t, BERLIN, HALF_LIFE)
    rng.shuffle(times)
    for t in times:
        shuffled.observe(t, BERLIN, HALF_LIFE)
    assert in_order.weights.keys() == shuffled.weights.keys()
    for bucket, weight in in_order.weights.items():
        assert shuffled.weights[bucket] == pytest.approx(weight, rel=1e-9)
    assert (in_order.seen_top, in_order.seen_mask) == (shuffled.seen_top, shuffled.seen_mask)


def test_weights_halve_every_half_life() -> None:
    h = ActivityHistogram()
    first = datetime(2024, 9, 2, 10, 0, tzinfo=UTC)
    h.observe(first.timestamp(), UTC, HALF_LIFE)
    later = first + timedelta(days=28)
    h.observe(later.timestamp(), UTC, HALF_LIFE)
    assert h.weights[10] == pytest.approx(1.5) and len(h.weights) == 1  # the same bucket four weeks on: 0.5 + 1
    h.observe((later + timedelta(hours=1)).timestamp(), UTC, HALF_LIFE)
    assert h.weights[11] == 1.0
    hour = 2 ** (-1 / (28 * 24))  # bucket 10 decayed one hour when the newest observation moved on
    assert h.mass((later + timedelta(days=28, hours=1)).timestamp(), HALF_LIFE) == pytest.approx((1.5 * hour + 1) / 2)
    # long silence: a new observation after a year prunes what decayed to nothing
    h.observe((later + timedelta(days=365)).timestamp(), UTC, HALF_LIFE)
    assert len(h.weights) == 1


def test_the_repeated_autumn_hour_is_one_local_hour() -> None:
    first = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)  # CEST, fold 0
    second = first.replace(fold=1)  # the same wall time an hour later, CET
    assert second.timestamp() - first.timestamp() == 3600
    h = ActivityHistogram()
    assert h.observe(first.timestamp(), BERLIN, HALF_LIFE)
    assert not h.observe(second.timestamp(), BERLIN, HALF_LIFE)
    assert list(h.weights) == [6 * 24 + 2]


def test_a_compact_round_trip_within_the_size_bound() -> None:
    h = habit(NY, SEPT, 28, (19, 10), (7, 40))
    data = h.to_dict()
    assert len(orjson.dumps(data)) < 400
    back = ActivityHistogram.from_dict(json.loads(json.dumps(data)))
    assert back.ref_hour == h.ref_hour and (back.seen_top, back.seen_mask) == (h.seen_top, h.seen_mask)
    assert back.weights == pytest.approx({b: round(w, 3) for b, w in h.weights.items()})
    assert ActivityHistogram.from_dict(None) == ActivityHistogram()


def test_even_a_full_histogram_stays_under_the_bound() -> None:
    """Every bucket at its largest possible weight: one observation a week forever, at a one-year half-life."""
    largest = 1 / (1 - 2 ** (-7 / 365))
    full = ActivityHistogram(ref_hour=10**7, weights=dict.fromkeys(range(BUCKETS), largest - 1e-4),
                             seen_top=10**8, seen_mask=(1 << 168) - 1)  # fmt: skip
    assert len(orjson.dumps(full.to_dict())) <= MAX_JSON_BYTES


@pytest.mark.parametrize(
    "bad",
    [
        {"v": 2, "r": 0, "w": [], "s": 0, "m": "0"},
        {"v": 1, "r": 0, "w": [3], "s": 0, "m": "0"},
        {"v": 1, "r": 0, "w": [168, 1.0], "s": 0, "m": "0"},
        {"v": 1, "r": 0, "w": [3, -1.0], "s": 0, "m": "0"},
        {"v": 1, "r": 0, "w": [3, math.inf], "s": 0, "m": "0"},
    ],
)
def test_a_damaged_histogram_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"version|pairs|bucket"):
        ActivityHistogram.from_dict(bad)


def test_events_in_the_contracts_json_form_count_only_when_active() -> None:
    h = ActivityHistogram()
    login = {"event_type": "login", "event_time": "2024-09-02T19:05:00-04:00"}
    delivered = {"event_type": "notification_delivered", "event_time": "2024-09-02T08:05:00-04:00"}
    assert h.observe_event(login, NY, HALF_LIFE) and not h.observe_event(delivered, NY, HALF_LIFE)
    assert list(h.weights) == [19]


def test_the_cohort_profile_weighs_every_student_the_same() -> None:
    busy = habit(UTC, SEPT, 28, (10, 0), (11, 0), (12, 0))
    quiet = habit(UTC, SEPT, 4, (18, 0))
    now = datetime(2024, 10, 1, tzinfo=UTC).timestamp()
    profile = cohort_profile([busy, quiet, ActivityHistogram()], now, HALF_LIFE)
    assert sum(profile) == pytest.approx(1.0)
    evening = sum(profile[d * 24 + 18] for d in range(7))
    assert evening == pytest.approx(0.5)  # one of two students with data, whatever their volume
    assert cohort_profile([], now, HALF_LIFE) == [1 / BUCKETS] * BUCKETS


# -- the next best slot ---------------------------------------------------------------------------------------


def test_the_slot_is_the_students_habitual_hour_within_the_deadline() -> None:
    h = habit(NY, SEPT, 28, (19, 10), (19, 35))
    slot = next_best_slot(h, NOW, NOW + timedelta(hours=24), QUIET, NY)
    assert local(slot.at, NY) == (19, 0) and slot.at.date() == NOW.date()
    assert slot.score > 0 and slot.now_score == 0 and slot.student_share == 1.0 and not slot.past_deadline


def test_now_when_now_is_the_best() -> None:
    h = habit(NY, SEPT, 28, (9, 10))
    slot = next_best_slot(h, NOW, NOW + timedelta(hours=24), QUIET, NY)
    assert slot.at == NOW and slot.reason == "now"


def test_quiet_hours_always_win() -> None:
    owl = habit(NY, SEPT, 28, (22, 5), (23, 30), (2, 15))  # only ever active at night
    slot = next_best_slot(owl, NOW, NOW + timedelta(hours=48), QUIET, NY)
    hour, minute = local(slot.at, NY)
    assert time(8) <= time(hour, minute) < time(21)


def test_a_deadline_inside_quiet_hours_takes_the_latest_allowed_slot_before_it() -> None:
    h = habit(NY, SEPT, 28, (21, 10))  # studies after 21:00, inside quiet hours
    now = datetime(2024, 10, 1, 17, 0, tzinfo=NY)
    slot = next_best_slot(h, now, datetime(2024, 10, 1, 23, 0, tzinfo=NY), QUIET, NY)
    assert local(slot.at, NY) == (20, 45)  # the last quarter hour before quiet hours: 45 minutes of the 21:00 hour


def test_with_no_allowed_instant_before_the_deadline_quiet_hours_still_win() -> None:
    night = datetime(2024, 10, 1, 23, 0, tzinfo=NY)
    slot = next_best_slot(ActivityHistogram(), night, night + timedelta(hours=4), QUIET, NY)
    assert slot.at == datetime(2024, 10, 2, 8, 0, tzinfo=NY) and slot.past_deadline
    past = next_best_slot(ActivityHistogram(), NOW, NOW - timedelta(hours=1), QUIET, NY, [1 / BUCKETS] * BUCKETS)
    assert past.at == NOW and not past.past_deadline  # a deadline already gone, now allowed: now


def test_a_deadline_under_an_hour_away_chooses_among_the_minutes_left() -> None:
    h = habit(NY, SEPT, 28, (19, 10))
    now = datetime(2024, 10, 1, 18, 10, tzinfo=NY)
    slot = next_best_slot(h, now, now + timedelta(minutes=30), QUIET, NY)
    assert local(slot.at, NY) == (18, 40)  # the deadline itself: [18:40, 19:40) holds 40 minutes of the 19:00 hour


def test_few_observations_follow_the_cohort_many_follow_the_student() -> None:
    cohort = [0.0] * BUCKETS
    for day in range(7):
        cohort[day * 24 + 12] = 1 / 7  # everyone else studies at lunch
    config = SendTimeConfig(min_observations=8)
    newcomer = habit(NY, datetime(2024, 9, 30), 1, (18, 10))  # one evening seen
    regular = habit(NY, SEPT, 28, (18, 10))
    first = next_best_slot(newcomer, NOW, NOW + timedelta(hours=24), QUIET, NY, cohort, config)
    assert local(first.at, NY) == (12, 0) and first.student_share == pytest.approx(1 / 9, rel=0.05)
    second = next_best_slot(regular, NOW, NOW + timedelta(hours=24), QUIET, NY, cohort, config)
    assert local(second.at, NY) == (18, 0) and second.student_share > 0.6
    nothing = next_best_slot(None, NOW, NOW + timedelta(hours=24), QUIET, NY)
    assert nothing.at == NOW and nothing.student_share == 0


def test_the_habit_keeps_its_local_hour_across_a_clock_change() -> None:
    h = habit(NY, datetime(2024, 10, 1), 31, (19, 10))  # learnt in EDT (UTC-4)
    after = datetime(2024, 11, 5, 9, 0, tzinfo=NY)  # now EST (UTC-5)
    slot = next_best_slot(h, after, after + timedelta(hours=24), QUIET, NY)
    assert local(slot.at, NY) == (19, 0) and slot.at.astimezone(UTC).hour == 0


def test_a_half_hour_zone_gets_its_local_hour() -> None:
    h = habit(KOLKATA, SEPT, 28, (19, 10))
    now = datetime(2024, 10, 1, 9, 0, tzinfo=KOLKATA)
    slot = next_best_slot(h, now, now + timedelta(hours=24), QUIET, KOLKATA)
    assert slot.at == datetime(2024, 10, 1, 13, 30, tzinfo=UTC)


def test_the_earliest_of_nearly_equal_slots_wins() -> None:
    h = habit(NY, SEPT, 28, (11, 5), (17, 5))
    slot = next_best_slot(h, NOW, NOW + timedelta(hours=24), QUIET, NY)
    assert local(slot.at, NY) == (11, 0)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_best_slot(None, datetime(2024, 10, 1, 9), datetime(2024, 10, 2, 9), QUIET, NY)


# -- the bench's measurement ----------------------------------------------------------------------------------


def test_the_bench_measures_a_tiny_population() -> None:
    config = SendTimeBenchConfig(students=14, seed=3, learn_days=7, eval_days=3, moments=2, bootstrap=20)
    measurement = measure_sendtime(config)
    assert measurement.students == 14 and 0 <= measurement.students_active_after <= 14
    assert 0 < measurement.json_bytes[0] <= measurement.json_bytes[1] <= MAX_JSON_BYTES
    assert [r.deadline_hours for r in measurement.results] == [24.0, 4.0]
    for result in measurement.results:
        assert result.moments == 28
        assert set(result.rates) == set(POLICIES) and all(0 <= r <= 1 for r in result.rates.values())
        assert [c.baseline for c in result.comparisons] == ["immediate", "random", "cohort_only"]
        for c in result.comparisons:
            assert c.sto == result.rates["sto"] and c.base == result.rates[c.baseline]
            assert c.uplift_low <= c.uplift_high
        assert set(result.by_archetype) <= set(ARCHETYPES)
        assert sum(row["moments"] for row in result.by_archetype.values()) == 28
        assert 0 <= result.deferred_share <= 1


def test_the_bench_command_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "sendtime.json"
    args = ["bench", "sendtime", "--students", "7", "--learn-days", "5", "--eval-days", "3", "--moments", "1",
            "--bootstrap", "10", "--deadline-hours", "24", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    saved = json.loads(out.read_text())
    assert [f["name"] for f in saved["figures"]] == [
        "STO vs immediate, deadline 24 h",
        "STO vs random, deadline 24 h",
        "STO vs cohort_only, deadline 24 h",
    ]
    assert saved["context"]["quiet_hours"] == {"start": "21:00:00", "end": "08:00:00"}
