"""Experiments and the bandit in the policy's decision: who chooses the type and send time, what is recorded."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from processors.experiments.arms import Arms, Learner, Pending, close_windows, template_set
from processors.experiments.assignment import assign, in_holdout
from processors.experiments.bandit import BanditConfig, BanditState, Context, posterior, record
from processors.experiments.config import ExperimentsConfig, load_experiments, parse_experiments
from processors.gamification.rules import DEFAULT_RULES_PATH, rules_from_file
from processors.pipeline import ScoreRequest, UserRecord, ingest, ingest_and_play, rescore
from processors.policy import InterventionHistory, PolicyConfig, decide
from processors.policy import in_holdout as policy_holdout
from schemas.experiments import ArmOutcome
from schemas.interventions import InterventionType
from streams.worker.game_rules import experiment_rules
from tests.unit.test_policy import NOON, assessment

T = InterventionType
CONFIG = BanditConfig()
NO_HOLDOUT = PolicyConfig(holdout_share=0.0, quiet_hours=None)


def experiments(holdout: float = 0.0, status: str = "running") -> ExperimentsConfig:
    """One experiment on the high tier's type, one on its send time (both cover every high-tier student)."""
    raw = {
        "version": 1,
        "holdout": {"share": holdout, "salt": "test-holdout"},
        "experiments": [
            {
                "key": "high-type",
                "surface": "intervention_type",
                "status": status,
                "tiers": ["high"],
                "variants": [
                    {"id": "control", "weight": 0.5, "intervention_type": "personalised_content"},
                    {"id": "streak", "weight": 0.5, "intervention_type": "streak_warning"},
                ],
            },
            {
                "key": "high-time",
                "surface": "send_time_strategy",
                "status": status,
                "tiers": ["high"],
                "variants": [
                    {"id": "control", "weight": 0.5, "send_time_strategy": "sto"},
                    {"id": "now", "weight": 0.5, "send_time_strategy": "immediate"},
                ],
            },
        ],
    }
    return parse_experiments(json.dumps(raw), known_templates=set())


def favouring(tier: str, winner: str, loser: str, n: int = 300) -> BanditState:
    state = BanditState()
    for _ in range(n):
        record(state, CONFIG, context=Context(tier), arm=winner, success=True)
        record(state, CONFIG, context=Context(tier), arm=loser, success=False)
    return state


def users(count: int) -> list[str]:
    return [f"student-{i}" for i in range(count)]


def test_an_experiment_sets_the_type_to_its_variant_and_is_recorded() -> None:
    config = experiments()
    exp = config.get("high-type")
    assert exp is not None
    seen = set()
    for user in users(40):
        d = decide(NO_HOLDOUT, user, assessment("high"), InterventionHistory(), NOON, "UTC", arms=Arms(config))
        assert d.request is not None
        variant = assign(exp, user, config.holdout, "high").variant
        assert variant is not None
        assert d.request.intervention_type.value == variant.intervention_type
        assert d.request.chosen_by == "experiment" and d.request.arms["high-type"] == variant.id
        assert {a.experiment.key for a in d.shaped} == {"high-type", "high-time"}
        seen.add(variant.id)
    assert seen == {"control", "streak"}, "40 students all landed in one variant: the hash is not splitting them"


def test_a_variant_whose_type_is_cooling_down_falls_back_to_the_policy_without_an_exposure() -> None:
    config = experiments()
    exp = config.get("high-type")
    assert exp is not None
    user = next(u for u in users(100) if (v := assign(exp, u, config.holdout, "high").variant) and v.id == "streak")
    first = decide(NO_HOLDOUT, user, assessment("high"), InterventionHistory(), NOON, "UTC", arms=Arms(config))
    assert first.request is not None and first.request.intervention_type is T.streak_warning
    later = NOON + timedelta(hours=30)  # streak_warning cools down for 48 h; the daily cap has room again
    second = decide(NO_HOLDOUT, user, assessment("high"), first.history, later, "UTC", arms=Arms(config))
    assert second.request is not None and second.request.intervention_type is T.personalised_content
    assert second.request.chosen_by == "policy" and "high-type" not in second.request.arms
    assert [a.experiment.key for a in second.shaped] == ["high-time"]


