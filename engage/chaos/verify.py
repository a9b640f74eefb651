"""Compare, per student, what the live system holds with what the sent events define (``reference``).

Three places are read: the workers' state through the engagement API (event counts, signal totals, streaks, XP,
level and achievements), ClickHouse (event rows, daily activity, streak milestones, the newest risk update) and
the output topics (every risk update, intervention and milestone the workers emitted, against what ClickHouse
stored of them; every XP award and achievement unlock, against the reference). A difference in either direction
is reported: too few is a lost record, too many is a record counted twice. A gamification result the reference
cannot be sure of (``Expected.unsure``: the feed let events arrive out of order) is skipped for that student
alone and counted in ``Verdict.skipped``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, TopicPartition

from engage.chaos.reference import XP, Expected
from kafka_io.client import Kafka, kafka_conf
from schemas.gamification import award_rows

UNSURE = object()  # what the reference says when the arrival order decides (the check is skipped, and counted)


def _sure(value: Callable[[Expected], Any]) -> Callable[[Expected], Any]:
    """``value``, or UNSURE when the student's XP is (the level follows it)."""
    return lambda e: UNSURE if XP in e.unsure else value(e)


def _game(body: dict[str, Any]) -> dict[str, Any]:
    return body.get("gamification") or {}  # None when the worker runs without gamification: a difference


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
    "worker: XP": (_sure(lambda e: e.xp), lambda b: _game(b).get("xp")),
    "worker: level": (_sure(lambda e: e.level), lambda b: _game(b).get("level")),
    "worker: achievements unlocked": (
        lambda e: UNSURE if e.unsure - {XP} else len(e.achievements),
        lambda b: _game(b).get("achievements_unlocked"),
    ),
}
# The gamification outputs on Kafka, per student, against the reference and the worker's answer. An award's id
# names what earned it (user, event or milestone, rule), an unlock's the achievement (user, achievement): the same
# id sent again is at-least-once and fine, the same award or unlock under two ids is counted twice.
GAME_CHECKS = (
    "kafka: achievements unlocked",
    "kafka: no achievement unlocked under two ids",
    "kafka: XP of the distinct awards",
    "kafka: XP of the distinct awards is the worker's XP",
    "kafka: no award id with two XP values",
)


@dataclass(frozen=True)
class OutputTable:
    """One of the engine's outputs: its ClickHouse table, its natural id, and what makes two of them the same.

    ``logical``: the fields that name one logical output, whatever id it was given. The same output sent again
    under the same id is at-least-once delivery and fine (ReplacingMergeTree collapses it, read with FINAL); the
    same logical output under two ids is counted twice by every reader."""

    noun: str  # in the checks' names
    table: str
    id_field: str
    logical: tuple[str, ...]

    @property
    def checks(self) -> tuple[str, str, str, str]:
        """(on Kafka but not stored, stored but never produced, stored twice, emitted twice under two ids)."""
        return (
            f"clickhouse: every {self.noun} on Kafka stored (whole run)",
            f"clickhouse: no {self.noun} stored that was never produced (whole run)",
            f"clickhouse: no {self.noun} stored twice (whole run)",
            f"kafka: no {self.noun} emitted twice under two ids",
        )


# The id schemes (schemas/, processors/) and what names one logical output:
# - a risk update is one re-score: ``update_id`` is f"{user_id}:{score_seq}"; a re-score is the scoring of one
#   student at one wall-clock instant (``scored_at``) as of one time. Re-scoring the same events again later
#   (a restored record owed a score) is a new re-score, with a new ``scored_at``, not a double.
# - an intervention is one policy decision on one score: ``intervention_id`` is derived from (user, type, the
#   triggering event time), and a score decides at most one intervention, so two ids for one student and one
#   triggering event time are one score acted on twice.
# - a milestone is once per (user, streak run, milestone): ``milestone_id`` is derived from (user, run_start,
#   milestone_days). (Two milestones of 7 days for one student are fine when they are two runs.)
OUTPUTS = (
    OutputTable("risk update", "risk_updates", "update_id", ("user_id", "scored_at", "as_of")),
    OutputTable("intervention", "intervention_requests", "intervention_id", ("user_id", "triggered_by_event_time")),
    OutputTable("milestone", "streak_milestones", "milestone_id", ("user_id", "run_start", "milestone_days")),
)
CLICKHOUSE_CHECKS = (
    "clickhouse: event rows",
    "clickhouse: daily activity events",
    "clickhouse: daily activity active days",
    "clickhouse: streak milestones",
    "clickhouse: newest risk update saw every event",
    "clickhouse: dead letters (whole run)",
    *(check for output in OUTPUTS for check in output.checks),
)


