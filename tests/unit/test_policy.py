"""The intervention policy: tiers to types, cooldowns, caps, quiet hours, a deterministic holdout, config as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from processors.policy import (
    DECISION_OUTCOMES,
    DEFAULT_POLICY_PATH,
    Decision,
    HistoryEntry,
    InterventionHistory,
    PolicyConfig,
    QuietHours,
    TierPolicy,
    decide,
    in_holdout,
    policy_from_file,
    quiet_hours_end,
)
from schemas.interventions import InterventionRequest, InterventionType
from schemas.signals import RiskAssessment, RiskFactor, SignalSnapshot, Tier

T = InterventionType
NOON = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)  # a Monday, outside quiet hours in UTC
TIER_SCORES: dict[Tier, float] = {"critical": 90.0, "high": 70.0, "medium": 50.0, "low": 30.0, "minimal": 5.0}
NO_HOLDOUT = PolicyConfig(holdout_share=0.0)
ALWAYS_OPEN = PolicyConfig(holdout_share=0.0, quiet_hours=None)


def assessment(tier: Tier, factors: int = 3) -> RiskAssessment:
    words = ["No login for 9 days", "Lessons per week fell from 6 to 1", "Quiz average 38%", "No sessions"]
    return RiskAssessment(
        risk_7d=TIER_SCORES[tier],
        risk_30d=TIER_SCORES[tier],
        tier=tier,
        confidence=0.8,
        factors=[
            RiskFactor(signal=f"s{i}", group="login", description=words[i], contribution=10.0 - i)
            for i in range(factors)
        ],
        model_version="heuristic-1",
    )


def run(
    config: PolicyConfig,
    tier: Tier,
    history: InterventionHistory,
    now: datetime,
    timezone: str = "UTC",
    user: str = "student-1",
) -> Decision:
    return decide(config, user, assessment(tier), history, now, timezone)


def test_outcome_labels_are_exactly_the_metric_labels() -> None:
    assert set(DECISION_OUTCOMES) == {"sent", "held_out", "deferred", "capped", "cooldown", "not_needed"}


@pytest.mark.parametrize(
    ("tier", "types"),
    [
        ("critical", [T.human_outreach, T.discount_offer]),
        ("high", [T.personalised_content, T.streak_warning]),
        ("medium", [T.achievement_notification, T.peer_comparison]),
        ("low", [T.gentle_reminder, T.milestone_celebration]),
    ],
)
def test_tier_maps_to_its_intervention_types(tier: Tier, types: list[InterventionType]) -> None:
    assert PolicyConfig().tiers[tier].intervention_types == types
    first = run(ALWAYS_OPEN, tier, InterventionHistory(), NOON)
    assert first.outcome == "sent" and first.request is not None
    assert first.request.intervention_type == types[0] and first.request.status == "send"
    assert first.request.tier == tier and first.request.channels == list(PolicyConfig().tiers[tier].channels)
    # the next day the first type is cooling down, so the tier's second type goes out
    second = run(ALWAYS_OPEN, tier, first.history, NOON + timedelta(hours=25))
    assert second.outcome == "sent" and second.request is not None
    assert second.request.intervention_type == types[1]


def test_minimal_tier_is_not_needed() -> None:
    d = run(ALWAYS_OPEN, "minimal", InterventionHistory(), NOON)
    assert d.outcome == "not_needed" and d.request is None and d.history == InterventionHistory()


def test_request_carries_reason_deadline_and_provenance() -> None:
    event_time = NOON - timedelta(seconds=40)
    d = decide(
        ALWAYS_OPEN,
        "u-9",
        assessment("critical"),
        InterventionHistory(),
        NOON,
        "UTC",
        triggered_by_event_time=event_time,
    )
    r = d.request
    assert r is not None
    assert r.reason == "No login for 9 days; Lessons per week fell from 6 to 1; Quiz average 38%"
    assert r.deadline == NOON + timedelta(hours=4)
    assert r.risk_7d == 90.0 and r.model_version == "heuristic-1" and r.triggered_by_event_time == event_time
    assert r.created_at == NOON and r.send_after is None
    high = run(ALWAYS_OPEN, "high", InterventionHistory(), NOON).request
    assert high is not None and high.deadline == NOON + timedelta(hours=24)
    # deterministic id: the same decision replayed gets the same id
    again = decide(
        ALWAYS_OPEN,
        "u-9",
        assessment("critical"),
        InterventionHistory(),
        NOON,
        "UTC",
        triggered_by_event_time=event_time,
    )
    assert again.request is not None and again.request.intervention_id == r.intervention_id
    # a round trip through JSON (the topic) keeps it intact
    assert InterventionRequest.model_validate_json(r.model_dump_json()) == r


def test_reason_without_factors_still_says_why() -> None:
    d = decide(ALWAYS_OPEN, "u", assessment("high", factors=0), InterventionHistory(), NOON, "UTC")
    assert d.request is not None and d.request.reason == "Risk 70/100 (high)"


def test_cooldown_blocks_the_same_type_within_the_window_and_allows_it_after() -> None:
    one_type = ALWAYS_OPEN.model_copy(
        update={
            "tiers": {**ALWAYS_OPEN.tiers, "high": TierPolicy(intervention_types=[T.personalised_content])},
            "max_per_day": 10,
            "max_per_week": 10,
        }
    )
    first = run(one_type, "high", InterventionHistory(), NOON)
    assert first.outcome == "sent"
    within = run(one_type, "high", first.history, NOON + timedelta(hours=47, minutes=59))
    assert within.outcome == "cooldown" and within.request is None and within.history is first.history
    after = run(one_type, "high", first.history, NOON + timedelta(hours=48, minutes=1))
    assert after.outcome == "sent"


def test_cooldown_when_every_type_of_the_tier_is_cooling() -> None:
    config = ALWAYS_OPEN.model_copy(update={"max_per_day": 10})
    h = run(config, "low", InterventionHistory(), NOON).history
    h = run(config, "low", h, NOON + timedelta(hours=1)).history
    assert [e.intervention_type for e in h.entries] == [T.gentle_reminder, T.milestone_celebration]
    assert run(config, "low", h, NOON + timedelta(hours=2)).outcome == "cooldown"


def test_discount_offer_has_a_week_long_cooldown_by_default() -> None:
    assert PolicyConfig().cooldown(T.discount_offer) == timedelta(days=7)
    assert PolicyConfig().cooldown(T.gentle_reminder) == timedelta(hours=48)


def test_daily_cap() -> None:
    first = run(ALWAYS_OPEN, "low", InterventionHistory(), NOON)
    second = run(ALWAYS_OPEN, "low", first.history, NOON + timedelta(hours=3))  # other type free, but 1/day
    assert second.outcome == "capped" and second.request is None
    next_day = run(ALWAYS_OPEN, "low", first.history, NOON + timedelta(hours=24, minutes=1))
    assert next_day.outcome == "sent"


def test_weekly_cap() -> None:
    config = ALWAYS_OPEN.model_copy(update={"default_cooldown_hours": 0.0, "max_per_day": 1, "max_per_week": 3})
    h = InterventionHistory()
    for day in range(3):
        d = run(config, "medium", h, NOON + timedelta(days=day))
        assert d.outcome == "sent"
        h = d.history
    assert run(config, "medium", h, NOON + timedelta(days=3)).outcome == "capped"
    assert run(config, "medium", h, NOON + timedelta(days=6, hours=23)).outcome == "capped"
    assert run(config, "medium", h, NOON + timedelta(days=7, minutes=1)).outcome == "sent"


def test_escalation_is_not_capped_unless_configured() -> None:
    low = run(ALWAYS_OPEN, "low", InterventionHistory(), NOON)
    critical = run(ALWAYS_OPEN, "critical", low.history, NOON + timedelta(hours=1))
    assert critical.outcome == "sent"
    strict = ALWAYS_OPEN.model_copy(update={"escalation_bypasses_caps": False})
    assert run(strict, "critical", low.history, NOON + timedelta(hours=1)).outcome == "capped"
    # the same tier again is capped either way
    assert run(ALWAYS_OPEN, "critical", critical.history, NOON + timedelta(hours=2)).outcome == "capped"


def test_quiet_hours_are_in_the_students_own_zone() -> None:
    at = datetime(2024, 6, 3, 14, 0, tzinfo=UTC)  # 23:00 in Tokyo, 15:00 in London (BST)
    tokyo = run(NO_HOLDOUT, "high", InterventionHistory(), at, timezone="Asia/Tokyo")
    assert tokyo.outcome == "deferred" and tokyo.request is not None
    assert tokyo.request.status == "deferred"
    assert tokyo.send_after == datetime(2024, 6, 3, 23, 0, tzinfo=UTC)  # 08:00 JST next morning
    assert tokyo.request.deadline == tokyo.send_after + timedelta(hours=24)
    london = run(NO_HOLDOUT, "high", InterventionHistory(), at, timezone="Europe/London")
    assert london.outcome == "sent" and london.send_after is None


def test_after_midnight_defers_to_the_same_morning() -> None:
    at = datetime(2024, 6, 3, 0, 30, tzinfo=UTC)  # 02:30 in Berlin (CEST)
    d = run(NO_HOLDOUT, "low", InterventionHistory(), at, timezone="Europe/Berlin")
    assert d.outcome == "deferred" and d.send_after == datetime(2024, 6, 3, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        # London springs forward on 31 March 2024: 08:00 that morning is BST (UTC+1), not GMT
        (datetime(2024, 3, 30, 22, 0, tzinfo=UTC), "Europe/London", datetime(2024, 3, 31, 7, 0, tzinfo=UTC)),
        # New York falls back on 3 November 2024: 08:00 that morning is EST (UTC-5)
        (datetime(2024, 11, 3, 3, 0, tzinfo=UTC), "America/New_York", datetime(2024, 11, 3, 13, 0, tzinfo=UTC)),
        # the evening before, quiet hours start at 21:00 EDT
        (datetime(2024, 11, 3, 0, 59, tzinfo=UTC), "America/New_York", None),
        (datetime(2024, 11, 3, 1, 0, tzinfo=UTC), "America/New_York", datetime(2024, 11, 3, 13, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_end_is_dst_correct(now: datetime, zone: str, expected: datetime | None) -> None:
    from zoneinfo import ZoneInfo

    assert quiet_hours_end(QuietHours(), now, ZoneInfo(zone)) == expected


def test_quiet_hours_within_a_day_and_disabled() -> None:
    from zoneinfo import ZoneInfo

    lunch = QuietHours(start=time(12, 0), end=time(14, 0))
    utc = ZoneInfo("UTC")
    assert quiet_hours_end(lunch, NOON, utc) == NOON + timedelta(hours=2)
    assert quiet_hours_end(lunch, NOON - timedelta(minutes=1), utc) is None
    assert quiet_hours_end(lunch, NOON + timedelta(hours=2), utc) is None
    assert quiet_hours_end(None, NOON, utc) is None
    assert quiet_hours_end(QuietHours(start=time(9), end=time(9)), NOON, utc) is None


def test_unknown_zone_falls_back_to_the_default() -> None:
    at = datetime(2024, 6, 3, 22, 0, tzinfo=UTC)
    d = run(NO_HOLDOUT, "low", InterventionHistory(), at, timezone="Mars/Olympus_Mons")
    assert d.outcome == "deferred" and d.send_after == datetime(2024, 6, 4, 8, 0, tzinfo=UTC)


def test_a_deferred_request_is_recorded_and_not_repeated() -> None:
    at = datetime(2024, 6, 3, 22, 0, tzinfo=UTC)
    first = run(NO_HOLDOUT, "high", InterventionHistory(), at)
    assert first.outcome == "deferred"
    (entry,) = first.history.entries
    assert entry.status == "deferred" and entry.at == first.send_after
    # more risk updates during the same night: nothing new to send
    again = run(NO_HOLDOUT, "high", first.history, at + timedelta(hours=2))
    assert again.outcome == "not_needed" and again.request is None
    # the next morning, after it went out: it counts for the daily cap
    morning = run(NO_HOLDOUT, "high", first.history, datetime(2024, 6, 4, 9, 0, tzinfo=UTC))
    assert morning.outcome == "capped"
    # an escalation during the night is still decided (deferred to the same morning)
    escalated = run(NO_HOLDOUT, "critical", first.history, at + timedelta(hours=2))
    assert escalated.outcome == "deferred" and escalated.send_after == first.send_after


def _users(n: int) -> list[str]:
    return [f"student-{i}" for i in range(n)]


def test_holdout_is_deterministic_and_about_ten_percent() -> None:
    config = PolicyConfig()
    users = _users(10_000)
    groups = [in_holdout(config, u) for u in users]
    assert groups == [in_holdout(config, u) for u in users]
    assert abs(sum(groups) / len(users) - 0.10) <= 0.015
    other_salt = PolicyConfig(holdout_salt="another-experiment")
    assert groups != [in_holdout(other_salt, u) for u in users]
    assert not any(in_holdout(PolicyConfig(holdout_share=0.0), u) for u in users[:500])
    assert all(in_holdout(PolicyConfig(holdout_share=1.0), u) for u in users[:500])


def test_holdout_is_the_same_in_another_process() -> None:
    users = _users(300)
    here = [u for u in users if in_holdout(PolicyConfig(), u)]
    code = (
        "import json, sys\n"
        "from processors.policy import PolicyConfig, in_holdout\n"
        "users = json.loads(sys.stdin.read())\n"
        "print(json.dumps([u for u in users if in_holdout(PolicyConfig(), u)]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(users),
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert json.loads(out.stdout) == here and here


def test_held_out_students_are_recorded_not_sent_and_count_for_caps() -> None:
    config = PolicyConfig(quiet_hours=None)
    user = next(u for u in _users(1000) if in_holdout(config, u))
    d = run(config, "high", InterventionHistory(), NOON, user=user)
    assert d.outcome == "held_out" and d.request is not None and d.request.status == "held_out"
    (entry,) = d.history.entries
    assert entry.status == "held_out" and entry.intervention_type == T.personalised_content
    assert run(config, "high", d.history, NOON + timedelta(hours=1), user=user).outcome == "capped"
    treated = next(u for u in _users(1000) if not in_holdout(config, u))
    assert run(config, "high", InterventionHistory(), NOON, user=treated).outcome == "sent"


def test_held_out_during_quiet_hours_keeps_the_would_be_time() -> None:
    config = PolicyConfig()
    user = next(u for u in _users(1000) if in_holdout(config, u))
    d = run(config, "low", InterventionHistory(), datetime(2024, 6, 3, 23, 0, tzinfo=UTC), user=user)
    assert d.outcome == "held_out" and d.request is not None
    assert d.request.send_after == datetime(2024, 6, 4, 8, 0, tzinfo=UTC) == d.history.entries[0].at


def test_history_round_trips_through_json_and_stays_bounded() -> None:
    config = ALWAYS_OPEN.model_copy(update={"default_cooldown_hours": 0.0, "max_per_day": 100, "max_per_week": 1000})
    h = InterventionHistory()
    for i in range(60):
        h = run(config, "medium", h, NOON + timedelta(hours=i)).history
    assert len(h.entries) == config.history_max_entries
    assert h.entries[-1].at == NOON + timedelta(hours=59)
    restored = InterventionHistory.from_dict(json.loads(json.dumps(h.to_dict())))
    assert restored == h
    later = run(config, "medium", h, NOON + timedelta(days=30)).history
    assert len(later.entries) == 1  # older than the retention window: dropped
    assert InterventionHistory.from_dict(None) == InterventionHistory() == InterventionHistory.from_dict({})


def test_history_refuses_naive_times() -> None:
    entry = HistoryEntry("i", T.gentle_reminder, "low", NOON, "sent").to_dict()
    with pytest.raises(ValueError, match="UTC offset"):
        HistoryEntry.from_dict({**entry, "at": "2024-06-03T12:00:00"})


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        run(ALWAYS_OPEN, "high", InterventionHistory(), datetime(2024, 6, 3, 12, 0))


def test_request_status_and_send_after_must_agree() -> None:
    base: dict[str, Any] = {
        "intervention_id": "i-1",
        "user_id": "u",
        "created_at": NOON,
        "tier": "low",
        "intervention_type": "gentle_reminder",
        "reason": "x",
        "deadline": NOON,
        "risk_7d": 30.0,
        "model_version": "m",
        "triggered_by_event_time": NOON,
    }
    with pytest.raises(ValidationError, match="send_after"):
        InterventionRequest(**base, status="deferred")
    with pytest.raises(ValidationError, match="send_after"):
        InterventionRequest(**base, status="send", send_after=NOON)


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    custom = PolicyConfig(
        max_per_day=2,
        holdout_share=0.2,
        quiet_hours=QuietHours(start=time(22, 30), end=time(7, 15)),
        cooldown_hours={T.streak_warning: 12.0},
    )
    path = tmp_path / "policy.json"
    path.write_text(custom.model_dump_json(indent=2), encoding="utf-8")
    assert policy_from_file(path) == custom
    assert PolicyConfig.model_validate_json(PolicyConfig().model_dump_json()) == PolicyConfig()


def test_config_refuses_typos_and_incomplete_tiers(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"max_per_dya": 2}), encoding="utf-8")
    with pytest.raises(ValidationError, match="max_per_dya"):
        policy_from_file(path)
    with pytest.raises(ValidationError, match="missing"):
        PolicyConfig(tiers={"critical": TierPolicy(intervention_types=[T.human_outreach])})
    with pytest.raises(ValidationError):
        PolicyConfig(holdout_share=1.5)
    with pytest.raises(ValidationError, match="time zone"):
        PolicyConfig(default_timezone="Nowhere/Special")


def test_default_json_equals_the_defaults() -> None:
    assert DEFAULT_POLICY_PATH.is_file()
    assert policy_from_file(DEFAULT_POLICY_PATH) == PolicyConfig()
    assert policy_from_file() == PolicyConfig()


# -- send-time optimisation: the slot a chooser picks, within the deadline, quiet hours first ------------------


class Chooser:
    """A slot chooser that answers a fixed offset from ``now`` and records what it was asked."""

    def __init__(self, after: timedelta) -> None:
        self.after = after
        self.asked: list[tuple[datetime, datetime, QuietHours | None, str]] = []

    def __call__(self, now: datetime, deadline: datetime, quiet: QuietHours | None, zone: ZoneInfo) -> datetime:
        self.asked.append((now, deadline, quiet, zone.key))
        return now + self.after


def sto(config: PolicyConfig, tier: Tier, chooser: Chooser, now: datetime = NOON, zone: str = "UTC") -> Decision:
    return decide(config, "student-1", assessment(tier), InterventionHistory(), now, zone, send_time=chooser)


def test_a_later_slot_defers_the_request_to_it_within_the_tiers_deadline() -> None:
    chooser = Chooser(timedelta(hours=5))
    d = sto(NO_HOLDOUT, "high", chooser)
    r = d.request
    assert d.outcome == "deferred" and r is not None and r.status == "deferred"
    assert r.send_after == NOON + timedelta(hours=5) and r.deadline == NOON + timedelta(hours=24)
    assert chooser.asked == [(NOON, NOON + timedelta(hours=24), NO_HOLDOUT.quiet_hours, "UTC")]
    # the history counts it from when it really goes: a decision before then finds it scheduled
    assert d.history.entries[-1].at == NOON + timedelta(hours=5)
    assert run(NO_HOLDOUT, "high", d.history, NOON + timedelta(hours=1)).outcome == "not_needed"


def test_a_slot_now_is_sent_now() -> None:
    d = sto(NO_HOLDOUT, "medium", Chooser(timedelta(0)))
    assert d.outcome == "sent" and d.request is not None and d.request.send_after is None


def test_quiet_hours_win_over_the_chooser() -> None:
    # 19:00 in UTC; the chooser answers 23:00, inside quiet hours (21:00-08:00): the request goes at 08:00
    evening = datetime(2024, 6, 3, 19, 0, tzinfo=UTC)
    d = sto(NO_HOLDOUT, "low", Chooser(timedelta(hours=4)), now=evening)
    assert d.request is not None and d.request.send_after == datetime(2024, 6, 4, 8, 0, tzinfo=UTC)
    # asked at night, the deadline counts from the end of quiet hours, and a slot before it moves to it
    night = datetime(2024, 6, 3, 23, 0, tzinfo=UTC)
    chooser = Chooser(timedelta(hours=1))
    d = sto(NO_HOLDOUT, "low", chooser, now=night)
    assert d.request is not None and d.request.send_after == datetime(2024, 6, 4, 8, 0, tzinfo=UTC)
    assert chooser.asked[0][1] == datetime(2024, 6, 5, 8, 0, tzinfo=UTC)
    # a chooser answering the past cannot send before now
    d = sto(ALWAYS_OPEN, "low", Chooser(timedelta(hours=-3)))
    assert d.outcome == "sent" and d.request is not None and d.request.send_after is None


def test_the_critical_tier_is_not_delayed_by_the_chooser() -> None:
    chooser = Chooser(timedelta(hours=3))
    d = sto(NO_HOLDOUT, "critical", chooser)
    assert d.outcome == "sent" and d.request is not None and d.request.send_after is None and chooser.asked == []
    night = datetime(2024, 6, 3, 23, 0, tzinfo=UTC)  # quiet hours: the end of them, as without a chooser
    d = sto(NO_HOLDOUT, "critical", chooser, now=night)
    assert d.request is not None and d.request.send_after == datetime(2024, 6, 4, 8, 0, tzinfo=UTC)
    # which tiers wait for their slot is configuration
    every = NO_HOLDOUT.model_copy(update={"send_time_tiers": ["critical"]})
    assert sto(every, "critical", chooser).outcome == "deferred"
    assert sto(every, "high", chooser).outcome == "sent"


def test_the_slot_never_changes_whether_or_what_is_decided() -> None:
    """Type, id and outcome are decided at the earliest moment; only the send time follows the chooser."""
    history = run(ALWAYS_OPEN, "high", InterventionHistory(), NOON - timedelta(hours=30)).history
    plain = run(ALWAYS_OPEN, "high", history, NOON)
    for hours in (0, 2, 20):
        d = decide(
            ALWAYS_OPEN,
            "student-1",
            assessment("high"),
            history,
            NOON,
            "UTC",
            send_time=Chooser(timedelta(hours=hours)),
        )
        assert d.request is not None and plain.request is not None
        assert d.request.intervention_id == plain.request.intervention_id
        assert d.request.intervention_type == plain.request.intervention_type


def test_held_out_requests_keep_the_slot_they_would_have_gone_at() -> None:
    everyone = PolicyConfig(holdout_share=1.0, quiet_hours=None)
    d = sto(everyone, "high", Chooser(timedelta(hours=6)))
    assert d.outcome == "held_out" and d.request is not None and d.request.send_after == NOON + timedelta(hours=6)


def test_the_request_carries_what_the_notification_service_renders_from() -> None:
    snap = SignalSnapshot(user_id="student-1", as_of=NOON, timezone="Europe/Berlin", current_streak_days=12)
    d = decide(NO_HOLDOUT, "student-1", assessment("high", factors=2), InterventionHistory(), NOON, "Europe/Berlin",
               signals=snap, locale="de-DE")  # fmt: skip
    r = d.request
    assert r is not None and r.signals == snap and r.locale == "de-DE" and r.timezone == "Europe/Berlin"
    assert [f.description for f in r.factors] == ["No login for 9 days", "Lessons per week fell from 6 to 1"]
    # an unknown zone is decided (and reported) in the default one
    r = run(NO_HOLDOUT, "high", InterventionHistory(), NOON, timezone="Mars/Olympus").request
    assert r is not None and r.timezone == "UTC" and r.signals is None and r.locale is None
