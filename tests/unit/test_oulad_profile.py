"""`engage bench oulad-profile`: the clear-preference rule on constructed students, the counts on a synthetic
OULAD-like directory, and the command end to end on the OULAD sample."""

from __future__ import annotations

import csv
import gzip
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from engage.bench.oulad_profile import END, OuladProfileConfig, clear_preference, measure
from engage.cli import app
from engage.oulad.dataset import Click, Enrolment, Presentation
from engage.oulad.mapping import at, study_day_events
from processors.pipeline import UserRecord, ingest
from processors.policy import PolicyConfig
from processors.profile import ProfileCohorts, build_profile
from processors.signals import snapshot
from processors.state import FORMATS
from schemas.profile import Profile

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "oulad_sample"
PRESENTATION = Presentation("XXX", "2013J", 100)
SITES = {1: "ouelluminate", 2: "oucontent", 3: "forumng", 4: "resource", 5: "quiz"}  # video, text, interactive


def profile_from(visits: list[tuple[int, int]], shares: list[float] | None = None) -> Profile:
    """The profile of a student who visited (site, day) pairs, folded as the bench folds them; ``shares``: the
    cohort's format shares as the prior (None: the default uniform prior)."""
    enrolment = Enrolment(PRESENTATION.key, 1)
    record = UserRecord.load(None, enrolment.user_id)
    days = sorted({d for _, d in visits})
    for day in days:
        clicks = [Click(1, site, d, 3) for site, d in visits if d == day]
        ingest(record, enrolment.user_id, study_day_events(enrolment, PRESENTATION, day, clicks, SITES), None)
    prior = ProfileCohorts().prior(None)
    if shares is not None:
        prior[: len(FORMATS)] = shares  # the prior's first values are the format shares (processors.profile)
    snap = snapshot(record.state, at(PRESENTATION, days[-1] + 1, 0) + timedelta(hours=1))
    return build_profile(enrolment.user_id, record.state, snap, record.triggers, prior, None, PolicyConfig().send_time)


def test_forty_video_views_against_two_text_views_are_clear_three_views_split_are_not() -> None:
    clear = profile_from([(1, d) for d in range(40)] + [(2, 0), (2, 1)])
    assert clear.format_views == 42 and clear.preferred_format == "video"
    assert clear_preference(clear) == "video"
    assert clear.formats.video.share.low > max(clear.formats.text.share.high, clear.formats.interactive.share.high)

    split = profile_from([(1, 0), (2, 1), (3, 2)])
    assert split.format_views == 3 and split.preferred_format is not None
    assert clear_preference(split) is None
    assert clear_preference(profile_from([(2, 0), (2, 1), (2, 2)])) is None  # three of one kind are not enough
    assert clear_preference(profile_from([(1, 0), (2, 1), (3, 2)], [0.25] * 4)) is None


def test_a_course_prior_can_make_one_view_look_clear_which_is_why_own_views_are_reported_too() -> None:
    one_text_view = [(2, 0)]
    assert clear_preference(profile_from(one_text_view, [0.02, 0.0, 0.9, 0.08])) == "text"  # the course's mix
    assert clear_preference(profile_from(one_text_view)) is None  # the student's own view alone


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.write_text("\n".join([header, *rows]) + "\n")


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    """Module XXX offers video, text and a forum; module YYY text and quizzes only (made-up students)."""
    students = {  # (module, id) -> visited (site, day)
        ("XXX", 101): [(1, d) for d in range(40)] + [(2, 0), (2, 1)],  # a video-preferrer
        ("XXX", 102): [(1, 0), (2, 1), (3, 2)],  # one view of each: a tie, no preference
        **{("XXX", 103 + i): [(2, d) for d in range(10)] for i in range(20)},  # 20 text readers
        ("YYY", 201): [(5, d) for d in range(30)] + [(4, 0)],  # quizzes
        ("YYY", 202): [(4, d) for d in range(5)],
        ("YYY", 203): [],  # registered, never clicked: not counted
    }
    _write(tmp_path / "courses.csv", "code_module,code_presentation,module_presentation_length",
           ["XXX,2013J,100", "YYY,2013J,100"])  # fmt: skip
    _write(tmp_path / "assessments.csv", "code_module,code_presentation,id_assessment,assessment_type,date,weight", [])
    _write(tmp_path / "studentInfo.csv", "code_module,code_presentation,id_student,final_result",
           [f"{m},2013J,{s},Pass" for m, s in students])  # fmt: skip
    _write(tmp_path / "studentRegistration.csv",
           "code_module,code_presentation,id_student,date_registration,date_unregistration",
           [f"{m},2013J,{s},-10,?" for m, s in students])  # fmt: skip
    module_of = {1: "XXX", 2: "XXX", 3: "XXX", 4: "YYY", 5: "YYY"}
    _write(tmp_path / "vle.csv", "id_site,code_module,code_presentation,activity_type,week_from,week_to",
           [f"{site},{module_of[site]},2013J,{kind},?,?" for site, kind in SITES.items()])  # fmt: skip
    for module in ("XXX", "YYY"):
        rows = [
            f"{module},2013J,{s},{site},{day},2"
            for (m, s), visits in students.items()
            if m == module
            for site, day in visits
        ]
        if module == "YYY":
            rows.append("YYY,2013J,999,4,0,1")  # a click of nobody enrolled: left out
        with gzip.open(tmp_path / f"studentVle_{module}_2013J.csv.gz", "wt") as f:
            f.write("\n".join(["code_module,code_presentation,id_student,id_site,date,sum_click", *rows]) + "\n")
    return tmp_path