@dataclass(frozen=True)
class Difference:
    user_id: str
    check: str
    expected: Any
    observed: Any

    @property
    def missing(self) -> bool:
        """Less was found than expected (a lost record), rather than more (a record counted twice)."""
        if isinstance(self.expected, int) and isinstance(self.observed, int):
            return self.observed < self.expected
        if isinstance(self.expected, list) and isinstance(self.observed, list):
            return bool(Counter(self.expected) - Counter(self.observed))
        return False

    @property
    def doubled(self) -> bool:
        """More was found than expected: a record counted, stored or emitted twice."""
        if isinstance(self.expected, int) and isinstance(self.observed, int):
            return self.observed > self.expected
        if isinstance(self.expected, list) and isinstance(self.observed, list):
            return bool(Counter(self.observed) - Counter(self.expected))
        return False


@dataclass
class Verdict:
    users: int
    differences: list[Difference] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)  # whole-run figures for the report
    skipped: Counter[str] = field(default_factory=Counter)  # check -> students it skipped (``Expected.unsure``)

    @property
    def delivered(self) -> bool:
        return self.users > 0 and not self.differences

    def by_check(self) -> dict[str, int]:
        """Students wrong per check (every check listed, 0 when none)."""
        out = dict.fromkeys([*WORKER_CHECKS, *CLICKHOUSE_CHECKS, *GAME_CHECKS], 0)
        for d in self.differences:
            out[d.check] = out.get(d.check, 0) + 1
        return out


def worker_differences(
    expected: Mapping[str, Expected],
    worker_url: str,
    headers: dict[str, str],
    skipped: Counter[str] | None = None,
    answers: dict[str, dict[str, Any]] | None = None,
) -> list[Difference]:
    """Ask the engagement API for every student (any worker forwards to the owner) and compare; a check the
    reference is unsure of is counted in ``skipped``; each answer is kept in ``answers``."""
    out: list[Difference] = []
    with httpx.Client(base_url=worker_url, headers=headers, timeout=10.0) as client:
        for user_id, exp in expected.items():
            resp = client.get(f"/v1/users/{user_id}/engagement")
            if resp.status_code != 200:  # 404: unknown; 503: no worker owns the student's partition right now
                out.append(Difference(user_id, "worker: events", exp.events, f"HTTP {resp.status_code}"))
                continue
            body = resp.json()
            if answers is not None:
                answers[user_id] = body
            for check, (want, got) in WORKER_CHECKS.items():
                wanted = want(exp)
                if wanted is UNSURE:
                    if skipped is not None:
                        skipped[check] += 1
                elif wanted != got(body):
                    out.append(Difference(user_id, check, wanted, got(body)))
    return out


def game_differences(
    expected: Mapping[str, Expected],
    awards: list[dict[str, Any]],
    unlocks: list[dict[str, Any]],
    worker_xp: Mapping[str, Any],
    skipped: Counter[str],
) -> list[Difference]:
    """The XP awards and unlocks on Kafka per student (``GAME_CHECKS``): the distinct awards' XP against the
    reference and against the worker's total (``worker_xp``: user -> the API's XP); the achievements unlocked
    against the reference, none missing, none extra, each under one id. What the reference is unsure of is left
    out of the comparison for that student and counted in ``skipped``."""
    unlocked, two_ids, xp_reference, xp_worker, two_values = GAME_CHECKS
    xp_of: dict[str, dict[str, set[int]]] = {}  # user -> award id -> the XP values it was sent with
    for a in awards:
        xp_of.setdefault(str(a.get("user_id")), {}).setdefault(str(a.get("award_id")), set()).add(int(a["xp"]))
    ids_of: dict[str, dict[str, set[str]]] = {}  # user -> achievement -> the unlock ids it was sent under
    for u in unlocks:
        named = ids_of.setdefault(str(u.get("user_id")), {})
        named.setdefault(str(u.get("achievement_id")), set()).add(str(u.get("unlock_id")))
    out: list[Difference] = []
    for user in sorted(set(expected) | set(xp_of) | set(ids_of)):
        exp = expected.get(user, Expected())
        per_award = xp_of.get(user, {})
        if any(len(values) > 1 for values in per_award.values()):
            out.append(Difference(user, two_values, len(per_award), sum(len(v) for v in per_award.values())))
        total = sum(max(values) for values in per_award.values())
        if XP in exp.unsure:
            skipped[xp_reference] += 1
        elif total != exp.xp:
            out.append(Difference(user, xp_reference, exp.xp, total))
        answered = user in worker_xp or user not in expected  # one the API did not answer is a difference already
        if answered and total != worker_xp.get(user, 0):
            out.append(Difference(user, xp_worker, worker_xp.get(user, 0), total))
        named = ids_of.get(user, {})
        unsure = exp.unsure - {XP}
        if unsure:
            skipped[unlocked] += 1
        want, got = sorted(set(exp.achievements) - unsure), sorted(set(named) - unsure)
        if want != got:
            out.append(Difference(user, unlocked, want, got))
        if any(len(ids) > 1 for ids in named.values()):
            out.append(Difference(user, two_ids, len(named), sum(len(ids) for ids in named.values())))
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


