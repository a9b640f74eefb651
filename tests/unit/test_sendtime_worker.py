"""Send-time optimisation in the worker: the activity histogram and locale in the student's record, the cohorts'
aggregates as the fallback, the policy's slot through the worker's own call, and what the requests carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from kafka_io.producer import key_partition
from processors.notify.sendtime import BUCKETS, MAX_JSON_BYTES, CohortActivity, SendTimeConfig
from processors.pipeline import UserRecord, ingest, policy_decision
from processors.policy import PolicyConfig
from processors.signals import apply_events, snapshot
from processors.state import UserState
from schemas.interventions import InterventionRequest
from schemas.signals import RiskAssessment, Tier
from streams.worker.core.ports import Message
from tests.unit.worker_fakes import PARTITIONS, TOPICS, MemoryOutputs, MemoryTable, make_core

NY = ZoneInfo("America/New_York")
MONDAY = datetime(2024, 9, 2, tzinfo=NY)
NO_HOLDOUT = PolicyConfig(holdout_share=0.0)


def _event(n: int, at: datetime, event_type: str = "login", user: str = "ann", **extra: Any) -> dict[str, Any]:
    return {"event_id": f"{user}-{n}", "user_id": user, "event_type": event_type, "event_time": at.isoformat(),
            "platform": "web", **extra}  # fmt: skip


def _habit(user: str, days: int, hour: int, course: str | None = None, first: int = 0) -> list[dict[str, Any]]:
    """A student in New York active every day at ``hour``:10 local (one lesson event a day)."""
    out = []
    for d in range(days):
        at = (MONDAY + timedelta(days=d)).replace(hour=hour, minute=10)
        out.append(_event(first + d, at, "lesson_completed", user, timezone="America/New_York", course_id=course))
    return out


def _assessment(tier: Tier) -> RiskAssessment:
    return RiskAssessment(risk_7d=70, risk_30d=70, tier=tier, confidence=1, model_version="t")


# -- the histogram in the record ------------------------------------------------------------------------------


def test_active_events_are_counted_once_per_local_hour_in_the_students_zone() -> None:
    at = datetime(2024, 9, 2, 19, 10, tzinfo=NY)  # Monday 19:10 in New York, 23:10 UTC
    events = [
        _event(1, at, timezone="America/New_York"),
        _event(2, at + timedelta(minutes=30), "content_viewed", timezone="America/New_York"),  # same local hour
        _event(3, at + timedelta(hours=2), "notification_delivered", timezone="America/New_York"),  # not active
    ]
    result = apply_events(None, "ann", events)
    histogram = result.state.activity
    assert histogram.weights == {19: 1.0}  # Monday (0) x 24 + 19, in the student's zone, not UTC's 23
    assert result.active_hours == [(19, int(at.timestamp() // 3600))]
    again = apply_events(result.state, "ann", [events[0], _event(4, at + timedelta(minutes=5))])
    assert again.active_hours == [] and histogram.weights == {19: 1.0}  # a resent event, an hour already counted


def test_before_a_zone_is_known_an_event_counts_in_its_own_offset() -> None:
    at = datetime(2024, 9, 2, 7, 45, tzinfo=ZoneInfo("Asia/Kolkata"))  # +05:30, no IANA name on the event
    state = apply_events(None, "ann", [_event(1, at)]).state
    assert state.activity.weights == {7: 1.0}


def test_the_newest_event_carrying_a_locale_sets_the_students() -> None:
    at = datetime(2024, 9, 2, 12, tzinfo=UTC)
    state = apply_events(
        None, "ann", [_event(1, at, locale="pt-BR"), _event(2, at - timedelta(hours=1), locale="en")]
    ).state
    assert state.locale == "pt-BR"
    apply_events(state, "ann", [_event(3, at - timedelta(days=1), locale="de")])  # late and older: not the newest
    assert state.locale == "pt-BR"
    apply_events(state, "ann", [_event(4, at + timedelta(hours=1))])  # no locale: keeps the one known
    assert state.locale == "pt-BR"
    apply_events(state, "ann", [_event(5, at + timedelta(hours=2), locale="de-AT")])
    assert state.locale == "de-AT"


def test_the_histogram_and_locale_survive_the_records_round_trip_and_stay_small() -> None:
    record = UserRecord(state=UserState(user_id="ann"))
    bare = len(record.to_bytes())
    ingest(record, "ann", [*_habit("ann", 28, 19), _event(99, MONDAY + timedelta(days=3, hours=7), locale="en-US")])
    raw = record.to_bytes()
    back = UserRecord.from_bytes(raw)
    assert back.state.locale == "en-US"
    assert back.state.activity.to_dict() == record.state.activity.to_dict()
    assert sum(back.state.activity.at(MONDAY.timestamp() + 28 * 86_400, 28)) > 0
    added = len(orjson.dumps(record.state.activity.to_dict())) + len(b',"activity":,"locale":"en-US"')
    assert added < 200  # a daily habit at one hour: a few buckets and the dedupe mask (MAX_JSON_BYTES at worst)
    assert MAX_JSON_BYTES < 2100 and len(raw) > bare
    # a record written before the histogram existed loads, with an empty one
    old = orjson.loads(raw)
    del old["state"]["activity"], old["state"]["locale"]
    loaded = UserRecord.from_dict(old)
    assert loaded.state.activity.weights == {} and loaded.state.locale is None
    assert "activity" not in UserState(user_id="new").to_dict()  # nothing observed: nothing written


# -- the cohort fallback --------------------------------------------------------------------------------------


def test_the_cohort_profile_is_the_course_then_everyone_then_nothing() -> None:
    cohort = CohortActivity(SendTimeConfig(cohort_min_hours=5))
    now = (MONDAY + timedelta(days=30)).timestamp()
    assert cohort.profile("c1", now) is None  # nothing known
    for user in ("a", "b"):  # 2 x 14 active hours at 09:00 in c2
        record = UserRecord(state=UserState(user_id=user))
        ingest(record, user, [_event(0, MONDAY, "enrolled", user, course_id="c2")], cohort)
        ingest(record, user, _habit(user, 14, 9, "c2", first=1), cohort)
    everyone = cohort.profile(None, now)
    assert everyone is not None and abs(sum(everyone) - 1) < 1e-9 and len(everyone) == BUCKETS
    assert max(range(BUCKETS), key=everyone.__getitem__) % 24 == 9
    assert cohort.profile("c1", now) == everyone  # c1 has no hours yet: everyone's
    record = UserRecord(state=UserState(user_id="c"))
    ingest(record, "c", [_event(0, MONDAY, "enrolled", "c", course_id="c1")], cohort)
    ingest(record, "c", _habit("c", 12, 20, "c1", first=1), cohort)
    c1 = cohort.profile("c1", now)
    assert c1 is not None and max(range(BUCKETS), key=c1.__getitem__) % 24 == 20
    assert abs(sum(c1) - 1) < 1e-9


def _cohort_at(hour: int) -> CohortActivity:
    cohort = CohortActivity(NO_HOLDOUT.send_time)
    for n in range(8):
        user = f"peer-{n}"
        ingest(UserRecord(state=UserState(user_id=user)), user, _habit(user, 28, hour, "c1"), cohort)
    return cohort


def _decide(record: UserRecord, now: datetime, cohort: CohortActivity, tier: Tier = "high") -> InterventionRequest:
    snap = snapshot(record.state, now)
    request = policy_decision(
        record, record.state.user_id, _assessment(tier), snap, NO_HOLDOUT, now, now, cohort
    ).request
    assert request is not None
    return request


def test_a_regular_is_sent_at_their_own_hour_a_newcomer_at_the_cohorts() -> None:
    cohort = _cohort_at(17)  # the course's students study at 17:00
    now = (MONDAY + timedelta(days=29)).replace(hour=9, minute=0)  # a Tuesday, 09:00 in New York
    regular = UserRecord(state=UserState(user_id="reg"))
    ingest(regular, "reg", _habit("reg", 28, 11, "c1"), cohort)  # 28 active hours of their own at 11:00
    slot = _decide(regular, now, cohort)
    assert slot.status == "deferred" and slot.send_after is not None
    assert slot.send_after.astimezone(NY).hour == 11 and slot.send_after <= slot.deadline
    newcomer = UserRecord(state=UserState(user_id="new"))
    ingest(newcomer, "new", [_event(1, now - timedelta(hours=20), "enrolled", "new", timezone="America/New_York",
                                    course_id="c1")], cohort)  # fmt: skip
    slot = _decide(newcomer, now, cohort)
    assert slot.send_after is not None and slot.send_after.astimezone(NY).hour == 17
    # the critical tier goes now, whatever the hours say
    assert _decide(regular, now, cohort, "critical").status == "send"


def test_quiet_hours_win_over_a_night_owls_habit() -> None:
    cohort = _cohort_at(23)
    owl = UserRecord(state=UserState(user_id="owl"))
    ingest(owl, "owl", _habit("owl", 28, 23, "c1"), cohort)
    now = (MONDAY + timedelta(days=29)).replace(hour=9, minute=0)
    request = _decide(owl, now, cohort)
    local = (request.send_after or request.created_at).astimezone(NY)
    assert 8 <= local.hour < 21 and (request.send_after or now) <= request.deadline


# -- the worker core ------------------------------------------------------------------------------------------


def test_the_worker_keeps_the_histogram_and_fills_what_a_request_carries() -> None:
    table, outputs = MemoryTable(), MemoryOutputs()
    core = make_core(table, outputs, policy=NO_HOLDOUT)
    now = datetime.now(UTC).replace(microsecond=0)
    old = now - timedelta(days=20)  # a student gone quiet: the heuristic model puts them at high risk
    events = [_event(i, old + timedelta(hours=i), timezone="Europe/Berlin", locale="de-DE") for i in range(3)]
    value = orjson.dumps({"schema_version": 1, "user_id": "ann", "events": events})
    core.fold([Message(key_partition(b"ann", PARTITIONS), 0, now.timestamp(), value)])
    core.flush_records()
    record = UserRecord.from_bytes(table.rows[b"ann"])
    assert len(record.state.activity.weights) == 3 and record.state.locale == "de-DE"  # 3 active local hours
    assert sum(core.activity.profile(None, old.timestamp() + 3 * 3600) or [0]) == 0  # 3 hours: too few to use
    requests = [InterventionRequest.model_validate_json(v) for v in outputs.on(TOPICS.interventions.name)]
    assert len(requests) == 1
    request = requests[0]
    assert request.timezone == "Europe/Berlin" and request.locale == "de-DE"
    assert request.signals is not None and request.signals.user_id == "ann" and request.signals.events_total == 3
    assert request.factors and request.factors[0].description
    assert len(request.model_dump_json()) < 4_096  # the snapshot makes most of it (measured ~2.3 KB)


def test_a_request_made_by_hand_carries_the_same_context() -> None:
    core = make_core(policy=NO_HOLDOUT)
    now = datetime.now(UTC).replace(microsecond=0)
    record = UserRecord(state=UserState(user_id="ann"))
    ingest(record, "ann", [_event(1, now - timedelta(days=2), timezone="Asia/Tokyo", locale="ja")])
    bare = core.request_context(record, now)
    assert bare["factors"] == [] and bare["timezone"] == "Asia/Tokyo" and bare["locale"] == "ja"
    assert bare["signals"].days_since_last_login == 2.0
    record.last_assessment = {**_assessment("high").model_dump(mode="json"), "factors": [
        {"signal": "s", "group": "login", "description": "No login for 2 days", "contribution": 5.0}]}  # fmt: skip
    assert [f.description for f in core.request_context(record, now)["factors"]] == ["No login for 2 days"]
    offset_only = UserRecord(state=UserState(user_id="bob"))
    ingest(offset_only, "bob", [_event(1, now.astimezone(ZoneInfo("Asia/Kolkata")), user="bob")])
    assert core.request_context(offset_only, now)["timezone"] is None  # a bare +05:30 offset is no IANA zone
