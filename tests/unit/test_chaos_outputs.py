"""The chaos verifier compares the outputs on Kafka with ClickHouse both ways: lost, invented, stored twice, and one
logical output emitted under two ids; an output sent again under its own id is at-least-once and fine."""

from __future__ import annotations

from typing import Any

from engage.chaos.verify import OUTPUTS, compare_output

RISK, INTERVENTION, MILESTONE = OUTPUTS


def _milestone(user: str, days: int, run_start: str = "2026-03-01", mid: str | None = None) -> dict[str, Any]:
    return {"milestone_id": mid or f"{user}:{run_start}:{days}", "user_id": user, "milestone_days": days,
            "run_start": run_start, "reached_on": "2026-03-07"}  # fmt: skip


def _update(user: str, seq: int, scored_at: str = "2026-03-01T10:00:00Z", uid: str | None = None) -> dict[str, Any]:
    return {"update_id": uid or f"{user}:{seq}", "user_id": user, "scored_at": scored_at,
            "as_of": "2026-03-01T09:00:00Z", "risk_7d": 10.0 * seq}  # fmt: skip


def _stored(messages: list[dict[str, Any]], id_field: str) -> dict[str, int]:
    """What a correct sink leaves after FINAL: one row per distinct message."""
    out: dict[str, int] = {}
    for m in {repr(sorted(m.items())): m for m in messages}.values():
        out[m[id_field]] = out.get(m[id_field], 0) + 1
    return out


def test_outputs_each_stored_once_compare_equal_even_when_sent_again_under_their_own_id() -> None:
    produced = [_milestone("u1", 7), _milestone("u1", 14), _milestone("u1", 7, "2026-04-01"), _milestone("u2", 7)]
    again = [*produced, produced[0]]  # re-sent from an outbox after a crash: the same id, collapsed by FINAL
    assert compare_output(MILESTONE, again, _stored(again, "milestone_id")) == []
    updates = [_update("u1", 1), _update("u1", 2, "2026-03-01T10:05:00Z"), _update("u2", 1)]
    assert compare_output(RISK, updates, _stored(updates, "update_id")) == []


def test_a_milestone_emitted_twice_under_two_ids_is_doubled() -> None:
    produced = [_milestone("u1", 7), _milestone("u1", 7, mid="u1:7:a-fresh-id"), _milestone("u2", 7)]
    found = compare_output(MILESTONE, produced, _stored(produced, "milestone_id"))
    assert [(d.user_id, d.check, d.expected, d.observed, d.doubled) for d in found] == [
        ("u1", "kafka: no milestone emitted twice under two ids", 1, 2, True)
    ]


def test_a_risk_update_emitted_twice_under_two_ids_is_doubled_but_a_new_rescore_is_not() -> None:
    produced = [_update("u1", 1), _update("u1", 1, uid="u1:1:again"), _update("u1", 2, "2026-03-01T10:05:00Z")]
    found = compare_output(RISK, produced, _stored(produced, "update_id"))
    assert [(d.user_id, d.check, d.expected, d.observed) for d in found] == [
        ("u1", "kafka: no risk update emitted twice under two ids", 2, 3)
    ]


def test_an_intervention_twice_for_one_triggering_score_is_doubled() -> None:
    base = {"user_id": "u1", "triggered_by_event_time": "2026-03-01T09:00:00Z"}
    produced = [base | {"intervention_id": "a", "intervention_type": "gentle_reminder"},
                base | {"intervention_id": "b", "intervention_type": "milestone_celebration"}]  # fmt: skip
    (found,) = compare_output(INTERVENTION, produced, _stored(produced, "intervention_id"))
    assert found.check == "kafka: no intervention emitted twice under two ids" and found.doubled


def test_a_row_stored_that_was_never_produced_and_a_row_lost_are_both_found() -> None:
    produced = [_milestone("u1", 7), _milestone("u2", 7)]
    stored = {"u1:2026-03-01:7": 1, "u1:2026-03-02:7": 1}  # u2's lost; a row with an id Kafka never had
    found = {d.check: d for d in compare_output(MILESTONE, produced, stored)}
    lost = found["clickhouse: every milestone on Kafka stored (whole run)"]
    assert (lost.expected, lost.observed, lost.missing) == (2, 1, True)
    invented = found["clickhouse: no milestone stored that was never produced (whole run)"]
    assert (invented.expected, invented.observed, invented.doubled) == (0, 1, True)


def test_an_output_stored_in_more_rows_than_it_had_messages_is_doubled() -> None:
    produced = [_update("u1", 1), _update("u1", 1)]  # sent twice, the same message: one row after FINAL
    (found,) = compare_output(RISK, produced, {"u1:1": 2})
    assert found.check == "clickhouse: no risk update stored twice (whole run)"
    assert (found.expected, found.observed, found.doubled) == (1, 2, True)
