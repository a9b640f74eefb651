"""`engage bench game-core`: what gamification costs the worker core alone (no Kafka, no Faust), and where.

``engage bench gamification`` measures the real worker draining a topic with gamification on and off; its figure
includes Faust and librdkafka sending the gamification messages, and drifts with the machine. This folds the same
simulator events, packed as that bench packs them, through the worker core (``streams.worker.core``) over
in-memory stand-ins, in gathers of 500 messages with a commit after each, on and off in alternating rounds. It
prints the process CPU of each side, the extra with gamification on split between pricing the events (the rules'
``play``), building and queueing its messages and writing the larger records, and the messages and bytes each
side sends: so a design for the cost aim of issue #22 starts from figures. ``--profile`` lists the costliest
functions of the 'on' side.
"""

from __future__ import annotations

import cProfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

import processors.pipeline as pipeline
from config.settings import Settings
from engage.bench.core_stand_ins import stand_in_core
from engage.bench.ingest import simulated_events
from engage.bench.profiled import costliest_functions, costliest_table
from engage.bench.streams_io import encode
from processors.gamification.rules import GameRules, rules_from_file
from streams.worker.core.engine import WorkerCore
from streams.worker.core.heap import heap_as_in_the_worker
from streams.worker.core.outputs import Emitter
from streams.worker.core.ports import Message

GATHER = 500  # messages per fold: what the worker's gathers hold while it drains a backlog
GAME_TOPICS = ("xp_awards", "level_ups", "achievements", "celebrations", "standings")


@dataclass
class Side:
    """One fold of the events, gamification on or off."""

    cpu: float  # process CPU seconds
    stages: dict[str, float]  # seconds in the timed stages (``_timed``)
    messages: dict[str, int]  # per topic
    bytes: dict[str, int]  # per topic
    record_bytes: int  # the table's records at the end


@dataclass
class GameCoreResult:
    events: int
    messages_in: int
    rounds: list[dict[str, float]] = field(default_factory=list)  # each round's CPU, on and off
    on: Side | None = None  # the fastest round's
    off: Side | None = None
    top: list[dict[str, Any]] = field(default_factory=list)

    def cpu_ratio(self) -> float:
        """The median over rounds of on / off (the two folds of a round run back to back)."""
        return median(r["on"] / r["off"] for r in self.rounds)


@contextmanager
def _timed(stages: dict[str, float]) -> Iterator[None]:
    """Time the gamification stages of the core while inside: the rules' fold, building and queueing its
    messages, and writing records (with gamification off only the last runs)."""
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, stage: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - started

        originals.append((owner, name, original))
        setattr(owner, name, timed)

    wrap(pipeline, "play", "pricing (play)")
    wrap(Emitter, "game", "messages (gamification)")
    wrap(Emitter, "standing", "messages (standings)")
    wrap(WorkerCore, "flush_records", "writing records")
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _fold(messages: list[tuple[int, bytes, bytes]], settings: Settings, rules: GameRules | None,
          profiler: cProfile.Profile | None = None, timed: bool = False) -> Side:  # fmt: skip
    partitions = settings.event_partitions
    stand_ins = stand_in_core(settings, partitions, clock="wall", debounce_seconds=settings.score_debounce_seconds,
                              rules=rules)  # fmt: skip
    core, table, outputs, ownership = stand_ins.core, stand_ins.table, stand_ins.outputs, stand_ins.ownership
    offsets = [0] * partitions
    stamped = []
    for partition, _key, value in messages:
        stamped.append(Message(partition, offsets[partition], time.time(), value))
        offsets[partition] += 1
    stages: dict[str, float] = {}
    with _timed(stages) if timed else nullcontext():
        started = time.process_time()
        if profiler is not None:
            profiler.enable()
        for i in range(0, len(stamped), GATHER):
            gather = stamped[i : i + GATHER]
            core.fold(gather)
            core.flush_records()
            for message in gather:
                ownership.commit(message.partition, message.offset + 1)
        if profiler is not None:
            profiler.disable()
        cpu = time.process_time() - started
    names = {spec.name: attr for attr in GAME_TOPICS for spec in [getattr(core.topics, attr)]}
    return Side(
        cpu=cpu,
        stages=stages,
        messages={names.get(t, t): n for t, n in outputs.by_topic.items()},
        bytes={names.get(t, t): n for t, n in outputs.bytes_by_topic.items()},
        record_bytes=sum(len(v) for v in table.rows.values()),
    )


