"""The backfill's pure half: stored rows back into events (round trip through a current ClickHouse, chdb), the
replay of a student's history, the summary; and the command's refusal of a bad rules file."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from engage.gamification_backfill import EVENT_COLUMNS, BackfillSummary, event_from_row, replay_unlocks
from processors.gamification.rules import rules_from_file
from processors.pipeline import UserRecord, ingest_and_play
from processors.state import UserState
from schemas.gamification import unlock_id
from sinks.behavior_events import landing_rows
from sinks.clickhouse.migrations import create_all
from sinks.clickhouse.tables import BEHAVIOR_EVENTS_LANDING
from tests.chdb_support import ChdbClient
from tests.gamification_history import DUPLICATED, EVENTS, EXPECTED, RULES, rules


@pytest.fixture(scope="module")
def stored_rows() -> Iterator[list[tuple[Any, ...]]]:
    """EVENTS through the sink's landing rows into a current ClickHouse, read back as the backfill reads them."""
    client = ChdbClient()
    create_all(client, "bf")
    names = ", ".join(BEHAVIOR_EVENTS_LANDING.column_names)
    # the duplicate in an insert of its own (a current ClickHouse collapses duplicates within one insert)
    for offset, events in enumerate([EVENTS, [e for e in EVENTS if e["event_id"] == DUPLICATED]]):
        rows = []
        for event in events:
            batch = orjson.dumps({"schema_version": 1, "user_id": event["user_id"], "events": [event]})
            rows += landing_rows(batch, 0, offset)
        client.execute(
            f"INSERT INTO bf.behavior_events_landing ({names}) VALUES",
            [list(c) for c in zip(*rows, strict=True)],
            columnar=True,
        )
    yield client.execute(
        f"SELECT {', '.join(EVENT_COLUMNS)} FROM bf.behavior_events ORDER BY user_id, event_time, event_id"
    )
    client.close()


def test_stored_events_come_back_as_they_were_sent(stored_rows: list[tuple[Any, ...]]) -> None:
    back = [event_from_row(r) for r in stored_rows]
    sent = {e["event_id"]: e for e in EVENTS}
    # the duplicate is read twice until ClickHouse merges it away (the replay's signals drop it by its id)
    assert len(EVENTS) <= len(back) <= len(EVENTS) + 1 and {e["event_id"] for e in back} == set(sent)
    for event in back:
        assert event == sent[event["event_id"]]  # offsets, optional fields (absent stays absent), payloads


def test_the_replay_finds_each_students_unlocks_once(stored_rows: list[tuple[Any, ...]]) -> None:
    found: dict[str, list[str]] = {}
    for user, group in itertools.groupby((event_from_row(r) for r in stored_rows), key=lambda e: e["user_id"]):
        unlocks = replay_unlocks(user, list(group), rules())
        assert all(u.backfilled and u.unlock_id == unlock_id(user, u.achievement_id) for u in unlocks)
        assert all(u.rules_version == 7 for u in unlocks)
        if unlocks:
            found[user] = [u.achievement_id for u in unlocks]
    assert {u: set(ids) for u, ids in found.items()} == EXPECTED
    assert all(len(ids) == len(set(ids)) for ids in found.values())  # each once


def test_an_unlock_carries_the_completing_event_and_the_first_event() -> None:
    s1 = [e for e in EVENTS if e["user_id"] == "s1"]
    by_id = {u.achievement_id: u for u in replay_unlocks("s1", s1, rules())}
    first_seen = datetime.fromisoformat(s1[0]["event_time"])
    assert by_id["first-lesson"].event_time == first_seen
    assert by_id["streak"].event_time == datetime.fromisoformat(s1[2]["event_time"])  # the third local day
    assert by_id["lessons.2"].event_time == datetime.fromisoformat(s1[2]["event_time"])
    assert all(u.first_seen == first_seen for u in by_id.values())
    assert by_id["lessons.2"].name == "Lessons (2)"