def test_the_global_holdout_gets_the_policy_and_no_experiment() -> None:
    config = experiments(holdout=0.5)
    held = [u for u in users(60) if in_holdout(config.holdout, u)]
    assert 10 < len(held) < 50
    arms = Arms(config, favouring("high", "streak_warning", "personalised_content"))
    for user in held:
        d = decide(NO_HOLDOUT, user, assessment("high"), InterventionHistory(), NOON, "UTC", arms=arms)
        assert d.request is not None and d.request.chosen_by == "policy" and d.request.arms == {}
        assert d.request.intervention_type is T.personalised_content and d.shaped == ()


def test_the_policys_own_control_group_is_not_touched_by_experiments_or_the_bandit() -> None:
    config = PolicyConfig(holdout_share=0.5, quiet_hours=None)
    held = [u for u in users(40) if policy_holdout(config, u)]
    assert held
    arms = Arms(experiments(), favouring("medium", "peer_comparison", "achievement_notification"))
    for user in held:
        for tier in ("high", "medium"):
            d = decide(config, user, assessment(tier), InterventionHistory(), NOON, "UTC", arms=arms)
            assert d.request is not None and d.request.status == "held_out"
            assert d.request.chosen_by == "policy" and d.request.arms == {} and d.choice is None


def test_the_bandit_chooses_among_the_allowed_types_by_what_it_learned() -> None:
    arms = Arms(experiments(), favouring("medium", "peer_comparison", "achievement_notification"))
    for user in users(30):
        d = decide(NO_HOLDOUT, user, assessment("medium"), InterventionHistory(), NOON, "UTC", arms=arms)
        assert d.request is not None and d.request.chosen_by == "bandit"
        assert d.request.intervention_type is T.peer_comparison  # the policy alone would send achievements first
        assert d.choice is not None and d.choice.context == Context("medium", None)
    # The winner cooling down: the bandit gets only the other type.
    first = decide(NO_HOLDOUT, "s-1", assessment("medium"), InterventionHistory(), NOON, "UTC", arms=arms)
    again = decide(NO_HOLDOUT, "s-1", assessment("medium"), first.history, NOON + timedelta(hours=30), "UTC", arms=arms)
    assert again.request is not None and again.request.intervention_type is T.achievement_notification


def test_a_replayed_decision_keeps_its_id_even_when_the_posteriors_moved() -> None:
    """After a crash a decision is made again; the notification service sends an id once, so the id must not
    depend on what the bandit drew."""
    one = Arms(experiments(), favouring("medium", "peer_comparison", "achievement_notification"))
    other = Arms(experiments(), favouring("medium", "achievement_notification", "peer_comparison"))
    a = decide(NO_HOLDOUT, "s-9", assessment("medium"), InterventionHistory(), NOON, "UTC", arms=one)
    b = decide(NO_HOLDOUT, "s-9", assessment("medium"), InterventionHistory(), NOON, "UTC", arms=other)
    plain = decide(NO_HOLDOUT, "s-9", assessment("medium"), InterventionHistory(), NOON, "UTC")
    assert a.request is not None and b.request is not None and plain.request is not None
    assert a.request.intervention_type is not b.request.intervention_type
    assert a.request.intervention_id == b.request.intervention_id == plain.request.intervention_id


def test_the_send_time_variant_picks_the_chooser() -> None:
    config = experiments()
    exp = config.get("high-time")
    assert exp is not None
    later = NOON + timedelta(hours=5)
    strategies = {"sto": lambda now, deadline, quiet, zone: later, "immediate": None}
    for user in users(30):
        variant = assign(exp, user, config.holdout, "high").variant
        assert variant is not None
        d = decide(
            NO_HOLDOUT, user, assessment("high"), InterventionHistory(), NOON, "UTC",
            arms=Arms(config), strategies=strategies,
        )  # fmt: skip
        assert d.request is not None and d.request.arms["high-time"] == variant.id
        expected = None if variant.id == "now" else later
        assert d.request.send_after == expected


def test_windows_close_on_a_return_or_when_seven_days_pass() -> None:
    day = 86_400.0
    sent = [Pending("a", "peer_comparison", "medium", "", 0.0), Pending("b", "peer_comparison", "medium", "", 5 * day)]
    still, closed = close_windows(sent, last_activity=3 * day, now=4 * day)
    assert [(c.pending.intervention_id, c.success, c.at) for c in closed] == [("a", True, 3 * day)]
    assert [p.intervention_id for p in still] == ["b"]
    still, closed = close_windows(still, last_activity=3 * day, now=12.5 * day)
    assert [(c.pending.intervention_id, c.success, c.at) for c in closed] == [("b", False, 12 * day)]
    assert still == []
    # Activity before the send is not a return, and the window's end is not passed yet.
    still, closed = close_windows([Pending("c", "x", "low", "", 10 * day)], last_activity=9 * day, now=11 * day)
    assert closed == [] and len(still) == 1