def topic_messages(bootstrap: Kafka, topic: str) -> list[dict[str, Any]]:
    """Every message on ``topic``, decoded, read from the start to the end offsets taken first."""
    consumer = Consumer(kafka_conf(bootstrap, {"group.id": "chaos-verifier", "enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p, end in ends.items() if end > 0])
        left, out = sum(ends.values()), []
        while left > 0:
            msg = consumer.poll(5.0)
            if msg is None:
                raise RuntimeError(f"{topic}: {left} messages could not be read back")
            if msg.error() is not None:
                continue
            left -= 1
            out.append(orjson.loads(msg.value() or b"{}"))
        return out
    finally:
        consumer.close()


def compare_output(output: OutputTable, produced: list[dict[str, Any]], stored: Mapping[str, int]) -> list[Difference]:
    """One output's messages on Kafka (``produced``) against its rows in ClickHouse (``stored``: id -> rows after
    FINAL), in both directions: produced but not stored; stored but never produced; stored in more rows than
    the id had distinct messages (the same message sent again collapses to one row); and one logical output
    emitted under two ids (per student: logical outputs expected, ids found)."""
    on_kafka, out = {str(m.get(output.id_field)) for m in produced}, []
    missing, unknown = on_kafka - set(stored), set(stored) - on_kafka
    in_stored, never_produced, twice, two_ids = output.checks
    if missing:
        out.append(Difference("(all)", in_stored, len(on_kafka), len(on_kafka) - len(missing)))
    if unknown:
        out.append(Difference("(all)", never_produced, 0, len(unknown)))
    versions: dict[str, set[bytes]] = {}
    for m in produced:
        versions.setdefault(str(m.get(output.id_field)), set()).add(orjson.dumps(m, option=orjson.OPT_SORT_KEYS))
    over = sum(rows - len(versions[i]) for i, rows in stored.items() if i in versions and rows > len(versions[i]))
    if over:
        out.append(Difference("(all)", twice, sum(stored.values()) - over, sum(stored.values())))
    ids: dict[tuple[Any, ...], set[str]] = {}
    for m in produced:
        ids.setdefault((str(m.get("user_id")), *(m.get(f) for f in output.logical)), set()).add(
            str(m.get(output.id_field))
        )
    per_user: dict[str, tuple[int, int]] = {}
    for (user, *_), named in ids.items():
        outputs, found = per_user.get(user, (0, 0))
        per_user[user] = (outputs + 1, found + len(named))
    out += [Difference(u, two_ids, n, found) for u, (n, found) in sorted(per_user.items()) if found > n]
    return out


def output_differences(client: Any, database: str, bootstrap: Kafka, topics: Mapping[str, str]) -> list[Difference]:
    """Per output table (``topics``: table -> topic), Kafka against ClickHouse both ways (``compare_output``)."""
    out = []
    for output in OUTPUTS:
        produced = topic_messages(bootstrap, topics[output.table])
        rows = f"SELECT {output.id_field}, count() FROM {database}.{output.table} FINAL GROUP BY {output.id_field}"
        stored = {str(i): n for i, n in client.execute(rows)}
        out += compare_output(output, produced, stored)
    return out


def verify(
    expected: Mapping[str, Expected],
    worker_url: str,
    headers: dict[str, str],
    client: Any,
    database: str,
    dead_letters_expected: int = 0,
    bootstrap: Kafka | None = None,
    output_topics: Mapping[str, str] | None = None,
    game_topics: tuple[str, str] | None = None,
) -> Verdict:
    """Every check for every student; the dead letters must be exactly the events the collector refused; and
    with ``bootstrap`` and ``output_topics`` (table -> topic), the outputs on Kafka and in ClickHouse must be the
    same, each once (``compare_output``); with ``game_topics`` (the XP awards' and the unlocks' topics), the
    gamification outputs must match the reference and the workers (``game_differences``)."""
    skipped: Counter[str] = Counter()
    answers: dict[str, dict[str, Any]] = {}
    worker = worker_differences(expected, worker_url, headers, skipped, answers)
    differences, totals = clickhouse_differences(expected, client, database)
    if bootstrap is not None and output_topics is not None:
        differences += output_differences(client, database, bootstrap, output_topics)
    if totals["dead letters"] != dead_letters_expected:
        differences.append(
            Difference("(all)", "clickhouse: dead letters (whole run)", dead_letters_expected, totals["dead letters"])
        )
    if bootstrap is not None and game_topics is not None:
        batches, unlocks = (topic_messages(bootstrap, topic) for topic in game_topics)
        awards = [row for batch in batches for row in award_rows(batch)]  # one XpAwardBatch: a student's batch
        worker_xp = {user: _game(body).get("xp") for user, body in answers.items()}
        differences += game_differences(expected, awards, unlocks, worker_xp, skipped)
        totals["XP awards (distinct ids)"] = len({a.get("award_id") for a in awards})
        totals["XP awards sent again under their own id"] = len(awards) - totals["XP awards (distinct ids)"]
        totals["achievements unlocked (distinct ids)"] = len({u.get("unlock_id") for u in unlocks})
    differences = worker + differences
    totals = {"events expected": sum(e.events for e in expected.values()), **totals}
    return Verdict(users=len(expected), differences=differences, totals=totals, skipped=skipped)
