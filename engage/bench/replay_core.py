"""`engage bench replay-core`: where an event-clock replay's time goes, in the worker core alone (no Kafka, no Faust).

Issue #26 asks for a replay at 25,000 events/s with the same daily snapshots. Before choosing how (bulk snapshots of
silent students, vectorised scoring, a backfill mode), this measures the part of the worker that any design keeps:
the core (``streams.worker.core``) folding OULAD presentations day by day, one packed message per partition and
day as ``engage replay oulad`` sends them, and the event-clock silence pass after each day, over an in-memory table
and producer. It prints the split between folding events and re-scoring silent students, the re-scores of each,
and (``--profile``) the functions that cost most, so the next step starts from figures rather than a guess.
The Faust shell and Kafka come on top of these figures in a real replay (``engage bench oulad``).
"""

from __future__ import annotations

import asyncio
import cProfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from config.settings import Settings
from engage.bench.core_stand_ins import stand_in_core
from engage.bench.profiled import costliest_functions, costliest_table
from engage.oulad.dataset import OuladDataset
from engage.oulad.mapping import course_calendar
from engage.oulad.replay import replay_days
from kafka_io.producer import key_partition
from streams.worker.core.heap import heap_as_in_the_worker
from streams.worker.core.ports import Message
from streams.worker.core.silence import SilencePass

PARTITIONS = 4


@dataclass
class ReplayCoreResult:
    presentations: list[str]
    days: int = 0
    events: int = 0
    messages: int = 0
    fold_seconds: float = 0.0
    silence_seconds: float = 0.0
    rescores_on_events: int = 0
    rescores_silent: int = 0
    profiles: int = 0
    table_writes: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / max(1e-9, self.fold_seconds + self.silence_seconds)


def _messages(events: list[dict[str, Any]], offsets: list[int], wall: float) -> list[Message]:
    """The day's events as ``engage replay oulad`` sends them: one packed message per partition."""
    by_partition: dict[int, dict[str, list[dict[str, Any]]]] = {}
    for e in events:
        user = e["user_id"]
        by_partition.setdefault(key_partition(user.encode(), PARTITIONS), {}).setdefault(user, []).append(e)
    messages = []
    for partition, users in sorted(by_partition.items()):
        batches = [{"schema_version": 1, "user_id": u, "events": evs} for u, evs in users.items()]
        value = orjson.dumps({"schema_version": 1, "partition": partition, "batches": batches})
        messages.append(Message(partition, offsets[partition], wall, value))
        offsets[partition] += 1
    return messages


def measure(data: OuladDataset, settings: Settings, profile: bool = False, top: int = 15) -> ReplayCoreResult:
    calendars = {
        c.course_id: c for c in (course_calendar(p, data.assessments.values()) for p in data.presentations.values())
    }
    stand_ins = stand_in_core(settings, PARTITIONS, clock="event", calendars=calendars)
    core, table, outputs = stand_ins.core, stand_ins.table, stand_ins.outputs
    silence = SilencePass(
        core,
        tick_seconds=settings.silence_tick_seconds,
        rescore_after_seconds=settings.rescore_after_seconds,
        dormant_rescore_after_seconds=settings.dormant_rescore_after_seconds,
    )
    result = ReplayCoreResult(sorted(data.presentations))
    risk_topic = core.topics.risk_updates.name
    profiles_topic = core.topics.profiles.name
    profiler = cProfile.Profile() if profile else None
    offsets = [0] * PARTITIONS

    async def run() -> None:
        for _day, events in replay_days(data):
            messages = _messages(events, offsets, time.time())
            sent = outputs.by_topic.get(risk_topic, 0)
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            core.fold(messages)
            core.flush_records()
            if profiler:
                profiler.disable()
            folded = time.perf_counter()
            result.rescores_on_events += outputs.by_topic.get(risk_topic, 0) - sent
            sent = outputs.by_topic.get(risk_topic, 0)
            if profiler:
                profiler.enable()
            await silence.tick()
            core.flush_records()
            if profiler:
                profiler.disable()
            result.silence_seconds += time.perf_counter() - folded
            result.fold_seconds += folded - started
            result.rescores_silent += outputs.by_topic.get(risk_topic, 0) - sent
            result.days += 1
            result.events += len(events)
            result.messages += len(messages)

    with heap_as_in_the_worker():  # the garbage collector as the worker runs it
        asyncio.run(run())
    result.profiles = outputs.by_topic.get(profiles_topic, 0)
    result.table_writes = table.writes
    if profiler is not None:
        result.top = costliest_functions(profiler, top, "cumulative_s", 2)
    return result


def bench_replay_core(
    data: Annotated[Path, typer.Option(help="OULAD directory (official CSV layout)")],
    presentation: Annotated[list[str] | None, typer.Option(help="e.g. BBB-2013B; default: all")] = None,
    profile: Annotated[bool, typer.Option(help="also list the costliest functions (cProfile)")] = False,
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/replay-core.json"),
) -> None:
    """Fold OULAD through the worker core alone on the event clock: events/s, fold against silence pass."""
    console = Console()
    dataset = OuladDataset.load(data, presentation)
    result = measure(dataset, Settings(), profile)
    table = Table(title=f"worker core, event clock, {', '.join(result.presentations)} (no Kafka, no Faust)")
    for column in ("", "seconds", "re-scores", "µs per re-score"):
        table.add_column(column, justify="right")
    for name, seconds, rescores in (
        ("folding events", result.fold_seconds, result.rescores_on_events),
        ("silence pass", result.silence_seconds, result.rescores_silent),
    ):
        table.add_row(name, f"{seconds:.1f}", f"{rescores:,}", f"{seconds / max(1, rescores) * 1e6:,.0f}")
    console.print(table)
    console.print(
        f"{result.events:,} events, {result.messages:,} messages over {result.days} days: "
        f"[bold]{result.events_per_second:,.0f} events/s[/] in the core; {result.profiles:,} daily profiles, "
        f"{result.table_writes:,} record writes"
    )
    if result.top:
        console.print(costliest_table(result.top, "costliest functions (cumulative, with the profiler's overhead)", 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps({**asdict(result), "events_per_second": result.events_per_second},
                                 option=orjson.OPT_INDENT_2))  # fmt: skip
    console.print(f"results in {out}")
