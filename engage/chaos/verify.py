"""Compare, per student, what the live system holds with what the sent events define (``reference``).

Two places are read: the workers' state through the engagement API (event counts, signal totals, streaks)
and ClickHouse (event rows, daily activity, streak milestones, the newest risk update). A difference in
either direction is reported: too few is a lost record, too many is a record counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition

from engage.chaos.reference import Expected

# check name -> (what the reference says, where the live value is read)
WORKER_CHECKS: dict[str, tuple[Callable[[Expected], Any], Callable[[dict[str, Any]], Any]]] = {
    "worker: events": (lambda e: e.events, lambda b: b["signals"]["events_total"]),
    "worker: logins 30d": (lambda e: e.logins, lambda b: b["signals"]["logins_30d"]),
    "worker: sessions 30d": (lambda e: e.sessions, lambda b: b["signals"]["sessions_30d"]),
    "worker: lessons completed 30d": (lambda e: e.lessons_completed, lambda b: b["signals"]["lessons_completed_30d"]),
    "worker: quizzes 30d": (lambda e: e.quizzes, lambda b: b["signals"]["quizzes_30d"]),
    "worker: active days 30d": (lambda e: e.active_days_30d, lambda b: b["signals"]["active_days_30d"]),
    "worker: current streak": (lambda e: e.current_streak, lambda b: b["streak"]["current_days"]),
    "worker: longest streak": (lambda e: e.longest_streak, lambda b: b["streak"]["longest_days"]),
}
CLICKHOUSE_CHECKS = (
    "clickhouse: event rows",
    "clickhouse: daily activity events",
    "clickhouse: daily activity active days",
    "clickhouse: streak milestones",
    "clickhouse: newest risk update saw every event",
    "clickhouse: dead letters (whole run)",
    "clickhouse: every risk update on Kafka stored (whole run)",
    "clickhouse: every intervention on Kafka stored (whole run)",
    "clickhouse: every milestone on Kafka stored (whole run)",
)
# The engine's own outputs: what the sinks must have stored is exactly what is on their topics (by natural id).
OUTPUT_TABLES = {
    "clickhouse: every risk update on Kafka stored (whole run)": ("risk_updates", "update_id"),
    "clickhouse: every intervention on Kafka stored (whole run)": ("intervention_requests", "intervention_id"),
    "clickhouse: every milestone on Kafka stored (whole run)": ("streak_milestones", "milestone_id"),
}


@dataclass(frozen=True)
class Difference:
    user_id: str
    check: str
    expected: Any
    observed: Any


@dataclass
class Verdict:
    users: int
    differences: list[Difference] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # whole-run figures for the report

    @property
    def delivered(self) -> bool:
        return self.users > 0 and not self.differences

    def by_check(self) -> dict[str, int]:
        """Students wrong per check (every check listed, 0 when none)."""
        out = dict.fromkeys([*WORKER_CHECKS, *CLICKHOUSE_CHECKS], 0)
        for d in self.differences:
            out[d.check] = out.get(d.check, 0) + 1
        return out


def worker_differences(expected: Mapping[str, Expected], worker_url: str, headers: dict[str, str]) -> list[Difference]:
    """Ask the engagement API for every student (any worker forwards to the owner) and compare."""
    out: list[Difference] = []
    with httpx.Client(base_url=worker_url, headers=headers, timeout=10.0) as client:
        for user_id, exp in expected.items():
            resp = client.get(f"/v1/users/{user_id}/engagement")
            if resp.status_code != 200:  # 404: unknown; 503: no worker owns the student's partition right now
                out.append(Difference(user_id, "worker: events", exp.events, f"HTTP {resp.status_code}"))
                continue
            body = resp.json()
            for check, (want, got) in WORKER_CHECKS.items():
                if want(exp) != got(body):
                    out.append(Difference(user_id, check, want(exp), got(body)))
    return out


def clickhouse_differences(
    expected: Mapping[str, Expected], client: Any, database: str
) -> tuple[list[Difference], dict[str, int]]:
    """Per student rows in ClickHouse (FINAL: re-delivered rows collapse) against the reference."""
    db = database
    rows = dict(client.execute(f"SELECT user_id, count() FROM {db}.behavior_events FINAL GROUP BY user_id"))
    raw_rows = client.execute(f"SELECT count() FROM {db}.behavior_events")[0][0]
    daily = {
        u: (n, a)
        for u, n, a in client.execute(
            f"SELECT user_id, sum(n), countIf(a = 1) FROM (SELECT user_id, day, uniqExactMerge(events) AS n, "
            f"maxMerge(active) AS a FROM {db}.user_daily_activity GROUP BY user_id, day) GROUP BY user_id"
        )
    }
    milestones = {
        u: sorted(days)
        for u, days in client.execute(
            f"SELECT user_id, groupArray(milestone_days) FROM {db}.streak_milestones FINAL GROUP BY user_id"
        )
    }
    newest = dict(client.execute(f"SELECT user_id, max(signals_events_total) FROM {db}.risk_updates GROUP BY user_id"))
    dead_letters = client.execute(f"SELECT count() FROM {db}.dead_letters FINAL")[0][0]
    out: list[Difference] = []
    for user_id, exp in expected.items():
        checks: list[tuple[str, Any, Any]] = [
            ("clickhouse: event rows", exp.events, rows.get(user_id, 0)),
            ("clickhouse: daily activity events", exp.events, daily.get(user_id, (0, 0))[0]),
            ("clickhouse: daily activity active days", exp.utc_active_days, daily.get(user_id, (0, 0))[1]),
            ("clickhouse: streak milestones", list(exp.milestones), milestones.get(user_id, [])),
            ("clickhouse: newest risk update saw every event", exp.events, newest.get(user_id, 0)),
        ]
        out += [Difference(user_id, name, want, got) for name, want, got in checks if want != got]
    unknown = (set(rows) | set(newest)) - set(expected)
    out += [Difference(u, "clickhouse: event rows", 0, rows.get(u, 0)) for u in sorted(unknown)]
    totals = {
        "event rows (FINAL)": sum(rows.values()),
        "event rows before collapsing re-deliveries": raw_rows,
        "risk updates (FINAL)": client.execute(f"SELECT count() FROM {db}.risk_updates FINAL")[0][0],
        "streak milestones (FINAL)": sum(len(v) for v in milestones.values()),
        "dead letters": dead_letters,
    }
    return out, totals


def topic_ids(bootstrap: str, topic: str, field_name: str) -> set[str]:
    """Every ``field_name`` in the messages on ``topic``, read from the start to the current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-verifier", "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        left, ids = sum(ends.values()), set()
        while left > 0:
            msg = consumer.poll(5.0)
            if msg is None:
                raise RuntimeError(f"{topic}: {left} messages could not be read back")
            if msg.error() is not None:
                continue
            left -= 1
            ids.add(str(orjson.loads(msg.value() or b"{}").get(field_name)))
        return ids
    finally:
        consumer.close()


