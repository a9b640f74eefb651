"""`engage bench oulad-profile`: what the personalisation profile makes of real students' format choices (OULAD).

Pure Python, no Kafka, no servers. Each enrolment's VLE clicks become the replay's events
(``engage.oulad.mapping.study_day_events``: one session per day with clicks, one ``content_viewed`` per site
visited that day, its format from the site's activity type, ``content_format``) and are folded day by day, one
batch per student and day as the replay sends them, into a ``UserRecord`` through ``processors.pipeline.ingest``
(the worker's fold). Registrations and assessment submissions are left out: they carry no content format.

Profiles (``processors.profile.build_profile``, what the worker's daily profile calls) are built at the end of
the presentation (the later of its last day and the student's last click) and after 7, 14 and 28 days of the
student's own activity (the days from their first click on, that day included, as ``engage bench profile``
counts its days). **The cohort prior** is the presentation's (the replay's ``course_id``): the mean of its
students' own format shares at the end, one observation each (``ProfileCohorts.observe`` of
``cohort_values``), as the worker's cohort stands after the presentation's last days. The checkpoint profiles
use the same end-of-presentation prior: it is the course's content mix, which hardly changes over a
presentation; the prior is also reported away, beside a uniform one (below).

**Clear preference**: the profile's preferred format (highest posterior share) has the lower bound of its 90 %
credible interval above the upper bound of every other format's interval. It reads only what the ``Profile``
contract exposes (``formats.<f>.share.low/high``), so an API client can apply the same rule, and it is
conservative: two 90 % equal-tailed intervals that do not overlap mean the top format's share is higher with
well over 90 % posterior probability. A student with 40 video views and 2 text views has one; three views
split three ways have none.

Because the prior is the course's mix, a student with a handful of views in a course that is 80 % text can get
a "clear" text preference mostly from the prior. The rule is therefore also applied to the profile built with
the default uniform prior (an empty ``ProfileCohorts``: the student's own views against 8 views spread evenly):
**clear on own views**.

**Leaning beyond the course's mix**: since every module is mostly text, most preferences are text, and what
tells students apart is rather a lean: a format whose posterior share (cohort prior) has its 90 % interval above
the course's mean share of that format (the mean of its students' own shares, what the cohort prior
averages), among the formats the student viewed: they view more of it than the course's students do on
average, beyond the interval's doubt. A presentation without video has a mean video share of 0: a student
there who never viewed video does not lean toward it.

**Content mix**: the OULAD activity types map to video (only ``ouelluminate``, live sessions), text and
interactive (forums, quizzes, wikis, ...); no activity type is audio, and most modules have no video site at
all. A module without video cannot produce video-preferrers, and one whose content is 80 % text produces
mostly text-preferrers: the preferences partly reflect what the course offers. The report shows each module's
sites per format and its students' view mix beside its preference split.

**Baseline** (cohort majority): the share of students whose raw majority format (their own views, no prior)
is the module's majority format (the most viewed over its students): how far "everyone gets the course's
majority format" would agree with each student's own choice.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from engage.bench.profile import raw_majority, share, share_cell
from engage.oulad.dataset import Click, OuladDataset
from engage.oulad.mapping import at, content_format, study_day_events
from processors.pipeline import UserRecord, ingest
from processors.policy import PolicyConfig
from processors.profile import ProfileCohorts, build_profile, cohort_values
from processors.signals import snapshot
from processors.state import FORMATS, UserState
from schemas.profile import Profile

CHECKPOINTS = (7, 14, 28)
END = "end"  # the end-of-presentation checkpoint's name


def clear_preference(profile: Profile) -> str | None:
    """The preferred format when its share's 90 % interval lies above every other format's (module docstring),
    else None (also without any content view)."""
    top = profile.preferred_format
    if top is None:
        return None
    shares = {f: getattr(profile.formats, f).share for f in FORMATS}
    others = max(s.high for f, s in shares.items() if f != top)
    return str(top) if shares[top].low > others else None


@dataclass(frozen=True)
class OuladProfileConfig:
    data_dir: Path
    presentations: tuple[str, ...] | None = None  # None: every presentation in the directory
    limit: int | None = None  # students per presentation (the lowest ids with a click), None: all
    checkpoints: tuple[int, ...] = CHECKPOINTS


@dataclass(frozen=True, slots=True)
class Mark:
    """One student at one checkpoint: what the profiles and their own views say."""

    views: int
    preferred: str | None  # the profile's (cohort prior)
    clear: str | None  # clear preference with the cohort prior
    clear_own: str | None  # clear preference with the uniform prior
    raw: str | None  # the raw majority of their own views
    leans: tuple[str, ...] = ()  # formats whose share's interval lies above the course's share of them


@dataclass
class Split:
    """Students of one checkpoint (and module) with at least one view: clear preferences, preferred formats."""

    students: int = 0
    views: int = 0
    clear: int = 0  # clear preference with the cohort prior (the profile as the worker builds it)
    clear_own: int = 0  # clear on the student's own views (uniform prior)
    preferred: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    clear_by_format: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    leans: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    raw_is_majority: int = 0  # baseline: the student's raw majority is the module's majority format
    profile_is_majority: int = 0  # the profile's preferred format is the module's majority format
    profile_is_raw: int = 0  # the profile's preferred format is the student's raw majority

    def add(self, mark: Mark, majority: str | None) -> None:
        if not mark.views:
            return
        self.students += 1
        self.views += mark.views
        if mark.preferred is not None:
            self.preferred[mark.preferred] += 1
        if mark.clear is not None:
            self.clear += 1
            self.clear_by_format[mark.clear] += 1
        self.clear_own += mark.clear_own is not None
        for f in mark.leans:
            self.leans[f] += 1
        self.raw_is_majority += mark.raw == majority
        self.profile_is_majority += mark.preferred == majority
        self.profile_is_raw += mark.preferred == mark.raw


@dataclass
class ModuleMix:
    """What a module offers (VLE sites per format) and what its students viewed (views per format)."""

    module: str
    presentations: list[str] = field(default_factory=list)
    sites: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))
    views: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FORMATS, 0))

    @property
    def majority(self) -> str | None:
        return max(FORMATS, key=lambda f: self.views[f]) if any(self.views.values()) else None


@dataclass
class OuladProfileResult:
    enrolments: int = 0  # enrolments with a click that were folded (all, or the sample)
    events: int = 0  # events folded
    checkpoints: dict[str, Split] = field(default_factory=dict)  # "7", "14", "28", "end"
    modules: dict[str, Split] = field(default_factory=dict)  # end of presentation, per module
    mixes: dict[str, ModuleMix] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # load, fold, profile, total


def _fold(data: OuladDataset, key: str, student: int, days: dict[int, list[Click]], checkpoints: tuple[int, ...]
          ) -> tuple[UserRecord, dict[str, tuple[UserState, datetime]], int]:  # fmt: skip
    """Fold one enrolment's clicks day by day: the record, each checkpoint's state and as-of time (the state is
    copied as the checkpoint's last day closes; ``END``: the record's own), and the events folded."""
    presentation = data.presentations[key]
    enrolment = data.enrolments[(key, student)]
    record = UserRecord.load(None, enrolment.user_id)
    ordered = sorted(days)
    first, last = ordered[0], ordered[-1]
    states: dict[str, tuple[UserState, datetime]] = {}
    due = sorted(checkpoints)
    events = 0

    def close_until(day: int) -> None:  # the checkpoints whose last day is before ``day``
        while due and first + due[0] - 1 < day:
            n = due.pop(0)
            states[str(n)] = (record.state.copy(), at(presentation, first + n, 0))

    for day in ordered:
        close_until(day)
        batch = study_day_events(enrolment, presentation, day, days[day], data.sites)
        ingest(record, enrolment.user_id, batch, None)
        events += len(batch)
    close_until(last + max(checkpoints, default=0) + 1)
    states[END] = (record.state, at(presentation, max(last, presentation.length_days) + 1, 0))
    return record, states, events


def _mean_shares(counters: list[list[float] | None]) -> dict[str, float]:
    """The mean of the students' own format shares (of those with a view): the course's mix a lean is measured
    against (what the cohort prior averages, known here even for a cohort too small to be a prior)."""
    sums, n = dict.fromkeys(FORMATS, 0.0), 0
    for prefs in counters:
        views = sum(prefs[: len(FORMATS)]) if prefs else 0.0
        if prefs and views:
            n += 1
            for i, f in enumerate(FORMATS):
                sums[f] += prefs[i] / views
    return {f: v / n if n else 0.0 for f, v in sums.items()}


def _leans(profile: Profile, prefs: list[float] | None, mean: dict[str, float]) -> tuple[str, ...]:
    """The formats the student viewed whose share's 90 % interval lies above the course's mean share (module
    docstring); a format the student never viewed is no lean (its interval sits above a course mean of 0)."""
    return tuple(
        f for i, f in enumerate(FORMATS) if prefs and prefs[i] and getattr(profile.formats, f).share.low > mean[f]
    )


def measure(config: OuladProfileConfig) -> OuladProfileResult:
    """Fold, profile and count (module docstring), one presentation at a time (its records are then dropped)."""
    started = time.perf_counter()
    data = OuladDataset.load(config.data_dir, config.presentations)
    result = OuladProfileResult()
    send_time = PolicyConfig().send_time
    uniform = ProfileCohorts().prior(None)
    spent: dict[str, float] = defaultdict(float)
    for site, key in data.site_presentations.items():
        if key in data.presentations:
            mix = result.mixes.setdefault(data.presentations[key].module, ModuleMix(data.presentations[key].module))
            mix.sites[content_format(data.sites[site])] += 1
    marks: list[tuple[str, dict[str, Mark]]] = []  # (module, checkpoint -> mark) per student
    for key in sorted(data.presentations):
        tick = time.perf_counter()
        by_student: dict[int, dict[int, list[Click]]] = defaultdict(lambda: defaultdict(list))
        for c in data.clicks(key):
            if (key, c.student) in data.enrolments:
                by_student[c.student][c.day].append(c)
        students = sorted(by_student)[: config.limit] if config.limit is not None else sorted(by_student)
        module = data.presentations[key].module
        mix = result.mixes.setdefault(module, ModuleMix(module))
        mix.presentations.append(key)
        spent["load"] += time.perf_counter() - tick
        tick = time.perf_counter()
        cohorts = ProfileCohorts()
        folded = []
        for student in students:
            record, states, events = _fold(data, key, student, by_student[student], config.checkpoints)
            result.events += events
            prefs = record.state.prefs or [0.0] * len(FORMATS)
            for i, f in enumerate(FORMATS):
                mix.views[f] += int(prefs[i])
            end = snapshot(record.state, states[END][1])
            cohorts.observe(key, cohort_values(record.state, end, record.triggers))
            folded.append((record, states, end))
        result.enrolments += len(students)
        spent["fold"] += time.perf_counter() - tick
        tick = time.perf_counter()
        course = cohorts.prior(key)  # the presentation's cohort, complete now
        mean = _mean_shares([r.state.prefs for r, _, _ in folded])
        for record, states, end in folded:
            own: dict[str, Mark] = {}
            for name, (state, as_of) in states.items():
                snap = end if name == END else snapshot(state, as_of)
                user = record.state.user_id
                with_cohort = build_profile(user, state, snap, record.triggers, course, None, send_time)
                alone = build_profile(user, state, snap, record.triggers, uniform, None, send_time)
                own[name] = Mark(
                    with_cohort.format_views,
                    with_cohort.preferred_format,
                    clear_preference(with_cohort),
                    clear_preference(alone),
                    raw_majority(state.prefs),
                    _leans(with_cohort, state.prefs, mean),
                )
            marks.append((module, own))
        spent["profile"] += time.perf_counter() - tick
    names = [str(n) for n in sorted(config.checkpoints)] + [END]
    result.checkpoints = {name: Split() for name in names}
    for module, own in marks:  # the module's majority format is known once all its presentations are folded
        majority = result.mixes[module].majority
        for name, mark in own.items():
            result.checkpoints[name].add(mark, majority)
        result.modules.setdefault(module, Split()).add(own[END], majority)
    spent["total"] = time.perf_counter() - started
    result.seconds = {k: round(v, 2) for k, v in spent.items()}
    return result


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def _formats(counts: dict[str, int], whole: int) -> str:
    """Each format's share of ``whole``, formats with none left out ('-' when all are)."""
    cells = [f"{f} {_pct(n, whole)}" for f, n in counts.items() if n]
    return ", ".join(cells) if cells else "-"


