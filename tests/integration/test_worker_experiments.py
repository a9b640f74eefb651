"""Experiments and the bandit in a real worker on real Kafka: variants applied and exposed, the bandit choosing by
what it learned from the outcomes topic, its windows closing into new outcomes, refused outcomes dead-lettered."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

from config.settings import Settings
from deploy.infra import Infra
from deploy.process import free_port
from engage.simulator import Population, iter_event_days
from kafka_io.client import kafka_conf
from processors.experiments.assignment import assign
from processors.experiments.config import load_experiments
from processors.policy import PolicyConfig
from schemas.profile import TRIGGER_GROUPS
from schemas.topics import catalogue
from tests.integration.helpers import read_to_end
from tests.integration.test_worker import _send, _settings, _totals_match, _unique_counts
from tests.integration.workers import wait_for, workers

pytestmark = pytest.mark.integration

# Per tier with a choice, what the preloaded outcomes say works: the second type of the tier's list, so a worker
# that ignored the bandit (the policy sends the first) fails. High is the experiment's.
FAVOURED = {"medium": "peer_comparison", "low": "milestone_celebration", "critical": "discount_offer"}
RESULTS = ("learned", "duplicate", "refused")
EXPERIMENTS = {
    "version": 1,
    "holdout": {"share": 0.1, "salt": "it-holdout"},
    "experiments": [
        {
            "key": "high-type",
            "surface": "intervention_type",
            "status": "running",
            "tiers": ["high"],
            "variants": [
                {"id": "control", "weight": 0.5, "intervention_type": "personalised_content"},
                {"id": "streak", "weight": 0.5, "intervention_type": "streak_warning"},
            ],
        }
    ],
}


def _preloaded_outcomes() -> list[bytes]:
    """300 returns for the favoured type and 300 misses for the other, per tier and per profile bucket."""
    policy = PolicyConfig()
    at = datetime(2026, 1, 5, tzinfo=UTC)
    out = []
    for tier, winner in FAVOURED.items():
        [loser] = [k.value for k in policy.tiers[tier].intervention_types if k.value != winner]  # type: ignore[index]
        for profile in ["", *(g.value for g in TRIGGER_GROUPS)]:
            for i in range(300):
                for arm, success in ((winner, True), (loser, False)):
                    out.append(
                        json.dumps(
                            {"intervention_id": f"pre-{tier}-{profile}-{arm}-{i}", "user_id": f"pre-{i}", "arm": arm,
                             "tier": tier, "profile": profile, "success": success,
                             "sent_at": at.isoformat(), "at": (at + timedelta(days=2)).isoformat()}
                        ).encode()
                    )  # fmt: skip
    return out


def _metric(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_worker_applies_experiments_and_the_bandit_and_learns_from_closed_windows(
    infra: Infra, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(EXPERIMENTS))
    s = _settings(
        settings, tmp_path, worker_clock="event", silence_tick_seconds=1.0, rescore_after_seconds=2.0,
        experiments_path=path, bandit_seed=7,
    )  # fmt: skip
    topics = catalogue(s.topic_prefix, s.event_partitions)
    preloaded = _preloaded_outcomes()
    producer = Producer(kafka_conf(s.kafka))
    for value in preloaded:
        producer.produce(topics.bandit_outcomes.name, value, b"pre")
    producer.produce(topics.bandit_outcomes.name, preloaded[0], b"pre")  # re-sent: counted once
    unknown = json.loads(preloaded[0])
    unknown.update(intervention_id="pre-unknown", arm="human_outreach")  # never offered to the medium tier
    producer.produce(topics.bandit_outcomes.name, json.dumps(unknown).encode(), b"pre")
    producer.produce(topics.bandit_outcomes.name, b'{"arm": "peer_comparison"}', b"pre")
    assert producer.flush(30) == 0

    # 30 simulated days that ended two weeks ago, then one student alone keeps the event clock moving to today:
    # the others fall silent, so their open windows close (returned or not) when the silence pass re-scores them.
    start = date.today() - timedelta(days=45)
    population = Population.generate(60, seed=23, start=start)
    events = [e for _, day in iter_event_days(population, 30) for e in day]
    noon = datetime.combine(start, time(12), tzinfo=UTC)
    keeper = [
        {"event_id": f"keeper-{d}", "user_id": "clock-keeper", "event_type": "login", "platform": "web",
         "event_time": (noon + timedelta(days=d)).isoformat(), "timezone": "UTC"}
        for d in range(30, 45)
    ]  # fmt: skip
    expected = _unique_counts(events)
    with workers(s, [free_port()], tmp_path) as (worker,):

        def metrics() -> str:
            return httpx.get(f"{worker.url}/metrics", timeout=10).text

        def learned() -> float:
            return _metric(metrics(), "engage_worker_bandit_outcomes_total", 'result="learned"')

        def read() -> dict[str, float]:
            text = metrics()
            return {r: _metric(text, "engage_worker_bandit_outcomes_total", f'result="{r}"') for r in RESULTS}

        # Every preloaded outcome is read before any decision is asked of the bandit.
        total = len(preloaded) + 3
        assert wait_for(lambda: sum(read().values()) >= total, timeout=60), f"the learner never read the topic {read()}"
        assert read() == {"learned": len(preloaded), "duplicate": 1, "refused": 2}
        _send(s, events)
        assert wait_for(lambda: _totals_match(worker, expected), timeout=120), "signals never matched the events"
        _send(s, keeper)
        # The event clock moved on 15 days: the bandit sends' windows closed, and came back as outcomes.
        assert wait_for(lambda: learned() > len(preloaded), timeout=60), "no closed window was learned from"

    requests = read_to_end(s.kafka, topics.interventions.name)
    exposures = read_to_end(s.kafka, topics.exposures.name)
    outcomes = read_to_end(s.kafka, topics.bandit_outcomes.name)
    closed = [c for c in outcomes if not c.get("intervention_id", "pre").startswith("pre")]
    letters = [d for d in read_to_end(s.kafka, topics.dead_letters.name) if d["source"] == "processor:bandit"]
    by_id = {r["intervention_id"]: r for r in requests}
    chosen = Counter(r["chosen_by"] for r in requests)
    assert chosen["bandit"] >= 3 and chosen["experiment"] >= 1 and chosen["policy"] >= 1, chosen

    config = load_experiments(path)
    exp = config.get("high-type")
    assert exp is not None
    first_per_tier: dict[tuple[str, str], dict[str, Any]] = {}
    for r in sorted(requests, key=lambda r: r["created_at"]):
        first_per_tier.setdefault((r["user_id"], r["tier"]), r)
        if r["status"] == "held_out":
            assert r["chosen_by"] == "policy" and r["arms"] == {}
        elif r["chosen_by"] == "experiment":
            variant = assign(exp, r["user_id"], config.holdout, r["tier"]).variant
            assert variant is not None and r["arms"] == {"high-type": variant.id}
            assert r["intervention_type"] == variant.intervention_type
    # A student's first decision at a tier has both types allowed: the bandit takes the one the outcomes favour.
    firsts = [r for r in first_per_tier.values() if r["chosen_by"] == "bandit"]
    assert firsts and all(r["intervention_type"] == FAVOURED[r["tier"]] for r in firsts), firsts

    # Each experiment-shaped request that went out has its exposure; nothing else is exposed.
    shaped = {r["intervention_id"] for r in requests if r["arms"] and r["status"] != "held_out"}
    assert {e["intervention_id"] for e in exposures} == shaped
    for e in exposures:
        assert e["experiment"] == "high-type" and e["variant"] == by_id[e["intervention_id"]]["arms"]["high-type"]

    # The worker's own outcomes: one per bandit-chosen request whose window closed, for that request's arm.
    assert closed, "no bandit window closed"
    assert len({c["intervention_id"] for c in closed}) == len(closed)
    for c in closed:
        r = by_id[c["intervention_id"]]
        assert r["chosen_by"] == "bandit" and c["arm"] == r["intervention_type"] and c["tier"] == r["tier"]
    assert {True, False} >= {c["success"] for c in closed}

    reasons = sorted(d["reason"] for d in letters)
    assert len(reasons) == 2 and "not a bandit outcome" in reasons[0] and "unknown exposure" in reasons[1], reasons
    assert all(d["dead_letter_id"].startswith("bandit-outcomes:") for d in letters)
