"""What gamification costs the worker: the same events drained with it on and off, in the same run.

Part of ``engage bench processors``: our worker drains the same pre-filled topic (the simulator's events, packed
as the processors bench packs them) once with ``Settings.gamification`` on and once off, alternating which goes
first, ``rounds`` times; each side keeps its fastest round (this machine's speed drifts within minutes). The
figures are events/s and CPU seconds per million events, the cost as a ratio (the aim: under 15 % slower), and
the worker with gamification on beside the Quix Streams peer's figure from the same run (the peer keeps no XP).
The 'on' side must have sent XP awards and standings and the 'off' side none, or the run reports a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engage.bench.report import Figure
from engage.bench.streams_io import encode, end_offsets, send
from schemas.topics import catalogue

if TYPE_CHECKING:
    from engage.bench.processors import Bench, Run

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


def _game_outputs(bootstrap: str, prefix: str) -> dict[str, int]:
    topics = catalogue(prefix)
    names = {"xp_awards": topics.xp_awards, "level_ups": topics.level_ups, "achievements": topics.achievements,
             "celebrations": topics.celebrations, "standings": topics.standings}  # fmt: skip
    return {k: end_offsets(bootstrap, t.name) for k, t in names.items()}


def _drain(b: Bench, events: list[dict[str, Any]], name: str, on: bool) -> tuple[Run, dict[str, int]]:
    from engage.bench.processors import _processed, _timed_drain

    s = b.fresh(name, gamification=on)
    encoded = encode(s, events, b.cfg.client_batch)
    messages = send(s, catalogue(s.topic_prefix).events.name, encoded)
    with b.worker(s, name) as (proc, url):
        run, _ = _timed_drain((proc.pid,), lambda: _processed(url), messages, timeout=900)
    return run, _game_outputs(s.kafka_bootstrap, s.topic_prefix)


def gamification_cost(b: Bench, events: list[dict[str, Any]], rounds: int) -> GameCost:
    """``rounds`` pairs of drains of the same events, gamification on and off, alternating which goes first."""
    ons: list[Run] = []
    offs: list[Run] = []
    cost_rounds: list[dict[str, float]] = []
    outputs: dict[str, int] = {}
    problems: list[str] = []
    n = len(events)
    for k in range(rounds):
        seconds: dict[str, float] = {}
        for on in (True, False) if k % 2 == 0 else (False, True):
            side = "on" if on else "off"
            b.console.print(f"gamification cost, round {k + 1}: {n:,} events, gamification {side} ...")
            run, sent = _drain(b, events, f"game-{side}{k}", on)
            (ons if on else offs).append(run)
            seconds[side] = run.seconds
            if on:
                outputs = sent
                if not sent["xp_awards"] or not sent["standings"]:
                    problems.append(f"round {k + 1}: gamification on sent no XP awards or standings: {sent}")
            elif any(sent.values()):
                problems.append(f"round {k + 1}: gamification off still sent gamification messages: {sent}")
        cost_rounds.append({"on": n / seconds["on"], "off": n / seconds["off"]})
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
    ]  # fmt: skip
    if peer is not None:
        out.append(Figure("worker throughput with gamification on", n / cost.on.seconds, "events/s",
                          "Quix Streams peer (no gamification)", n / peer.seconds, aim=">= 1x the peer"))  # fmt: skip
    return out