def test_the_bench_counts_preferences_per_checkpoint_and_module_beside_the_majority_baseline(synthetic: Path) -> None:
    result = measure(OuladProfileConfig(synthetic))
    assert result.enrolments == 24
    assert list(result.checkpoints) == ["7", "14", "28", END]
    end = result.checkpoints[END]
    assert end.students == 24 and end.views == 42 + 3 + 200 + 31 + 5
    # own views: 101, the 20 readers and 201 are clear; 102 (one of each) is not, nor 202 (five text views)
    assert end.clear_own == 22
    assert end.clear_by_format["video"] == 1 and end.clear_by_format["interactive"] == 1
    assert end.preferred["audio"] == 0  # OULAD has no audio: nobody can prefer it
    # after 7 days of their own activity, 101 had 7 video and 2 text views: not yet clear on their own
    week = result.checkpoints["7"]
    assert week.students == 24 and week.clear_own < end.clear_own
    # baseline: raw majorities equal to the module's (XXX: text, YYY: interactive): the 20 readers and 201
    assert result.mixes["XXX"].majority == "text" and result.mixes["YYY"].majority == "interactive"
    assert end.raw_is_majority == 21
    assert (result.modules["XXX"].students, result.modules["YYY"].students) == (22, 2)
    assert result.modules["YYY"].raw_is_majority == 1
    assert result.mixes["YYY"].sites == {"video": 0, "audio": 0, "text": 1, "interactive": 1}
    assert result.mixes["XXX"].views == {"video": 41, "audio": 0, "text": 203, "interactive": 1}
    assert result.modules["YYY"].preferred["video"] == 0  # a module without video makes no video-preferrer
    # leaning beyond the course's mix: 101 views far more video than XXX's students, 201 more quizzes than YYY's
    assert result.modules["XXX"].leans["video"] == 1 and result.modules["YYY"].leans["interactive"] == 1
    assert end.leans["audio"] == 0 and result.modules["YYY"].leans["video"] == 0  # never viewed: no lean

    small = measure(OuladProfileConfig(synthetic, ("YYY-2013J",), limit=1))
    assert small.enrolments == 1 and small.checkpoints[END].students == 1 and set(small.modules) == {"YYY"}


def test_the_command_runs_on_the_oulad_sample_and_prints_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "oulad-profile.json"
    args = ["bench", "oulad-profile", "--data", str(SAMPLE), "--limit", "2", "--out", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    shown = ("after 7 days", "after 28 days", "end of", "BBB-2013B", "BBB-2013J", "baseline", "leans", "folded")
    for text in shown:  # short pieces: the headers wrap
        assert text in result.output
    doc = orjson.loads(out.read_bytes())
    assert doc["enrolments"] == 4 and doc["config"]["limit"] == 2
    end = doc["checkpoints"][END]
    assert end["students"] == 4 and sum(end["preferred"].values()) == 4
    assert 0 <= doc["shares"][END]["clear"] <= 1 and doc["mixes"]["BBB"]["sites"]["audio"] == 0
    assert f"{100 * doc['shares'][END]['baseline']:.1f} % (4)" in result.output  # the figures printed are the JSON's
    with (SAMPLE / "vle.csv").open() as f:
        assert sum(doc["mixes"]["BBB"]["sites"].values()) == sum(1 for _ in csv.DictReader(f))
