"""The fault schedule of a chaos run: which process gets which signal when, and when the servers restart.

Pure and seeded, so a failing run can be repeated exactly (`engage chaos --seed N`). The supervisor restarts
every killed worker or sink a moment later, as systemd or Kubernetes would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Action = Literal["SIGTERM", "SIGKILL", "restart-kafka", "restart-clickhouse"]


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the stream started
    action: Action
    target: str  # a process name ("worker-1", "sink-2"), or the server's name
    down_seconds: float = 0.0  # servers: how long they stay stopped

    def describe(self) -> str:
        what = f"{self.action:<18} {self.target}"
        return what + (f" (down {self.down_seconds:.0f} s)" if self.down_seconds else "")


def fault_schedule(
    seed: int,
    seconds: float,
    workers: list[str],
    sinks: list[str],
    kills: int,
    server_down_seconds: float = 4.0,
    notifiers: list[str] | None = None,
) -> list[Fault]:
    """``kills`` SIGTERM/SIGKILLs of workers and sinks at random moments of the first ``seconds``, Kafka
    restarted once around 60 % and ClickHouse once around 30 %. Halfway through the ClickHouse outage every
    sink is SIGKILLed (the harness does it: the outage starts when the server has stopped), the moment each
    holds a batch it could not store yet: the batch that must not be lost. With ``notifiers``, each notification
    process is SIGKILLed once more, mid-stream (the crash between a provider's acceptance and the send ledger)."""
    rng = random.Random(seed)
    # ClickHouse first: its outage must fall while events flow (Kafka's restart can outlast the stream).
    clickhouse_at = seconds * rng.uniform(0.25, 0.35)
    kafka_at = seconds * rng.uniform(0.55, 0.65)
    faults = [
        Fault(kafka_at, "restart-kafka", "kafka", server_down_seconds),
        Fault(clickhouse_at, "restart-clickhouse", "clickhouse", server_down_seconds),
    ]
    busy = [(kafka_at - 2, kafka_at + server_down_seconds + 8)]  # let the cluster settle around a restart
    # Every kind of kill at least once (in a random order), then random ones.
    kinds: list[tuple[Action, list[str]]] = [("SIGKILL", workers), ("SIGTERM", workers), ("SIGKILL", sinks),
                                             ("SIGTERM", sinks)]  # fmt: skip
    rng.shuffle(kinds)
    slots = 0
    while slots < kills:
        at = rng.uniform(0.05, 0.95) * seconds
        if any(lo <= at <= hi for lo, hi in busy):
            continue
        if slots < len(kinds):
            action, pool = kinds[slots]
        else:
            action, pool = rng.choice(("SIGTERM", "SIGKILL")), workers + sinks
        faults.append(Fault(at, action, rng.choice(pool)))
        slots += 1
    for name in notifiers or []:
        at = rng.uniform(0.3, 0.9) * seconds
        while any(lo <= at <= hi for lo, hi in busy):
            at = rng.uniform(0.3, 0.9) * seconds
        faults.append(Fault(at, "SIGKILL", name))
    return sorted(faults, key=lambda f: f.at)
