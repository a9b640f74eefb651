"""The processors bench compares every per-student figure of ours and the peer, and a difference fails the run.

The peer's side is the peer's own per-message code (``quix_app.fold_and_score``) over a dict for Quix's state;
ours is one record that folded the same events in one gather, as a debouncing worker does. The two are read at
different moments by design, so equal inputs must compare equal, and a peer that miscounts one student must not.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import orjson
import pytest

from engage.bench.ingest import simulated_events
from engage.bench.peer.quix_app import fold_and_score
from engage.bench.processors import differences, final_records, final_updates
from models.heuristic import HeuristicModel
from processors.pipeline import UserRecord, ingest
from processors.policy import policy_from_file

MODEL = HeuristicModel()


class _State(dict[str, Any]):
    """Quix's per-key state as the peer uses it: ``get`` and ``set``."""

    def set(self, key: str, value: Any) -> None:
        self[key] = value


def _by_student(n: int) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in simulated_events(n):
        out[e["user_id"]].append(e)
    return dict(list(out.items())[:12])


def _peer(students: dict[str, list[dict[str, Any]]], batch: int = 50) -> list[tuple[float, bytes, bytes]]:
    """The peer's risk updates (as the bench reads them) for the students' events, ``batch`` per message."""
    state, policy, out = _State(), policy_from_file(), []
    for user, events in students.items():
        for i in range(0, len(events), batch):
            batch_of = events[i : i + batch]
            message = orjson.dumps({"schema_version": 1, "user_id": user, "source": "t", "events": batch_of})
            out += [(0.0, b"", update) for update in fold_and_score(message, state, MODEL, policy)]
    return out


def _ours(students: dict[str, list[dict[str, Any]]]) -> dict[str, UserRecord]:
    """Our records, every event of a student folded in one gather, through the changelog's bytes."""
    changelog = {}
    for user, events in students.items():
        record = UserRecord.load(None, user)
        ingest(record, user, events)
        changelog[user.encode()] = record.to_bytes()
    return final_records(changelog, students)


@pytest.fixture(scope="module")
def students() -> dict[str, list[dict[str, Any]]]:
    return _by_student(6_000)


def test_the_same_events_compare_equal_though_the_two_score_at_different_moments(students) -> None:
    peer = _peer(students)
    assert len(peer) > len(students), "the peer re-scored every message, several per student"
    assert differences(_ours(students), final_updates(peer), MODEL) == []


def test_a_peer_that_miscounts_one_student_is_a_difference(students) -> None:
    user = next(u for u, evs in students.items() if any(e["event_type"] == "login" for e in evs))
    dropped = next(i for i, e in enumerate(students[user]) if e["event_type"] == "login")
    miscounted = {**students, user: students[user][:dropped] + students[user][dropped + 1 :]}
    found = differences(_ours(students), final_updates(_peer(miscounted)), MODEL)
    assert len(found) == 1 and found[0].startswith(f"{user}: "), found
    assert "'events_total': (" in found[0]
    assert "'logins_30d': (" in found[0] or "'logins_7d': (" in found[0] or "'login_days_7d'" in found[0]


def test_a_peer_whose_streak_or_risk_alone_differs_is_a_difference(students) -> None:
    user = next(iter(students))
    final = final_updates(_peer(students))
    final[user] = final[user] | {"risk_7d": final[user]["risk_7d"] + 1.0}
    other = next(u for u in students if u != user)
    final[other] = final[other] | {"signals": {**final[other]["signals"], "current_streak_days": 99}}
    found = differences(_ours(students), final, MODEL)
    assert [f.split(":")[0] for f in found] == sorted([user, other])
    assert any("'risk_7d'" in f for f in found) and any("'current_streak_days': (" in f for f in found)


def test_a_student_missing_on_one_side_is_a_difference(students) -> None:
    peer = final_updates(_peer(students))
    ours = _ours(students)
    gone = next(iter(students))
    del ours[gone]
    assert differences(ours, peer, MODEL) == [f"{gone}: missing on our side"]
