"""The demo's experiments and personalisation part: what chose each intervention, the running experiments' readouts,
what the bandit learned, and one student's profile.

The bandit's windows and one profile are read while the services run (the worker's metrics and engagement API);
the rest comes from ClickHouse at the end, through the same readout as ``engage experiments report``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from analytics.experiments import readout
from config.settings import Settings
from engage.experiments_cli import render
from processors.experiments.config import DEFAULT_EXPERIMENTS_PATH, load_experiments
from sinks.clickhouse.client import connect

_WINDOW = re.compile(r'^engage_worker_bandit_windows_total\{arm="([^"]+)",result="([^"]+)"\} (\S+)$', re.M)
_LEARNED = re.compile(r'^engage_worker_bandit_outcomes_total\{result="learned"\} (\S+)$', re.M)


@dataclass
class ExperimentsView:
    windows: dict[str, dict[str, int]] = field(default_factory=dict)  # arm -> returned / not_returned
    learned: int = 0
    profile: dict[str, Any] | None = None


def collect_experiments(settings: Settings, worker_url: str) -> ExperimentsView:
    """The bandit's closed windows and learned outcomes (worker metrics), and the profile (API) of the student who
    was sent the most interventions: the one whose triggers and channels the profile knows best."""
    key = settings.server_keys[0].partition(":")[2]
    view = ExperimentsView()
    most = connect(settings).execute(
        f"SELECT user_id, count() AS n FROM {settings.clickhouse_database}.intervention_requests FINAL "
        "WHERE status != 'held_out' GROUP BY user_id ORDER BY n DESC, user_id LIMIT 1"
    )
    student = most[0][0] if most else "sim-000001"
    with httpx.Client(timeout=10) as client:
        metrics = client.get(f"{worker_url}/metrics").text
        windows: dict[str, dict[str, int]] = defaultdict(dict)
        for arm, result, value in _WINDOW.findall(metrics):
            windows[arm][result] = int(float(value))
        view.windows = dict(windows)
        learned = _LEARNED.search(metrics)
        view.learned = int(float(learned.group(1))) if learned else 0
        answer = client.get(f"{worker_url}/v1/users/{student}/profile", headers={"Authorization": f"Bearer {key}"})
        view.profile = answer.json() if answer.status_code == 200 else None
    return view


def show_experiments(settings: Settings, console: Console, view: ExperimentsView) -> None:
    console.rule("[bold]Experiments, the bandit and personalisation")
    db = settings.clickhouse_database
    client = connect(settings)
    rows = client.execute(
        f"SELECT tier, chosen_by, count() FROM {db}.intervention_requests FINAL WHERE status != 'held_out' "
        "GROUP BY tier, chosen_by ORDER BY tier, chosen_by"
    )
    by_tier: dict[str, dict[str, int]] = defaultdict(dict)
    for tier, chosen_by, n in rows:
        by_tier[tier][chosen_by] = n
    table = Table(title="What chose each intervention's type (sent or scheduled)", title_justify="left")
    for header in ("tier", "policy (global holdout, one-type tiers)", "experiment", "bandit"):
        table.add_column(header, justify="right")
    for tier in ("critical", "high", "medium", "low"):
        got = by_tier.get(tier, {})
        table.add_row(tier, *(f"{got.get(k, 0):,}" for k in ("policy", "experiment", "bandit")))
    console.print(table)

    experiments = load_experiments(settings.experiments_path or DEFAULT_EXPERIMENTS_PATH)
    engine = connect(settings, db)
    for experiment in experiments.experiments:
        if experiment.status != "running":
            continue
        result = readout(engine, experiment)
        if not result.variants:
            console.print(f"  {experiment.key}: no exposures yet")
            continue
        for part in render(result):
            console.print(part)
        for flag in result.flags:
            console.print(f"  [bold red]FLAG[/bold red] {flag}")

    if view.windows:
        bandit = Table(
            title=f"The bandit: 7-day windows closed per type ({view.learned:,} outcomes learned by this worker)",
            title_justify="left",
        )
        for header in ("intervention type", "came back", "did not", "return rate"):
            bandit.add_column(header, justify="right")
        for arm, results in sorted(view.windows.items()):
            back, gone = results.get("returned", 0), results.get("not_returned", 0)
            rate = f"{back / (back + gone):.0%}" if back + gone else "-"
            bandit.add_row(arm, f"{back:,}", f"{gone:,}", rate)
        console.print(bandit)
    if view.profile:
        _show_profile(console, view.profile)


def _show_profile(console: Console, p: dict[str, Any]) -> None:
    formats = ", ".join(
        f"{name} {f['share']['mean']:.0%}"
        for name, f in sorted(p["formats"].items(), key=lambda kv: -kv[1]["share"]["mean"])
    )
    hours = ", ".join(f"{h:02d}:00" for h in p["study_time"].get("best_hours", [])[:3])
    console.print(f"  Profile of {p['user_id']} (GET /v1/users/{{id}}/profile, as of {p['day']}):")
    console.print(f"    formats       {formats}  ({p['format_views']} views; preferred: {p['preferred_format']})")
    console.print(f"    study time    best local hours {hours or '-'}")
    opened = ", ".join(
        f"{name} {c['opened']['mean']:.0%} of {c['delivered']}" for name, c in p["channels"].items() if c["delivered"]
    )
    triggers = ", ".join(
        f"{name} {t['opened']['mean']:.0%} opened of {t['exposures']}"
        for name, t in p["triggers"].items()
        if t["exposures"]
    )
    console.print(
        f"    trigger       {p['preferred_trigger'] or 'not known yet (no intervention sent)'}  ({triggers or '-'})"
    )
    console.print(
        f"    channel       {p['preferred_channel'] or 'not known yet'}  (opened: {opened or 'nothing delivered'})"
    )