def _outcome(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "intervention_id": "i-1",
        "user_id": "s-1",
        "arm": "peer_comparison",
        "tier": "medium",
        "profile": "",
        "success": True,
        "sent_at": NOON.isoformat(),
        "at": (NOON + timedelta(days=2)).isoformat(),
    }
    fields.update(changes)
    return json.dumps(fields).encode()


def test_the_learner_counts_each_intervention_once_and_refuses_unknown_exposures() -> None:
    offered = {t: {k.value for k in p.intervention_types} for t, p in PolicyConfig().tiers.items()}
    learner = Learner(BanditState(), CONFIG, offered)
    assert learner.fold(_outcome()).result == "learned"
    assert learner.fold(_outcome()).result == "duplicate"  # the same intervention re-sent after a crash
    assert learner.fold(_outcome(intervention_id="i-2", success=False)).result == "learned"
    unknown = learner.fold(_outcome(intervention_id="i-3", arm="human_outreach"))
    assert unknown.result == "refused" and "unknown exposure" in unknown.reason and "'medium'" in unknown.reason
    broken = learner.fold(b'{"intervention_id": "i-4", "arm": "peer_comparison"}')
    assert broken.result == "refused" and "not a bandit outcome" in broken.reason and "user_id" in broken.reason
    assert learner.fold(b"not json").result == "refused"
    assert posterior(learner.state, CONFIG, Context("medium"), "peer_comparison") == (2.0, 2.0)


def _login(user: str, at: datetime) -> dict[str, object]:
    return {"event_id": f"{user}-{at.isoformat()}", "user_id": user, "event_type": "login",
            "event_time": at.isoformat(), "platform": "web", "timezone": "UTC"}  # fmt: skip


def test_the_pipeline_records_exposures_and_sends_one_outcome_per_bandit_window() -> None:
    """A re-score opens a window for a bandit-chosen request and makes the exposures of an experiment's; a later
    re-score closes it: a success when the student came back within 7 days, a failure when the window ran out."""
    from models.heuristic import HeuristicModel

    arms = Arms(experiments(), favouring("medium", "peer_comparison", "achievement_notification"))
    model = HeuristicModel()
    found = {"bandit": 0, "experiment": 0}
    for i in range(60):
        user = f"p-{i}"
        rec = UserRecord.load(None, user)
        start = NOON - timedelta(days=20 + i % 10)
        ingest(rec, user, [_login(user, start + timedelta(days=d)) for d in range(0, 6, 2)])
        [out] = rescore([rec], [ScoreRequest(user, NOON, "events")], model, NO_HOLDOUT, NOON, arms=arms)
        sent = out.intervention
        if sent is None or sent.chosen_by == "policy":
            continue
        found[sent.chosen_by] += 1
        if sent.chosen_by == "experiment":
            assert [e.intervention_id for e in out.exposures] == [sent.intervention_id] * len(out.exposures)
            assert {e.experiment for e in out.exposures} == set(sent.arms)
            continue
        assert out.exposures == [] and [p.intervention_id for p in rec.arms] == [sent.intervention_id]
        assert UserRecord.from_bytes(rec.to_bytes()).arms == rec.arms  # kept in the stored record
        came_back = i % 2 == 0
        later = NOON + timedelta(days=3 if came_back else 8)
        if came_back:
            ingest(rec, user, [_login(user, later)])
        [out2] = rescore([rec], [ScoreRequest(user, later, "silence")], model, NO_HOLDOUT, later, arms=arms)
        [closed] = out2.arm_outcomes
        assert isinstance(closed, ArmOutcome) and closed.intervention_id == sent.intervention_id
        assert closed.success is came_back and closed.arm is sent.intervention_type and closed.tier == sent.tier
        assert sent.intervention_id not in [p.intervention_id for p in rec.arms]
    assert found["bandit"] >= 5, found  # 60 slipping students: some medium or other bandit tiers


