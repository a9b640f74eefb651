"""The pure helpers of ``engage bench notify``: the bench's policy, live events, pacing, contacts, percentiles,
delivery rates and the response-time split."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from engage.bench.notify_plan import (
    Spread,
    bench_contact,
    bench_policy,
    delivery_rate,
    due,
    fresh_students,
    live,
    responses,
)
from notifications.channels.base import recipients
from notifications.routing import plan_channels
from processors.policy import DEFAULT_POLICY_PATH, PolicyConfig
from schemas.events import Channel

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def test_bench_policy_makes_every_decision_a_send_and_keeps_the_rest():
    doc = json.loads(DEFAULT_POLICY_PATH.read_text())
    out = bench_policy(doc)
    policy = PolicyConfig.model_validate(out)
    assert policy.quiet_hours is None and policy.send_time_tiers == [] and policy.holdout_share == 0.0
    assert doc["quiet_hours"] is not None and doc["send_time_tiers"]  # the original is not changed
    assert {k: v for k, v in out.items() if k not in ("quiet_hours", "send_time_tiers", "holdout_share")} == {
        k: v for k, v in doc.items() if k not in ("quiet_hours", "send_time_tiers", "holdout_share")
    }


def test_fresh_students_renames_students_and_event_ids_per_slice():
    events = [{"user_id": "u1", "event_id": f"e{i}", "event_type": "login"} for i in range(5)]
    out = fresh_students(events, 2)
    assert [e["user_id"] for e in out] == ["u1-s0", "u1-s0", "u1-s1", "u1-s1", "u1-s2"]
    assert len({e["event_id"] for e in out}) == 5 and out[4]["event_id"] == "e4-s2"
    assert events[0]["user_id"] == "u1"
    with pytest.raises(ValueError, match="slice_events"):
        fresh_students(events, 0)


def test_live_rewrites_event_times_to_now_in_utc():
    events = [{"event_id": "a", "event_time": "2026-11-06T06:16:12+11:00"}]
    out = live(events, datetime(2026, 3, 4, 13, 0, tzinfo=UTC) + timedelta(microseconds=5))
    assert datetime.fromisoformat(out[0]["event_time"]) == datetime(2026, 3, 4, 13, 0, 0, 5, tzinfo=UTC)
    assert events[0]["event_time"].endswith("+11:00")


@pytest.mark.parametrize(("rate", "elapsed", "expected"), [(1_000, 0.0, 0), (1_000, 0.02, 20), (5_000, 1.5, 7_500),
                                                           (1_000, -1.0, 0), (300, 0.01, 3)])  # fmt: skip
def test_due_is_the_rate_times_the_elapsed_time(rate, elapsed, expected):
    assert due(rate, elapsed) == expected


def test_contacts_make_the_channel_the_first_and_only_choice():
    tier = [Channel.push, Channel.email, Channel.in_app, Channel.sms]
    everything = set(Channel)
    for i, channel in enumerate(Channel):
        contact = bench_contact(f"u{i}", channel, index=i)
        assert plan_channels(tier, contact, configured=everything).order == (channel,)
        assert recipients(channel, contact)
    mixed = [bench_contact(f"m{i}", index=i, push_every=3) for i in range(6)]
    assert [plan_channels(tier, c, configured=everything).order[0] for c in mixed] == [
        Channel.push, Channel.email, Channel.email, Channel.push, Channel.email, Channel.email]  # fmt: skip


def test_spread_uses_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]  # 1..100
    s = Spread.of(list(reversed(values)))
    assert (s.n, s.p50, s.p95, s.p99, s.max) == (100, 51.0, 96.0, 100.0, 100.0)
    empty = Spread.of([])
    assert empty.n == 0 and math.isnan(empty.p99) and math.isnan(empty.max)
    assert "p99 100.00 s" in s.line()


def test_delivery_rate_counts_intervals_over_the_span():
    times = [T0 + timedelta(seconds=i * 0.5) for i in range(11)]  # 11 deliveries over 5 s
    assert delivery_rate(list(reversed(times))) == pytest.approx(2.0)
    assert math.isnan(delivery_rate([T0])) and math.isnan(delivery_rate([T0, T0]))


def test_responses_split_at_the_decision_and_leave_out_what_was_not_sent():
    def request(status: str) -> dict[str, str]:
        return {"status": status, "triggered_by_event_time": T0.isoformat(),
                "created_at": (T0 + timedelta(seconds=0.25)).isoformat()}  # fmt: skip

    requests = {"a": request("send"), "b": request("send"), "c": request("deferred")}
    sent = {"a": T0 + timedelta(seconds=1.0), "c": T0 + timedelta(seconds=9.0)}
    (only,) = responses(requests, sent)
    assert only.intervention_id == "a"
    assert (only.total, only.to_decision, only.to_accepted) == pytest.approx((1.0, 0.25, 0.75))
