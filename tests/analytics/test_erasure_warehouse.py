"""The warehouse half of an erasure on both engines, for ids SQL cares about: quotes, backslashes, LIKE wildcards.

The id reaches ClickHouse as a parameter (clickhouse-driver escapes it); a lookalike id that an unescaped
``_`` or ``%`` would match must keep its rows, in the tables and in the dead letters.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from config.settings import Settings
from schemas.messages import DeadLetter
from sinks.clickhouse.tables import DEAD_LETTERS
from sinks.erasure import erase_from_warehouse, user_tables
from tests.analytics.conftest import Warehouse, event

GONE = "o'brien\\x_1%"
LOOKALIKE = "o'brien\\xa1%z"  # matches GONE's pattern if ``_`` and ``%`` were wildcards


def _letter(user: str) -> DeadLetter:
    raw = orjson.dumps({"user_id": user, "event_type": "nope"}).decode()
    return DeadLetter(dead_letter_id=f"d-{user}", received_at=datetime.now(UTC), source="t", reason="t", raw=raw)


def _rows(warehouse: Warehouse, user: str) -> dict[str, int]:
    count = "SELECT count() FROM {}.{} WHERE user_id = %(user)s"
    return {
        t: warehouse.client.execute(count.format(warehouse.database, t), {"user": user})[0][0] for t in user_tables()
    }


def test_erasure_deletes_exactly_the_students_rows(warehouse: Warehouse) -> None:
    warehouse.events(event(GONE, "2026-11-02"), event(LOOKALIKE, "2026-11-02"))
    warehouse.contract(DEAD_LETTERS, _letter(GONE), _letter(LOOKALIKE))
    settings = Settings(clickhouse_database=warehouse.database, clickhouse_cluster="")

    before = erase_from_warehouse(warehouse.client, settings, GONE, timeout=60)

    assert before["behavior_events"] == 1 and before["dead_letters"] == 1
    assert set(_rows(warehouse, GONE).values()) == {0}
    assert _rows(warehouse, LOOKALIKE)["behavior_events"] == 1
    letters = warehouse.client.execute(f"SELECT raw FROM {warehouse.database}.dead_letters")
    assert [orjson.loads(r)["user_id"] for (r,) in letters] == [LOOKALIKE]
