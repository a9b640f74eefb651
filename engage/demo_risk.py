"""The demo's second half: what the stream processors made of the simulated cohort.

Reads the risk-updates, interventions and streak-milestones topics (the latest risk per student), and checks
the scores against the simulator's ground truth: accuracy is measured, not claimed.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from kafka_io.client import Kafka, kafka_conf
from models.metrics import roc_auc
from schemas.topics import catalogue

TIERS = ("critical", "high", "medium", "low", "minimal")


def _read(bootstrap: Kafka, topic: str) -> list[dict[str, Any]]:
    consumer = Consumer(
        kafka_conf(bootstrap, {"group.id": f"demo-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    idle = 0
    try:
        while idle < 4:
            batch = consumer.consume(5_000, timeout=0.5)
            idle = 0 if batch else idle + 1
            out.extend(orjson.loads(m.value() or b"{}") for m in batch if m.error() is None)
    finally:
        consumer.close()
    return out


def show_risk(settings: Settings, console: Console, since: datetime, truth_path: Path) -> None:
    topics = catalogue(settings.topic_prefix, settings.event_partitions)
    truth = {r["user_id"]: r for r in (orjson.loads(line) for line in truth_path.read_text().splitlines() if line)}
    latest: dict[str, dict[str, Any]] = {}
    for update in _read(settings.kafka, topics.risk_updates.name):
        user = update["user_id"]
        if user in truth and (user not in latest or update["scored_at"] >= latest[user]["scored_at"]):
            latest[user] = update
    if not latest:
        console.print("[red]no risk updates found[/red]")
        return

    tiers = Counter(u["tier"] for u in latest.values())
    model = next(iter(latest.values()))["model_version"]
    table = Table(title=f"Drop-off risk now ({len(latest)} students, model {model})", title_justify="left")
    for col in ("tier", "students", "who really churns (simulator truth)"):
        table.add_column(col, justify="left" if col == "tier" else "right")
    for tier in TIERS:
        members = [u for u, r in latest.items() if r["tier"] == tier]
        churns = sum(1 for u in members if truth[u]["churns"])
        share = f"{churns}/{len(members)} ({churns / len(members):.0%})" if members else "-"
        table.add_row(tier, str(tiers.get(tier, 0)), share)
    console.print(table)

    users = list(latest)
    auc = roc_auc([latest[u]["risk_30d"] for u in users], [bool(truth[u]["churns"]) for u in users])
    console.print(f"  ROC AUC of risk_30d against who churns in the simulation: [bold]{auc:.3f}[/bold] "
                  "(0.5 = chance). Simulated churners go silent, which the heuristic sees directly;")  # fmt: skip
    console.print("  accuracy on real students is measured on OULAD (the model issue), not here.")

    top = sorted(latest.values(), key=lambda r: -r["risk_7d"])[:8]
    at_risk = Table(title="At-risk list (highest 7-day risk first)", title_justify="left")
    for col in ("student", "tier", "risk 7d", "risk 30d", "why", "archetype"):
        at_risk.add_column(col, justify="right" if col.startswith("risk") else "left")
    for r in top:
        why = "; ".join(f["description"] for f in r["factors"][:2])
        at_risk.add_row(r["user_id"], r["tier"], f"{r['risk_7d']:.0f}", f"{r['risk_30d']:.0f}", why,
                        truth[r["user_id"]]["archetype"])  # fmt: skip
    console.print(at_risk)

    requests = [r for r in _read(settings.kafka, topics.interventions.name) if r["user_id"] in truth]
    by_kind = Counter((r["intervention_type"], r["status"]) for r in requests)
    if by_kind:
        inter = Table(title="Intervention requests (interventions topic)", title_justify="left")
        for col in ("type", "send", "deferred (best slot or quiet hours)", "held out (control group)"):
            inter.add_column(col, justify="left" if col == "type" else "right")
        for kind in sorted({k for k, _ in by_kind}):
            inter.add_row(kind, *(str(by_kind.get((kind, s), 0)) for s in ("send", "deferred", "held_out")))
        console.print(inter)

    milestones = Counter(
        m["milestone_days"] for m in _read(settings.kafka, topics.streak_milestones.name) if m["user_id"] in truth
    )
    if milestones:
        console.print(
            "  Streak milestones reached: " + ", ".join(f"{d} days: {n}" for d, n in sorted(milestones.items()))
        )