def test_local_days_come_from_the_stored_zone_and_offset() -> None:
    """Without the zone and the device's offset (UTC days only) s1's and s2's three local days are not a row."""
    for user in ("s1", "s2"):
        utc_only = [
            {k: v for k, v in e.items() if k != "timezone"}
            | {"event_time": datetime.fromisoformat(e["event_time"]).astimezone(UTC).isoformat()}
            for e in EVENTS
            if e["user_id"] == user
        ]
        assert "streak" not in {u.achievement_id for u in replay_unlocks(user, utc_only, rules())}


def _studious(user: str, days: int) -> list[dict[str, Any]]:
    """Three lessons and a quiz a day (a comeback after a 10-day break halfway), in event-time order."""
    out: list[dict[str, Any]] = []
    start = datetime(2026, 1, 5, 8, tzinfo=UTC)
    for d in (d for d in range(days) if not days // 2 <= d < days // 2 + 10):
        for k in range(4):
            kind = "quiz_submitted" if k == 3 else "lesson_completed"
            payload = {"quiz_id": f"q{d}", "score": 80.0, "max_score": 100.0} if k == 3 else {"lesson_id": f"l{k}",
                       "duration_seconds": 60.0}  # fmt: skip
            out.append({"event_id": f"{user}-{d}-{k}", "user_id": user, "event_type": kind, "platform": "web",
                        "event_time": (start + timedelta(days=d, hours=k)).isoformat(), "timezone": "Europe/Paris",
                        "course_id": "c-1", "payload": payload})  # fmt: skip
    return out


def test_a_fold_per_day_unlocks_what_a_fold_per_event_does() -> None:
    """Events arriving one by one (the finest a worker can see them) and the backfill's day per fold agree, on
    the shipped rules; so does one fold of the whole history (the late-event cut-off counts from the newest day seen
    before each event, so a long batch loses no capped XP)."""
    shipped = rules_from_file()
    events = _studious("p1", 70)
    record = UserRecord(state=UserState(user_id="p1"))
    one_by_one: set[str] = set()
    for event in events:
        _, outcome = ingest_and_play(record, "p1", [event], None, shipped)
        one_by_one |= {u.achievement_id for u in outcome.unlocks} if outcome else set()
    replayed = [u.achievement_id for u in replay_unlocks("p1", events, shipped)]
    assert set(replayed) == one_by_one and len(replayed) == len(one_by_one)
    assert {"lessons.100", "streak.30", "comeback", "level-5", "all-rounder"} <= one_by_one
    whole = UserRecord(state=UserState(user_id="p1"))
    _, at_once = ingest_and_play(whole, "p1", events, None, shipped)
    assert at_once is not None and whole.game.xp == record.game.xp
    assert set(whole.game.unlocked) == set(record.game.unlocked)


def test_the_summary_skips_what_is_stored_and_counts_per_achievement() -> None:
    summary = BackfillSummary()
    s1 = replay_unlocks("s1", [e for e in EVENTS if e["user_id"] == "s1"], rules())
    new = summary.add(s1, stored={unlock_id("s1", "first-lesson")})
    assert sorted(u.achievement_id for u in new) == ["lessons.2", "level-2", "streak"]
    summary.add(replay_unlocks("s3", [e for e in EVENTS if e["user_id"] == "s3"], rules()), stored=set())
    summary.students, summary.events, summary.sent = 2, 6, 5
    lines = summary.lines(dry_run=True)
    assert lines[:2] == [
        "students read: 2; events replayed: 6",
        "unlocks found: 6; already in the warehouse: 1; would send: 5",
    ]
    assert lines[2].split() == ["first-lesson", "2", "students", "(1", "already", "stored)"]
    assert len(lines) == 2 + 5


def test_a_bad_rules_file_is_refused_naming_the_rule_and_field(tmp_path: Any) -> None:
    from engage.cli import app

    bad = dict(RULES, xp=[{"id": "lesson", "match": {"event_type": "lesson_completed"}, "xp": -5}])
    path = tmp_path / "rules.json"
    path.write_text(orjson.dumps(bad).decode())
    result = CliRunner().invoke(app, ["gamification", "backfill", "--rules", str(path), "--dry-run"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "cannot use rules file" in text and "xp[0] (lesson): xp: XP cannot be negative (-5)" in text
