"""Standings for ``engage bench leaderboard``, generated as contract JSON directly (no models: a million of them
are built in seconds), and the stream child: ``python -m engage.bench.leaderboard_data stream ...`` writes
standings at a steady rate from a process of its own (so the bench's HTTP reads do not share its interpreter).

Students ``s0000000`` ...: all-time XP exponential (mean ~900, many ties below 100), 70 % active this week, ~30 %
today; one or two of ``COURSES`` courses each (always the same ones per student), the XP split between them.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from kafka_io.client import Kafka
from kafka_io.producer import EventProducer
from processors.gamification.weeks import iso_week
from schemas.topics import catalogue

COURSES = 20


def user_id(index: int) -> str:
    return f"s{index:07d}"


def _board(total: int, day: str, day_xp: int, week: str, week_xp: int) -> dict[str, Any]:
    return {"total": total, "day": day, "day_xp": day_xp, "week": week, "week_xp": week_xp}


def standing(rng: random.Random, index: int, seq: int, day: date) -> tuple[bytes, bytes, int]:
    """(key, value, all-time XP) of one random standing of student ``index``."""
    d, w = day.isoformat(), iso_week(day)
    total = int(rng.expovariate(1 / 900)) + 1
    week_xp = min(total, int(rng.expovariate(1 / 150)) + 1) if rng.random() < 0.7 else 0
    day_xp = min(week_xp, int(rng.expovariate(1 / 40)) + 1) if week_xp and rng.random() < 0.45 else 0
    picked = [index % COURSES] + ([(index * 7 + 3) % COURSES] if index % 10 < 3 else [])  # a student's own courses
    share = len(picked)
    courses = {
        f"C{c:02d}": _board(total // share or 1, d, day_xp // share, w, week_xp // share) for c in picked
    }  # fmt: skip
    user = user_id(index)
    level = 1 + int((total / 50) ** 0.5)
    glob = _board(total, d, day_xp, w, week_xp)
    value = orjson.dumps(
        {"schema_version": 1, "user_id": user, "level": level, "global_xp": glob, "courses": courses, "seq": seq}
    )
    return user.encode(), value, total


def preload(students: int, day: date, seed: int = 22) -> Iterator[tuple[bytes, bytes, int]]:
    """One standing (seq 1) per student."""
    rng = random.Random(seed)
    for i in range(students):
        yield standing(rng, i, 1, day)


def stream(bootstrap: Kafka, prefix: str, partitions: int, students: int, rate: int, seconds: float, out: Path) -> None:
    """Random students' new standings at ``rate``/s for ``seconds``, paced in 10 ms ticks; the count sent to
    ``out`` (JSON). Seqs come from one counter starting above the preload's, so each is newer than the last."""
    topics = catalogue(prefix, partitions)
    rng = random.Random(7)
    day = datetime.now(UTC).date()
    sent, tick = 0, 0.01
    producer = EventProducer(bootstrap, topics, source="bench-leaderboard-stream")
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(elapsed * rate) + int(rate * tick)
        while sent < due:
            key, value, _ = standing(rng, rng.randrange(students), 2 + sent, day)
            producer.send_encoded(key, value, topic=topics.standings.name)
            sent += 1
        time.sleep(max(0.0, started + (sent / rate) - time.monotonic()))
    producer.close(60)
    spent = time.monotonic() - started
    out.write_text(json.dumps({"sent": sent, "seconds": spent, "failed": producer.stats.failed}))


if __name__ == "__main__":  # python -m engage.bench.leaderboard_data stream BOOTSTRAP PREFIX PARTS N RATE SECONDS OUT
    if len(sys.argv) != 9 or sys.argv[1] != "stream":
        raise SystemExit("usage: stream BOOTSTRAP PREFIX PARTITIONS STUDENTS RATE SECONDS OUT")
    _, _, boot, pre, parts, n, r, secs, path = sys.argv
    stream(boot, pre, int(parts), int(n), int(r), float(secs), Path(path))