_NUMERIC = ("students", "views", "clear", "clear (own views)")


def _checkpoint_name(name: str) -> str:
    return "end of presentation" if name == END else f"after {name} days"


def run(config: OuladProfileConfig, console: Console, out: Path) -> OuladProfileResult:
    result = measure(config)
    scope = f"the first {config.limit} students with a click per presentation" if config.limit else "every student"
    table = Table(title=f"OULAD: format preference in the profile ({result.enrolments:,} enrolments, {scope})")
    for column in ("when", "students", "views", "clear", "clear (own views)", "preferred (profile)",
                   "clear preference for", "leans beyond the course mix", "profile = raw majority",
                   "baseline: raw = module majority"):  # fmt: skip
        table.add_column(column, justify="right" if column in _NUMERIC else "left")
    for name, s in result.checkpoints.items():
        table.add_row(
            _checkpoint_name(name), f"{s.students:,}", f"{s.views / s.students:.0f}" if s.students else "-",
            _pct(s.clear, s.students), _pct(s.clear_own, s.students), _formats(s.preferred, s.students),
            _formats(s.clear_by_format, s.students), _formats(s.leans, s.students),
            share_cell([s.profile_is_raw, s.students]), share_cell([s.raw_is_majority, s.students]),
        )  # fmt: skip
    console.print(table)
    console.print("views: mean content views per student; format cells: share of the students")
    modules = Table(title="per module, end of presentation: what the course offers and what its students prefer")
    for column in ("module", "presentations", "sites v/a/t/i", "view mix", "students", "preferred (profile)",
                   "clear", "clear preference for", "leans beyond the course mix",
                   "baseline: raw = module majority"):  # fmt: skip
        modules.add_column(column, justify="right" if column in _NUMERIC else "left")
    for module in sorted(result.modules):
        s, mix = result.modules[module], result.mixes[module]
        modules.add_row(
            module, " ".join(mix.presentations), "/".join(str(mix.sites[f]) for f in FORMATS),
            _formats(mix.views, sum(mix.views.values())), f"{s.students:,}", _formats(s.preferred, s.students),
            _pct(s.clear, s.students), _formats(s.clear_by_format, s.students), _formats(s.leans, s.students),
            share_cell([s.raw_is_majority, s.students]),
        )  # fmt: skip
    console.print(modules)
    console.print(
        "clear preference: the preferred format's 90 % interval lies above every other format's (cohort prior: the "
        "presentation's mix; own views: a uniform prior). No OULAD activity type is audio and only live sessions "
        "(ouelluminate) are video: a module's preferences follow what it offers."
    )
    seconds = result.seconds
    console.print(
        f"{result.events:,} events folded; {seconds.get('total', 0):.1f} s (reading {seconds.get('load', 0):.1f}, "
        f"fold {seconds.get('fold', 0):.1f}, profiles {seconds.get('profile', 0):.1f})"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"config": {**asdict(config), "data_dir": str(config.data_dir)}, **asdict(result)}
    doc["shares"] = {
        name: {"clear": share([s.clear, s.students]), "clear_own": share([s.clear_own, s.students]),
               "baseline": share([s.raw_is_majority, s.students])}
        for name, s in result.checkpoints.items() if s.students
    }  # fmt: skip
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    console.print(f"wrote {out}")
    return result


def bench_oulad_profile(
    data: Annotated[Path, typer.Option(help="OULAD directory (official CSV layout)")],
    out: Annotated[Path, typer.Option(help="JSON results file")] = Path("bench-results/oulad-profile.json"),
    presentation: Annotated[list[str] | None, typer.Option(help="Only these (e.g. BBB-2013J); default: all")] = None,
    limit: Annotated[int | None, typer.Option(help="Students per presentation (lowest ids); default: all")] = None,
) -> None:
    """What the profile makes of real students' content formats (OULAD): clear preferences, per module."""
    config = OuladProfileConfig(data, tuple(presentation) if presentation else None, limit)
    run(config, Console(width=max(Console().width, 160)), out)