def measure(events: int, rounds: int, settings: Settings, profile: bool = False, top: int = 20) -> GameCoreResult:
    messages = encode(settings, simulated_events(events), 50)
    with heap_as_in_the_worker():  # the garbage collector as the worker runs it
        return _measure(messages, events, rounds, settings, profile, top)


def _measure(
    messages: list[tuple[int, bytes, bytes]], events: int, rounds: int, settings: Settings, profile: bool, top: int
) -> GameCoreResult:
    rules = rules_from_file(settings.gamification_rules_path) if settings.gamification_rules_path else rules_from_file()
    result = GameCoreResult(events, len(messages))
    best: dict[bool, Side] = {}
    for k in range(rounds):
        cpu: dict[str, float] = {}
        for on in (False, True) if k % 2 == 0 else (True, False):
            side = _fold(messages, settings, rules if on else None)
            cpu["on" if on else "off"] = side.cpu
            if on not in best or side.cpu < best[on].cpu:
                best[on] = side
        result.rounds.append(cpu)
    # the split, from one more fold each way with the stages timed (the timing wraps cost a little)
    for on in (False, True):
        timed = _fold(messages, settings, rules if on else None, timed=True)
        best[on].stages = timed.stages
    result.on, result.off = best[True], best[False]
    if profile:
        profiler = cProfile.Profile()
        _fold(messages, settings, rules, profiler)
        result.top = costliest_functions(profiler, top, "own_s", 3)
    return result


def bench_game_core(
    events: Annotated[int, typer.Option(help="Simulator events per fold")] = 300_000,
    rounds: Annotated[int, typer.Option(help="Folds with gamification on and off, alternating")] = 3,
    profile: Annotated[bool, typer.Option(help="also list the costliest functions (cProfile)")] = False,
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/game-core.json"),
) -> None:
    """What gamification costs the worker core alone (no Kafka, no Faust): CPU on against off, and where."""
    console = Console()
    console.print(f"generating and packing {events:,} simulator events ...")
    result = measure(events, rounds, Settings(), profile)
    on, off = result.on, result.off
    assert on is not None and off is not None
    extra = on.cpu - off.cpu
    table = Table(title=f"worker core, {events:,} events in {result.messages_in:,} messages (no Kafka, no Faust)")
    for column in ("", "CPU s", "µs per event", "share of the extra"):
        table.add_column(column, justify="right")
    table.add_row("gamification off", f"{off.cpu:.2f}", f"{off.cpu / events * 1e6:.1f}", "")
    table.add_row("gamification on", f"{on.cpu:.2f}", f"{on.cpu / events * 1e6:.1f}", "")
    table.add_row("extra", f"{extra:+.2f}", f"{extra / events * 1e6:+.1f}", "100 %")
    for stage in sorted({*on.stages, *off.stages}):
        more = on.stages.get(stage, 0.0) - off.stages.get(stage, 0.0)
        table.add_row(f"  of which {stage}", f"{more:+.2f}", f"{more / events * 1e6:+.1f}",
                      f"{more / extra:.0%}" if extra > 0 else "")  # fmt: skip
    console.print(table)
    ratios = ", ".join(f"{r['on'] / r['off']:.2f}" for r in result.rounds)
    console.print(f"CPU on / off: [bold]{result.cpu_ratio():.2f}x[/] (median of rounds: {ratios}); "
                  f"aim of issue #22: <= 1.15x")  # fmt: skip
    game_messages = sum(on.messages.get(t, 0) for t in GAME_TOPICS)
    game_bytes = sum(on.bytes.get(t, 0) for t in GAME_TOPICS)
    console.print(
        f"messages sent: {sum(off.messages.values()):,} off, {sum(on.messages.values()):,} on "
        f"({game_messages:,} gamification messages, {game_bytes / 1e6:.1f} MB: "
        + ", ".join(f"{t} {on.messages.get(t, 0):,}" for t in GAME_TOPICS)
        + f"); records at the end: {off.record_bytes / 1e6:.1f} MB off, {on.record_bytes / 1e6:.1f} MB on"
    )
    if result.top:
        title = "costliest functions with gamification on (own time, with the profiler's overhead)"
        console.print(costliest_table(result.top, title, 2))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({**asdict(result), "cpu_ratio": result.cpu_ratio()}, option=orjson.OPT_INDENT_2))
    console.print(f"results in {out}")
