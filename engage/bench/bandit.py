"""`engage bench bandit`: does the Thompson-sampling bandit (``processors.experiments.bandit``) find the
intervention type each student comes back after? Measured on simulated students whose answer is known.

Pure Python, no servers. In one run, on the same students and the same seed:

1. Students are ``engage.simulator.Population`` (ids and archetypes). Each gets a hidden preferred motivation
   trigger (competition, achievement, social, reminders), drawn from weights per archetype (``TRIGGER_WEIGHTS``),
   and a known probability of returning within 7 days: ``base`` (per archetype, with noise) without an
   intervention, ``base + ARM_LIFT[arm] + noise`` after an intervention type, plus ``preferred_lift`` (drawn
   per student) when the type appeals to their trigger (``ARM_TRIGGER``).
2. Every simulated week each student has a risk tier, drawn per archetype (``TIER_WEIGHTS``); a student of a
   tier with interventions gets one decision, among the types the project's policy (``deploy/policy``) allows
   for the tier. The policy's own global holdout (``processors.policy.in_holdout``, 10 %) gets none: the bandit
   is called with ``held_out=True`` and must return ``None``; their return rate is the no-intervention baseline.
3. The profile bucket the contextual bandit sees stands in for the learned profile: "unknown" until a week
   drawn per student (1 to ``reveal_weeks``), then the true trigger with probability ``profile_accuracy``, else
   a wrong one (fixed per student).
4. Policies, deciding the same decisions: **random** (uniform among allowed types), **bandit** (Thompson
   sampling, one posterior per arm), **contextual bandit** (tier + profile bucket, backing off to the tier),
   **context oracle** (the best type per (tier, bucket), knowing every student's probabilities: the ceiling of
   a contextual policy that sees only the bucket) and **student oracle** (each student's own best allowed type:
   the regret reference), and the **worker path**: the contextual bandit as the worker runs it, each decision
   made by ``processors.policy.decide`` with ``processors.experiments.arms.Arms`` (the experiments file's 5 %
   global holdout gets the policy's first type; no experiment running), each closed window sent as an
   ``ArmOutcome`` JSON message and folded by the worker's ``Learner``: what the stream wiring learns, in process.
   Outcomes use common random numbers: one uniform per decision, "returned" when it is
   below the chosen type's probability, so policies differ only by their choices. The bandits learn at the end
   of each week (the 7-day window has closed), not within it.

Regret is expected regret: the sum over decisions of (student oracle's probability - chosen type's probability),
free of outcome noise.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.console import Console
from rich.table import Table

from engage.bench.report import Figure, Report
from engage.simulator import Population
from engage.simulator.population import derive_seed
from processors.experiments.arms import Arms, Learner
from processors.experiments.bandit import BanditConfig, BanditState, Context, choose, decision_rng, record
from processors.experiments.config import ExperimentsConfig, load_experiments
from processors.policy import InterventionHistory, PolicyConfig, decide, in_holdout, policy_from_file
from schemas.experiments import ArmOutcome
from schemas.interventions import InterventionType
from schemas.signals import RiskAssessment, Tier

TRIGGERS = ("competition", "achievement", "social", "reminders")
ARM_TRIGGER: dict[str, str | None] = {
    InterventionType.peer_comparison: "competition",
    InterventionType.achievement_notification: "achievement",
    InterventionType.milestone_celebration: "achievement",
    InterventionType.gentle_reminder: "reminders",
    InterventionType.streak_warning: "reminders",
    InterventionType.human_outreach: "social",
    InterventionType.personalised_content: None,
    InterventionType.discount_offer: None,
}
ARM_LIFT: dict[str, float] = {  # the effect of a type on everyone, before the student's own trigger
    InterventionType.peer_comparison: 0.02,
    InterventionType.achievement_notification: 0.04,
    InterventionType.milestone_celebration: 0.03,
    InterventionType.gentle_reminder: 0.03,
    InterventionType.streak_warning: 0.05,
    InterventionType.human_outreach: 0.08,
    InterventionType.personalised_content: 0.07,
    InterventionType.discount_offer: 0.10,
}
BASE_RETURN: dict[str, float] = {  # returned within 7 days without an intervention
    "highly_engaged": 0.55,
    "steady": 0.45,
    "weekend_only": 0.40,
    "late_joiner": 0.35,
    "slowly_fading": 0.25,
    "binge_then_quit": 0.20,
    "sporadic": 0.20,
}
TRIGGER_WEIGHTS: dict[str, tuple[float, ...]] = {  # in TRIGGERS order
    "highly_engaged": (0.6, 0.2, 0.1, 0.1),
    "steady": (0.2, 0.5, 0.1, 0.2),
    "weekend_only": (0.1, 0.2, 0.5, 0.2),
    "late_joiner": (0.2, 0.3, 0.4, 0.1),
    "slowly_fading": (0.1, 0.2, 0.2, 0.5),
    "binge_then_quit": (0.4, 0.4, 0.1, 0.1),
    "sporadic": (0.1, 0.2, 0.1, 0.6),
}
TIERS: tuple[Tier, ...] = ("minimal", "low", "medium", "high", "critical")
TIER_WEIGHTS: dict[str, tuple[float, ...]] = {  # in TIERS order, per week
    "highly_engaged": (0.6, 0.3, 0.1, 0.0, 0.0),
    "steady": (0.35, 0.35, 0.2, 0.1, 0.0),
    "weekend_only": (0.2, 0.3, 0.3, 0.2, 0.0),
    "late_joiner": (0.3, 0.3, 0.2, 0.15, 0.05),
    "slowly_fading": (0.05, 0.2, 0.3, 0.3, 0.15),
    "binge_then_quit": (0.05, 0.15, 0.3, 0.3, 0.2),
    "sporadic": (0.05, 0.15, 0.3, 0.3, 0.2),
}
POLICIES = ("random", "bandit", "contextual", "engine", "contextual_flat", "oracle_context", "oracle_student")
LABELS = {
    "random": "random",
    "bandit": "bandit",
    "contextual": "bandit ctx",
    "engine": "worker path",
    "contextual_flat": "ctx, no back-off",
    "oracle_context": "oracle ctx",
    "oracle_student": "oracle student",
}


@dataclass(frozen=True)
class BanditBenchConfig:
    students: int = 5_000
    weeks: int = 12
    seed: int = 2026
    preferred_lift: tuple[float, float] = (0.10, 0.25)  # per student, uniform
    noise: float = 0.03  # standard deviation of each (student, type) probability around its mean
    profile_accuracy: float = 0.8
    reveal_weeks: int = 6
    bandit: BanditConfig = field(default_factory=BanditConfig)


@dataclass(frozen=True, slots=True)
class SimStudent:
    user_id: str
    archetype: str
    trigger: str  # hidden
    base: float  # returned within 7 days without an intervention
    p: Mapping[str, float]  # per intervention type
    observed_trigger: str  # what the profile says once known
    reveal_week: int
    held_out: bool

    def bucket(self, week: int) -> str:
        return self.observed_trigger if week >= self.reveal_week else "unknown"


@dataclass(frozen=True, slots=True)
class Decision:
    week: int
    student: SimStudent
    tier: Tier
    allowed: tuple[str, ...]
    u: float  # the outcome draw every policy shares

    @property
    def decision_id(self) -> str:
        return f"{self.student.user_id}:w{self.week}"

    def context(self) -> Context:
        return Context(self.tier, self.student.bucket(self.week))


@dataclass
class WeekRow:
    week: int
    decisions: int
    held_out: int
    returned: dict[str, int]  # per policy, this week
    holdout_returned: int
    expected: dict[str, float]  # per policy, the sum of the chosen types' probabilities


@dataclass
class BanditMeasurement:
    rows: list[WeekRow]
    regret: dict[str, float]  # expected, against the student oracle, summed over all decisions
    choose_us: float  # mean microseconds per contextual choice
    state_contexts: int
    state_json_bytes: int
    arm_share_last_week: dict[str, dict[str, float]]  # policy -> arm -> share of last week's decisions

    def totals(self) -> tuple[int, dict[str, int], int, int]:
        decisions = sum(r.decisions for r in self.rows)
        returned = {p: sum(r.returned[p] for r in self.rows) for p in POLICIES}
        return decisions, returned, sum(r.held_out for r in self.rows), sum(r.holdout_returned for r in self.rows)


def _clip(p: float) -> float:
    return min(0.98, max(0.02, p))


def simulate_students(config: BanditBenchConfig, policy: PolicyConfig) -> list[SimStudent]:
    """The population with its hidden triggers and return probabilities; each draw seeded per student."""
    population = Population.generate(config.students, config.seed)
    students = []
    for s in population.students:
        rng = random.Random(derive_seed(config.seed, "bandit-truth", s.user_id))
        trigger = rng.choices(TRIGGERS, weights=TRIGGER_WEIGHTS[s.archetype])[0]
        base = _clip(BASE_RETURN[s.archetype] + rng.gauss(0, config.noise))
        lift = rng.uniform(*config.preferred_lift)
        p = {
            arm: _clip(
                base + ARM_LIFT[arm] + (lift if ARM_TRIGGER[arm] == trigger else 0.0) + rng.gauss(0, config.noise)
            )
            for arm in ARM_LIFT
        }
        correct = rng.random() < config.profile_accuracy
        observed = trigger if correct else rng.choice([t for t in TRIGGERS if t != trigger])
        students.append(
            SimStudent(
                user_id=s.user_id,
                archetype=s.archetype,
                trigger=trigger,
                base=base,
                p=p,
                observed_trigger=observed,
                reveal_week=rng.randint(1, config.reveal_weeks),
                held_out=in_holdout(policy, s.user_id),
            )
        )
    return students


def schedule(config: BanditBenchConfig, policy: PolicyConfig, students: Sequence[SimStudent]) -> list[list[Decision]]:
    """Per week, the decisions (tiers and outcome draws do not depend on any policy's choices)."""
    weeks: list[list[Decision]] = []
    for week in range(config.weeks):
        decisions = []
        for s in students:
            rng = random.Random(derive_seed(config.seed, "bandit-week", s.user_id, week))
            tier = rng.choices(TIERS, weights=TIER_WEIGHTS[s.archetype])[0]
            allowed = tuple(str(t) for t in policy.tiers[tier].intervention_types)
            if allowed:
                decisions.append(Decision(week, s, tier, allowed, rng.random()))
        weeks.append(decisions)
    return weeks


def context_oracle(weeks: Sequence[Sequence[Decision]]) -> dict[tuple[str, str, str], float]:
    """Per (tier, bucket, arm) the mean probability over the run's decisions in that context (treated ones)."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for decisions in weeks:
        for d in decisions:
            if d.student.held_out:
                continue
            for arm in d.allowed:
                acc = sums.setdefault((d.tier, d.student.bucket(d.week), arm), [0.0, 0.0])
                acc[0] += d.student.p[arm]
                acc[1] += 1
    return {key: total / n for key, (total, n) in sums.items()}


class _EnginePath:
    """The worker's decision and learning code, in process: ``decide`` with ``Arms``, outcomes through ``Learner``."""

    def __init__(self, policy: PolicyConfig, config: BanditBenchConfig) -> None:
        holdout = load_experiments().holdout
        self.policy = policy.model_copy(update={"holdout_share": 0.0, "quiet_hours": None})  # the bench holds out
        self.arms = Arms(ExperimentsConfig(holdout=holdout), BanditState(), config.bandit, config.seed)
        offered: dict[str, set[str]] = {t: {str(k) for k in p.intervention_types} for t, p in policy.tiers.items()}
        assert self.arms.bandit is not None
        self.learner = Learner(self.arms.bandit, config.bandit, offered)
        self.start = datetime(2026, 1, 5, 12, tzinfo=UTC)
        self.seq = 0

    def decide(self, d: Decision, bucket: str) -> tuple[str, str]:
        at = self.start + timedelta(weeks=d.week)
        assessment = RiskAssessment(risk_7d=_TIER_RISK[d.tier], risk_30d=_TIER_RISK[d.tier], tier=d.tier,
                                    confidence=1.0, factors=[], model_version="bench")  # fmt: skip
        decision = decide(self.policy, d.student.user_id, assessment, InterventionHistory(), at, "UTC",
                          arms=self.arms, profile_bucket=bucket)  # fmt: skip
        request = decision.request
        assert request is not None, decision.detail
        return request.intervention_type.value, request.chosen_by

    def learn(self, context: Context, arm: str, returned: bool, week: int) -> None:
        self.seq += 1
        sent = self.start + timedelta(weeks=week)
        outcome = ArmOutcome(intervention_id=f"bench-{self.seq}", user_id="bench", arm=InterventionType(arm),
                             tier=cast(Tier, context.tier), profile=context.profile or "", success=returned,
                             sent_at=sent, at=sent + timedelta(days=7))  # fmt: skip
        verdict = self.learner.fold(outcome.model_dump_json().encode())
        assert verdict.result == "learned", verdict.reason


_TIER_RISK: dict[str, float] = {"critical": 90.0, "high": 70.0, "medium": 50.0, "low": 30.0, "minimal": 5.0}


def measure_bandit(config: BanditBenchConfig, policy: PolicyConfig) -> BanditMeasurement:
    """The whole run, no printing."""
    students = simulate_students(config, policy)
    weeks = schedule(config, policy, students)
    ctx_means = context_oracle(weeks)
    flat = {"contextual": True, "backoff_strength": 0.0}
    bandits = {  # name -> (config, state); every bandit draws from the same per-decision generator seed
        "bandit": (config.bandit.model_copy(update={"contextual": False}), BanditState()),
        "contextual": (config.bandit.model_copy(update={"contextual": True}), BanditState()),
        "contextual_flat": (config.bandit.model_copy(update=flat), BanditState()),
    }
    ctx_cfg, ctx = bandits["contextual"]
    engine = _EnginePath(policy, config)
    rows: list[WeekRow] = []
    regret = dict.fromkeys(POLICIES, 0.0)
    choose_seconds, choose_calls = 0.0, 0
    last_arms: dict[str, dict[str, int]] = {p: {} for p in POLICIES}
    for week, decisions in enumerate(weeks):
        row = WeekRow(week + 1, 0, 0, dict.fromkeys(POLICIES, 0), 0, dict.fromkeys(POLICIES, 0.0))
        learned: list[tuple[str, Context, str, bool]] = []  # (bandit, context, arm, returned)
        for d in decisions:
            s = d.student
            context = d.context()
            if s.held_out:
                # The bandit is asked like for anyone else and must decline; the student gets nothing.
                if choose(ctx, ctx_cfg, allowed_arms=d.allowed, context=context, rng=random.Random(0), held_out=True):
                    raise AssertionError(f"the bandit chose for held-out {s.user_id}")
                row.held_out += 1
                row.holdout_returned += d.u < s.base
                continue
            bucket = s.bucket(week)
            picks = {
                "random": random.Random(derive_seed(config.seed, "random", d.decision_id)).choice(d.allowed),
                "oracle_context": max(d.allowed, key=lambda a: ctx_means[(d.tier, bucket, a)]),
                "oracle_student": max(d.allowed, key=lambda a: s.p[a]),
            }
            for name, (cfg, state) in bandits.items():
                started = time.perf_counter()
                rng = decision_rng(config.seed, d.decision_id)
                choice = choose(state, cfg, allowed_arms=d.allowed, context=context, rng=rng, held_out=False)
                if name == "contextual":
                    choose_seconds += time.perf_counter() - started
                    choose_calls += 1
                assert choice is not None
                picks[name] = choice.arm
                learned.append((name, context, choice.arm, d.u < s.p[choice.arm]))
            arm, chosen_by = engine.decide(d, bucket)
            picks["engine"] = arm
            if chosen_by == "bandit":
                learned.append(("engine", context, arm, d.u < s.p[arm]))
            best = s.p[picks["oracle_student"]]
            row.decisions += 1
            for name, arm in picks.items():
                row.returned[name] += d.u < s.p[arm]
                row.expected[name] += s.p[arm]
                regret[name] += best - s.p[arm]
                if week == len(weeks) - 1:
                    last_arms[name][arm] = last_arms[name].get(arm, 0) + 1
        for name, context, arm, returned in learned:  # the 7-day windows of the week's decisions close
            if name == "engine":
                engine.learn(context, arm, returned, week)
                continue
            cfg, state = bandits[name]
            record(state, cfg, context=context, arm=arm, success=returned)
        rows.append(row)
    shares = {
        name: {arm: n / max(1, rows[-1].decisions) for arm, n in sorted(arms.items())}
        for name, arms in last_arms.items()
    }
    return BanditMeasurement(
        rows=rows,
        regret=regret,
        choose_us=choose_seconds / max(1, choose_calls) * 1e6,
        state_contexts=len(ctx.contexts),
        state_json_bytes=len(json.dumps(ctx.to_dict())),
        arm_share_last_week=shares,
    )


def _pct(returned: float, n: int) -> str:
    return f"{100 * returned / n:.1f}" if n else "-"


def week_table(measurement: BanditMeasurement) -> Table:
    """Per simulated week: cumulative return rate per policy (this week's in brackets), and the holdout's."""
    table = Table(title="Returned within 7 days, % of decisions: cumulative (this week); holdout: no intervention")
    for col in ("week", "decisions", *(LABELS[p] for p in POLICIES), "held out", "holdout"):
        table.add_column(col, justify="right")
    cum_n = cum_h = cum_hr = 0
    cum = dict.fromkeys(POLICIES, 0)
    for r in measurement.rows:
        cum_n += r.decisions
        cum_h += r.held_out
        cum_hr += r.holdout_returned
        for p in POLICIES:
            cum[p] += r.returned[p]
        table.add_row(
            str(r.week),
            f"{r.decisions:,}",
            *(f"{_pct(cum[p], cum_n)} ({_pct(r.returned[p], r.decisions)})" for p in POLICIES),
            f"{r.held_out:,}",
            f"{_pct(cum_hr, cum_h)} ({_pct(r.holdout_returned, r.held_out)})",
        )
    return table


def run_bandit_bench(console: Console, out: Path | None, config: BanditBenchConfig, policy: PolicyConfig) -> Report:
    """Measure, print the per-week table and the final figures, and save them as JSON."""
    m = measure_bandit(config, policy)
    decisions, returned, held, held_returned = m.totals()
    rate = {p: returned[p] / decisions for p in POLICIES}
    holdout_rate = held_returned / held if held else float("nan")
    console.print(week_table(m))
    report = Report(
        f"Bandit on {config.students:,} simulated students x {config.weeks} weeks (seed {config.seed})",
        context={"config": {**asdict(config), "bandit": config.bandit.model_dump()}, "decisions": decisions},
    )
    for p in ("bandit", "contextual", "engine", "contextual_flat", "oracle_context", "oracle_student"):
        report.add(Figure(f"return rate, {LABELS[p]}", 100 * rate[p], "%", "random", 100 * rate["random"]))
    report.add(Figure("return rate, holdout (no intervention)", 100 * holdout_rate, "%", notes=f"{held:,} decisions"))
    gain = rate["oracle_student"] - rate["random"]
    for p in ("bandit", "contextual", "engine", "contextual_flat", "oracle_context"):
        report.add(
            Figure(
                f"share of the oracle's gain over random, {LABELS[p]}",
                100 * (rate[p] - rate["random"]) / gain if gain else float("nan"),
                "%",
            )
        )
    for p in ("random", "bandit", "contextual", "engine", "contextual_flat", "oracle_context"):
        report.add(
            Figure(
                f"expected regret vs student oracle, {LABELS[p]}",
                m.regret[p],
                "returns",
                "random",
                m.regret["random"],
                notes=f"{100 * m.regret[p] / decisions:.2f} pp per decision",
            )
        )
    last = m.rows[-1]
    for p in POLICIES:
        report.add(
            Figure(f"last week's expected return rate, {LABELS[p]}", 100 * last.expected[p] / last.decisions, "%")
        )
    report.add(Figure("contextual choose() per decision", m.choose_us, "µs", notes="mean, pure Python"))
    report.add(Figure("contextual state", m.state_json_bytes / 1024, "KiB JSON", notes=f"{m.state_contexts} contexts"))
    report.context["arm_share_last_week"] = m.arm_share_last_week
    report.context["weeks"] = [asdict(r) for r in m.rows]
    if min(rate["contextual"], rate["bandit"], rate["engine"]) <= rate["random"]:
        report.problems.append("a bandit did not beat uniform random choice")
    report.print(console)
    for problem in report.problems:
        console.print(f"[red]problem: {problem}[/red]")
    if out is not None:
        console.print(f"results: {report.save(out)}")
    return report


def bench_bandit(
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/bandit.json"),
    students: Annotated[int, typer.Option(help="Simulated students")] = 5_000,
    weeks: Annotated[int, typer.Option(help="Simulated weeks of decisions")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of the students, the schedule and the bandits' draws")] = 2026,
    backoff_strength: Annotated[float, typer.Option(help="Pseudo-observations a context inherits")] = 5.0,
) -> None:
    """Thompson sampling vs random and the oracles on simulated students with known triggers (no servers)."""
    config = BanditBenchConfig(
        students=students, weeks=weeks, seed=seed, bandit=BanditConfig(backoff_strength=backoff_strength)
    )
    report = run_bandit_bench(Console(width=max(Console().width, 150)), out, config, policy_from_file())
    raise typer.Exit(1 if report.problems else 0)