def output_differences(client: Any, database: str, bootstrap: str, topics: Mapping[str, str]) -> list[Difference]:
    """Per output table: ids on its Kafka topic that ClickHouse does not hold (``topics``: table -> topic)."""
    out = []
    for check, (table, id_field) in OUTPUT_TABLES.items():
        on_kafka = topic_ids(bootstrap, topics[table], id_field)
        stored = {str(r[0]) for r in client.execute(f"SELECT DISTINCT {id_field} FROM {database}.{table}")}
        missing = on_kafka - stored
        if missing:
            out.append(Difference("(all)", check, len(on_kafka), len(on_kafka) - len(missing)))
    return out


def verify(
    expected: Mapping[str, Expected],
    worker_url: str,
    headers: dict[str, str],
    client: Any,
    database: str,
    dead_letters_expected: int = 0,
    bootstrap: str | None = None,
    output_topics: Mapping[str, str] | None = None,
) -> Verdict:
    """Every check for every student; the dead letters must be exactly the events the collector refused; and
    with ``bootstrap`` and ``output_topics`` (table -> topic), every output on Kafka must be in ClickHouse."""
    differences, totals = clickhouse_differences(expected, client, database)
    if bootstrap is not None and output_topics is not None:
        differences += output_differences(client, database, bootstrap, output_topics)
    if totals["dead letters"] != dead_letters_expected:
        differences.append(
            Difference("(all)", "clickhouse: dead letters (whole run)", dead_letters_expected, totals["dead letters"])
        )
    differences = worker_differences(expected, worker_url, headers) + differences
    totals = {"events expected": sum(e.events for e in expected.values()), **totals}
    return Verdict(users=len(expected), differences=differences, totals=totals)
