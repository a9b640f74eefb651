"""What gamification costs the worker: the same events drained with it on and off, in the same run.

Part of ``engage bench processors``: our worker drains the same pre-filled topic (the simulator's events, packed
as the processors bench packs them) once with ``Settings.gamification`` on and once off, alternating which goes
first, ``rounds`` times; each side keeps its fastest round (this machine's speed drifts within minutes). The
figures are events/s and CPU seconds per million events, the cost as a ratio (the aim: under 15 % slower), and
the worker with gamification on beside the Quix Streams peer's figure from the same run (the peer keeps no XP).
The 'on' side must have sent XP awards and standings and the 'off' side none, or the run reports a problem.

Beside the fastest of each side, the median over rounds of the two sides' ratio within a round: this machine's
speed drifts by up to 2x within minutes (the same 'off' drain measured 31k and 49k events/s a minute apart), and
the two drains of one round run back to back, so their ratio is the least drifted comparison the run has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import median

from rich.console import Console

from engage.bench.report import Figure, Run
from engage.bench.streams_io import end_offsets
from kafka_io.client import Kafka
from schemas.topics import catalogue

Drain = Callable[[str, bool], tuple[Run, dict[str, int]]]

AIM_COST = 0.15  # at most 15 % slower with gamification on (issue #22)


@dataclass
class GameCost:
    """Each side's fastest drain, every round's events/s, and what the 'on' side sent."""

    on: Run
    off: Run
    rounds: list[dict[str, float]] = field(default_factory=list)
    outputs: dict[str, int] = field(default_factory=dict)  # messages on the gamification topics, 'on' side
    problems: list[str] = field(default_factory=list)

    def slower(self) -> float:
        """How much longer the drain took with gamification on (0.10: 10 % slower)."""
        return self.on.seconds / self.off.seconds - 1.0

    def paired(self, measure: str) -> float:
        """The median over rounds of 'on' / 'off' within the round (``measure``: events/s "", or "cpu")."""
        return median(r[f"on{measure}"] / r[f"off{measure}"] for r in self.rounds)


def gamification_outputs(bootstrap: Kafka, prefix: str) -> dict[str, int]:
    """Messages on each gamification topic (a drain's 'on' side must have sent some, its 'off' side none)."""
    topics = catalogue(prefix)
    names = {"xp_awards": topics.xp_awards, "level_ups": topics.level_ups, "achievements": topics.achievements,
             "celebrations": topics.celebrations, "standings": topics.standings}  # fmt: skip
    return {k: end_offsets(bootstrap, t.name) for k, t in names.items()}


def gamification_cost(drain: Drain, console: Console, n: int, rounds: int) -> GameCost:
    """``rounds`` pairs of drains of the same ``n`` events, gamification on and off, alternating which goes first
    (``drain(name, on)``: one drain by a fresh worker, and what it sent on the gamification topics)."""
    ons: list[Run] = []
    offs: list[Run] = []
    cost_rounds: list[dict[str, float]] = []
    outputs: dict[str, int] = {}
    problems: list[str] = []
    for k in range(rounds):
        seconds: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for on in (True, False) if k % 2 == 0 else (False, True):
            side = "on" if on else "off"
            console.print(f"gamification cost, round {k + 1}: {n:,} events, gamification {side} ...")
            run, sent = drain(f"game-{side}{k}", on)
            (ons if on else offs).append(run)
            seconds[side], cpu[side] = run.seconds, run.cpu / n * 1e6
            if on:
                outputs = sent
                if not sent["xp_awards"] or not sent["standings"]:
                    problems.append(f"round {k + 1}: gamification on sent no XP awards or standings: {sent}")
            elif any(sent.values()):
                problems.append(f"round {k + 1}: gamification off still sent gamification messages: {sent}")
        cost_rounds.append(
            {"on": n / seconds["on"], "off": n / seconds["off"], "oncpu": cpu["on"], "offcpu": cpu["off"]}
        )
    return GameCost(min(ons, key=lambda r: r.seconds), min(offs, key=lambda r: r.seconds), cost_rounds, outputs,
                    problems)  # fmt: skip


def figures(cost: GameCost, n: int, peer: Run | None) -> list[Figure]:
    """The comparison as report rows: throughput and CPU on vs off, and 'on' beside the peer when there is one."""
    rounds = ", ".join(f"{r['on']:,.0f} / {r['off']:,.0f}" for r in cost.rounds)
    sent = ", ".join(f"{k} {v:,}" for k, v in cost.outputs.items())
    out = [
        Figure("worker throughput, gamification on", n / cost.on.seconds, "events/s", "gamification off",
               n / cost.off.seconds, aim=f">= {1 - AIM_COST:.2f}x (under {AIM_COST:.0%} slower)",
               notes=f"{cost.slower():+.1%} drain time with gamification on; fastest of {len(cost.rounds)} "
                     f"alternating rounds each (on / off events/s: {rounds}); the 'on' side sent {sent}"),
        Figure("CPU per million events, gamification on", cost.on.cpu / n * 1e6, "CPU s", "gamification off",
               cost.off.cpu / n * 1e6, aim=f"<= {1 + AIM_COST:.2f}x"),
        Figure("throughput on / off, median of rounds", cost.paired(""), "x", "1.0 (each round's 'off' drain)", 1.0,
               aim=f">= {1 - AIM_COST:.2f}x", notes="each round's two drains run back to back: the least drifted "
                     "comparison; rounds' ratios " + ", ".join(f"{r['on'] / r['off']:.2f}" for r in cost.rounds)),
        Figure("CPU on / off, median of rounds", cost.paired("cpu"), "x", "1.0 (each round's 'off' drain)", 1.0,
               aim=f"<= {1 + AIM_COST:.2f}x",
               notes="rounds' ratios " + ", ".join(f"{r['oncpu'] / r['offcpu']:.2f}" for r in cost.rounds)),
    ]  # fmt: skip
    if peer is not None:
        out.append(Figure("worker throughput with gamification on", n / cost.on.seconds, "events/s",
                          "Quix Streams peer (no gamification)", n / peer.seconds, aim=">= 1x the peer"))  # fmt: skip
    return out
