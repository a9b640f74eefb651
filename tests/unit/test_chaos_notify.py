"""The chaos suite's notify case, its pure part: which requests were owed at the cutoff, which wait for later
(and must be scheduled), and the verdict's bound on duplicates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engage.chaos.notify_check import judge, newest_states, owed_now, plan
from schemas.interventions import InterventionRequest
from schemas.notifications import LedgerEntry, LedgerState, ledger_key

CUTOFF = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def request(
    iid: str, status: str = "send", *, send_after: datetime | None = None, **update: Any
) -> InterventionRequest:
    data: dict[str, Any] = {
        "intervention_id": iid,
        "user_id": f"u-{iid}",
        "created_at": CUTOFF - timedelta(minutes=5),
        "status": status,
        "send_after": send_after,
        "tier": "high",
        "intervention_type": "streak_warning",
        "channels": ["push", "email", "in_app"],
        "reason": "r",
        "deadline": CUTOFF + timedelta(hours=24),
        "risk_7d": 60.0,
        "confidence": 0.8,
        "model_version": "m",
        "triggered_by_event_time": CUTOFF - timedelta(minutes=6),
        **update,
    }
    return InterventionRequest.model_validate(data)


def entry(iid: str, state: LedgerState, due_at: datetime | None = None, channel: str | None = None) -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "ledger_key": f"{iid}|{channel or '-'}",
            "intervention_id": iid,
            "user_id": f"u-{iid}",
            "state": state,
            "at": CUTOFF - timedelta(minutes=1),
            "channel": channel,
            "due_at": due_at,
        }
    )


def test_send_and_due_deferred_requests_are_owed_distinct_ids_once() -> None:
    reqs = [
        request("a"),
        request("a"),  # the worker re-emitted its decision after a crash: same id, one request
        request("b", "deferred", send_after=CUTOFF - timedelta(seconds=1)),
        request("c", "held_out"),
        request("d", tier="critical", intervention_type="human_outreach", channels=["email"]),
    ]
    p = plan(reqs, {}, CUTOFF)
    assert p.expected == {"a", "b"}
    assert p.never_sent == {"c", "d"}
    assert (p.requests, p.re_emitted) == (4, 1)
    assert p.by_status == {"send": 2, "deferred": 1, "held_out": 1}
    assert not p.later and not p.unscheduled


def test_a_deferred_request_not_due_yet_must_be_scheduled_else_it_is_lost() -> None:
    later = CUTOFF + timedelta(hours=3)
    reqs = [request("kept", "deferred", send_after=later), request("gone", "deferred", send_after=later)]
    ledger = {"kept": entry("kept", "scheduled", due_at=later)}
    p = plan(reqs, ledger, CUTOFF)
    assert p.later == {"kept"} and p.unscheduled == {"gone"} and not p.expected
    verdict = judge(p, [], [], [], crashes=0, max_in_flight=16)
    assert verdict.lost == ("gone",) and not verdict.delivered


def test_a_send_request_held_back_by_the_cap_past_the_cutoff_is_for_later_but_not_once_its_time_passed() -> None:
    reqs = [request("capped"), request("overdue")]
    ledger = {
        "capped": entry("capped", "scheduled", due_at=CUTOFF + timedelta(hours=20)),
        "overdue": entry("overdue", "scheduled", due_at=CUTOFF - timedelta(minutes=1)),
    }
    p = plan(reqs, ledger, CUTOFF)
    assert p.later == {"capped"} and p.expected == {"overdue"}
    verdict = judge(p, [], [], [], crashes=0, max_in_flight=16)
    assert verdict.lost == ("overdue",)  # the service owed it and never sent it


def test_a_request_handled_early_is_checked_like_a_due_one() -> None:
    soon = CUTOFF + timedelta(minutes=10)
    reqs = [
        request("digest", "deferred", send_after=soon),  # merged into a digest before its own time
        request("early", "deferred", send_after=soon),  # sent just before the ledger was read
    ]
    p = plan(reqs, {"digest": entry("digest", "digested")}, CUTOFF)
    assert p.expected == {"digest"} and p.unscheduled == {"early"}
    verdict = judge(p, ["early"], [], ["digest"], crashes=0, max_in_flight=16)
    assert verdict.delivered, verdict.lines()
    assert verdict.check.sent_once == 1 and verdict.check.digested == ("digest",)


def test_the_verdict_allows_duplicates_up_to_crashes_times_in_flight_and_nothing_else() -> None:
    p = plan([request(f"r{i}") for i in range(6)] + [request("h", "held_out")], {}, CUTOFF)
    sends: list[str | None] = ["r0", "r0", "r0", "r1", "r1", "r2", "r3", "r4"]
    ok = judge(p, sends, ["r5"], [], crashes=1, max_in_flight=3)
    assert ok.check.extra_sends == 3 and ok.bound == 3 and ok.delivered, ok.lines()
    assert not judge(p, sends, ["r5"], [], crashes=1, max_in_flight=2).delivered  # 3 extra > 2
    assert not judge(p, sends, ["r5", "r4"], [], crashes=1, max_in_flight=3).delivered  # sent and dead
    assert not judge(p, [*sends, "h"], ["r5"], [], crashes=1, max_in_flight=3).delivered  # a held-out one sent
    assert not judge(p, [*sends, None], ["r5"], [], crashes=1, max_in_flight=3).delivered  # unattributable
    assert judge(p, sends, [], [], crashes=1, max_in_flight=3).lost == ("r5",)
    assert any("3 extra sends" in line for line in ok.lines())


def test_the_newest_request_level_entry_wins_and_due_schedules_are_owed() -> None:
    entries = [
        entry("x", "scheduled", due_at=CUTOFF - timedelta(seconds=30)),
        entry("x", "sent", channel="email"),  # a channel's entry: not the request's state
        entry("y", "scheduled", due_at=CUTOFF - timedelta(seconds=30)),
        entry("y", "sent"),
        entry("z", "scheduled", due_at=CUTOFF + timedelta(hours=1)),
    ]
    newest = newest_states(entries)
    assert {k: v.state for k, v in newest.items()} == {"x": "scheduled", "y": "sent", "z": "scheduled"}
    assert owed_now(newest, CUTOFF) == 1
    assert ledger_key("x", None) == "x|-"