@pytest.mark.parametrize("status", ["draft", "stopped"])
def test_an_experiment_that_is_not_running_changes_nothing(status: str) -> None:
    arms = Arms(experiments(status=status))
    d = decide(NO_HOLDOUT, "s-1", assessment("high"), InterventionHistory(), NOON, "UTC", arms=arms)
    assert d.request is not None and d.request.chosen_by == "policy" and d.request.arms == {}
    assert d.request.intervention_type is T.personalised_content


def test_now_is_still_required_to_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(NO_HOLDOUT, "s", assessment("high"), InterventionHistory(), NOON.replace(tzinfo=None), "UTC",
               arms=Arms(experiments()))  # fmt: skip


def test_a_template_experiment_holds_requests_of_its_controls_type_only() -> None:
    raw = {
        "version": 1,
        "holdout": {"share": 0.0, "salt": "s"},
        "experiments": [
            {"key": "low-words", "surface": "template", "status": "running", "tiers": ["low"],
             "variants": [{"id": "control", "weight": 0.5, "template": "gentle_reminder"},
                          {"id": "milestone", "weight": 0.5, "template": "milestone_celebration"}]}
        ],
    }  # fmt: skip
    config = parse_experiments(json.dumps(raw), known_templates={"gentle_reminder", "milestone_celebration"})
    arms = Arms(config)
    variants = set()
    for user in users(30):
        d = decide(NO_HOLDOUT, user, assessment("low"), InterventionHistory(), NOON, "UTC", arms=arms)
        assert d.request is not None and d.request.intervention_type is T.gentle_reminder
        variant = d.request.arms["low-words"]
        variants.add(variant)
        expected = "milestone_celebration" if variant == "milestone" else "gentle_reminder"
        assert template_set(d.request.arms, d.request.intervention_type, config) == expected
        assert [a.experiment.key for a in d.shaped] == ["low-words"]
    assert variants == {"control", "milestone"}
    # A request of another type (the second of the tier) is not the experiment's.
    assert arms.template("student-1", "low", T.milestone_celebration) is None


def test_an_xp_rules_experiment_prices_its_variant_with_its_file_and_exposes_once(tmp_path: Path) -> None:
    base = json.loads(DEFAULT_RULES_PATH.read_text())
    doubled = {**base, "xp": [{**r, "xp": 2 * r["xp"]} for r in base["xp"]]}
    (tmp_path / "normal.json").write_text(json.dumps(base))
    (tmp_path / "double.json").write_text(json.dumps(doubled))
    raw = {
        "version": 1,
        "holdout": {"share": 0.2, "salt": "xp-holdout"},
        "experiments": [
            {"key": "xp-double", "surface": "xp_rules", "status": "running",
             "variants": [{"id": "control", "weight": 0.5, "xp_rules": "normal.json"},
                          {"id": "double", "weight": 0.5, "xp_rules": "double.json"}]}
        ],
    }  # fmt: skip
    path = tmp_path / "experiments.json"
    path.write_text(json.dumps(raw))
    config = load_experiments(path)
    exp = config.get("xp-double")
    assert exp is not None
    arms = Arms(config, xp_rules=experiment_rules(config, tmp_path))
    live = rules_from_file(DEFAULT_RULES_PATH)
    seen = Counter[str]()
    for i in range(40):
        user = f"x-{i}"
        record = UserRecord.load(None, user)
        day = [_login(user, NOON), {**_login(user, NOON + timedelta(minutes=5)), "event_type": "lesson_completed",
               "event_id": f"{user}-l", "payload": {"lesson_id": "l1"}}]  # fmt: skip
        _, game = ingest_and_play(record, user, day, None, live, arms)
        assert game is not None
        xp = sum(a.xp for a in game.awards)
        _, again = ingest_and_play(record, user, [{**_login(user, NOON + timedelta(days=1)), "event_id": "d2"}],
                                   None, live, arms)  # fmt: skip
        assert again is not None and again.exposures == []  # one exposure per student and experiment
        if in_holdout(config.holdout, user):
            seen["holdout"] += 1
            assert game.exposures == [] and xp == 30  # the live rules: 10 for the day, 20 for the lesson
            continue
        variant = assign(exp, user, config.holdout).variant
        assert variant is not None
        seen[variant.id] += 1
        assert xp == (60 if variant.id == "double" else 30)
        [shown] = game.exposures
        assert (shown.experiment, shown.variant, shown.user_id) == ("xp-double", variant.id, user)
        assert record.xp_exposed == ["xp-double"]
    assert set(seen) == {"holdout", "control", "double"}, seen
