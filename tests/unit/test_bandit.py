"""The Thompson-sampling bandit (processors.experiments.bandit): posteriors, back-off, bounds, holdout, replay."""

from __future__ import annotations

import json
import random

import pytest

from processors.experiments.bandit import (
    BanditConfig,
    BanditState,
    Context,
    choose,
    decay,
    decision_rng,
    posterior,
    record,
    reward_of,
)
from schemas.interventions import OutcomeKind

CFG = BanditConfig(backoff_strength=20.0)  # explicit: the back-off tests count its pseudo-observations
MEDIUM = Context("medium", "competition")
ARMS = ("achievement_notification", "peer_comparison")


def _feed(state: BanditState, config: BanditConfig, context: Context, arm: str, wins: int, losses: int) -> None:
    for _ in range(wins):
        record(state, config, context=context, arm=arm, success=True)
    for _ in range(losses):
        record(state, config, context=context, arm=arm, success=False)


def test_posterior_starts_at_the_prior_and_counts_successes_and_failures() -> None:
    state = BanditState()
    assert posterior(state, CFG, MEDIUM, "peer_comparison") == (1.0, 1.0)
    _feed(state, CFG, MEDIUM, "peer_comparison", wins=3, losses=5)
    # Every level of the chain saw the outcomes...
    for key in ("*", "medium", "medium/competition"):
        assert state.counts(key, "peer_comparison") == (3.0, 5.0)
    # ...but the narrowest posterior counts each once: prior 1+1, 8 own outcomes, nothing left in the wider levels.
    alpha, beta = posterior(state, CFG, MEDIUM, "peer_comparison")
    assert (alpha, beta) == pytest.approx((1 + 3, 1 + 5))
    assert posterior(state, CFG, MEDIUM, "achievement_notification") == (1.0, 1.0)


def test_non_contextual_config_keeps_only_the_global_level() -> None:
    plain = BanditConfig(contextual=False)
    state = BanditState()
    _feed(state, plain, MEDIUM, "peer_comparison", wins=2, losses=1)
    assert set(state.contexts) == {"*"}
    assert posterior(state, plain, Context("low", "social"), "peer_comparison") == pytest.approx((3, 2))


def test_sparse_context_backs_off_to_its_tier() -> None:
    state = BanditState()
    other = Context("medium", "achievement")
    _feed(state, CFG, other, "peer_comparison", wins=800, losses=200)  # the tier's other students: 80 %
    sparse = Context("medium", "social")
    _feed(state, CFG, sparse, "peer_comparison", wins=0, losses=2)  # two outcomes of its own
    alpha, beta = posterior(state, CFG, sparse, "peer_comparison")
    # Prior: at most backoff_strength (20) pseudo-observations at the tier's mean, plus its own 0/2.
    assert alpha + beta == pytest.approx(1 + 1 + 20 + 2)
    assert alpha / (alpha + beta) == pytest.approx((1 + 20 * 801 / 1002) / 24)
    assert 0.65 < alpha / (alpha + beta) < 0.75  # near the tier's 80 %, not its own 0 %
    # An empty context samples around the tier too; without back-off it would be the flat prior.
    empty = Context("medium", "reminders")
    a, b = posterior(state, CFG, empty, "peer_comparison")
    assert a / (a + b) > 0.7
    flat = CFG.model_copy(update={"backoff_strength": 0.0})
    assert posterior(state, flat, empty, "peer_comparison") == (1.0, 1.0)


def test_rich_context_follows_its_own_data_not_the_tier() -> None:
    state = BanditState()
    _feed(state, CFG, Context("medium", "achievement"), "peer_comparison", wins=800, losses=200)
    rich = Context("medium", "social")
    _feed(state, CFG, rich, "peer_comparison", wins=40, losses=360)  # 10 %
    alpha, beta = posterior(state, CFG, rich, "peer_comparison")
    assert alpha / (alpha + beta) < 0.15


def test_tier_without_profile_backs_off_to_global() -> None:
    state = BanditState()
    _feed(state, CFG, Context("low", None), "gentle_reminder", wins=90, losses=10)
    a, b = posterior(state, CFG, Context("high", None), "gentle_reminder")
    assert a + b == pytest.approx(22)  # 20 inherited from the global level, prior 2, nothing own
    assert a / (a + b) > 0.8


def test_choice_is_among_the_allowed_arms_only() -> None:
    state = BanditState()
    _feed(state, CFG, MEDIUM, "discount_offer", wins=500, losses=0)  # a great arm the tier does not allow
    for i in range(200):
        choice = choose(state, CFG, allowed_arms=ARMS, context=MEDIUM, rng=decision_rng(7, f"d{i}"), held_out=False)
        assert choice is not None
        assert choice.arm in ARMS
        assert set(choice.draws) == set(ARMS) == set(choice.means)
        assert choice.context_key == "medium/competition"


def test_held_out_student_is_never_chosen_for_and_draws_nothing() -> None:
    state = BanditState()
    rng = random.Random(3)
    before = rng.getstate()
    for i in range(50):
        ctx = Context(random.Random(i).choice(["low", "medium", "high"]), "unknown")
        assert choose(state, CFG, allowed_arms=ARMS, context=ctx, rng=rng, held_out=True) is None
    assert rng.getstate() == before


def test_bad_requests_are_refused_with_the_reason() -> None:
    state = BanditState()
    with pytest.raises(ValueError, match="no arms allowed for tier 'minimal'"):
        choose(state, CFG, allowed_arms=(), context=Context("minimal"), rng=random.Random(0), held_out=False)
    with pytest.raises(ValueError, match="repeat"):
        choose(state, CFG, allowed_arms=("a", "a"), context=MEDIUM, rng=random.Random(0), held_out=False)
    with pytest.raises(ValueError, match="profile bucket 'a/b'"):
        Context("medium", "a/b")
    with pytest.raises(ValueError, match="tier ''"):
        Context("")
    with pytest.raises(ValueError, match="decay factor"):
        decay(state, 1.5)


def test_same_seed_and_decision_id_replay_the_same_choice() -> None:
    state = BanditState()
    _feed(state, CFG, MEDIUM, ARMS[0], wins=5, losses=5)
    _feed(state, CFG, MEDIUM, ARMS[1], wins=5, losses=5)

    def pick(seed: int, decision: str) -> str:
        choice = choose(state, CFG, allowed_arms=ARMS, context=MEDIUM, rng=decision_rng(seed, decision), held_out=False)
        assert choice is not None
        return choice.arm

    picks = [pick(11, f"intervention-{i}") for i in range(100)]
    assert picks == [pick(11, f"intervention-{i}") for i in range(100)]
    assert len(set(picks)) == 2  # equal posteriors: both arms are drawn, so the equality above means something
    assert picks != [pick(12, f"intervention-{i}") for i in range(100)]


def test_converges_on_a_clear_winner_in_a_two_arm_problem() -> None:
    """True rates 30 % vs 50 %: after 1,000 draws with outcomes fed back, the better arm is nearly always chosen."""
    truth = {ARMS[0]: 0.3, ARMS[1]: 0.5}
    world = random.Random(2026)
    state = BanditState()
    chosen = []
    for i in range(1_000):
        choice = choose(state, CFG, allowed_arms=ARMS, context=MEDIUM, rng=decision_rng(5, f"d{i}"), held_out=False)
        assert choice is not None
        chosen.append(choice.arm)
        record(state, CFG, context=MEDIUM, arm=choice.arm, success=world.random() < truth[choice.arm])
    last = chosen[-200:]
    assert last.count(ARMS[1]) / len(last) > 0.9
    assert chosen.count(ARMS[1]) > 700
    a, b = posterior(state, CFG, MEDIUM, ARMS[1])
    assert abs(a / (a + b) - 0.5) < 0.06


def test_state_round_trips_through_json() -> None:
    state = BanditState()
    _feed(state, CFG, MEDIUM, ARMS[0], wins=3, losses=2)
    _feed(state, CFG, Context("low"), "gentle_reminder", wins=1, losses=4)
    decay(state, 0.5)
    copy = BanditState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert copy == state
    for ctx, arm in ((MEDIUM, ARMS[0]), (Context("low"), "gentle_reminder"), (MEDIUM, ARMS[1])):
        assert posterior(copy, CFG, ctx, arm) == posterior(state, CFG, ctx, arm)
    assert state.counts("medium/competition", ARMS[0]) == (1.5, 1.0)


def test_malformed_state_is_refused() -> None:
    good = BanditState()
    _feed(good, CFG, MEDIUM, ARMS[0], wins=1, losses=1)
    doc = good.to_dict()
    with pytest.raises(ValueError, match="version"):
        BanditState.from_dict({**doc, "version": 99})
    broken = json.loads(json.dumps(doc))
    broken["contexts"]["*"]["arms"][ARMS[0]] = [1, -1]
    with pytest.raises(ValueError, match=r"counts must be \[successes, failures\] >= 0"):
        BanditState.from_dict(broken)
    with pytest.raises(ValueError, match="more than max_contexts=2"):
        BanditState.from_dict(doc, BanditConfig(max_contexts=2))


def test_state_is_bounded_evicting_the_least_recently_updated_bucket() -> None:
    cfg = BanditConfig(max_contexts=6)
    state = BanditState()
    for i in range(20):
        record(state, cfg, context=Context("medium", f"bucket{i}"), arm=ARMS[0], success=i % 2 == 0)
        assert len(state.contexts) <= 6
    # Global and the tier are never evicted, and they still hold every outcome; the newest buckets are kept.
    assert {"*", "medium"} <= set(state.contexts)
    assert state.counts("medium", ARMS[0]) == (10.0, 10.0)
    assert {f"medium/bucket{i}" for i in range(16, 20)} <= set(state.contexts)
    assert "medium/bucket0" not in state.contexts
    # A state full of tiers alone refuses a new one with the reason.
    tiny = BanditConfig(max_contexts=2)
    full = BanditState()
    record(full, tiny, context=Context("low"), arm=ARMS[0], success=True)
    with pytest.raises(ValueError, match="full"):
        record(full, tiny, context=Context("high"), arm=ARMS[0], success=True)


def test_arms_per_context_are_bounded() -> None:
    cfg = BanditConfig(max_arms=2)
    state = BanditState()
    record(state, cfg, context=MEDIUM, arm="a", success=True)
    record(state, cfg, context=MEDIUM, arm="b", success=True)
    with pytest.raises(ValueError, match=r"max_arms=2 arms; 'c' refused"):
        record(state, cfg, context=MEDIUM, arm="c", success=True)


def test_decay_weighs_old_outcomes_less() -> None:
    state = BanditState()
    _feed(state, CFG, MEDIUM, ARMS[0], wins=10, losses=0)
    decay(state, 0.1)
    _feed(state, CFG, MEDIUM, ARMS[0], wins=0, losses=10)
    a, b = posterior(state, CFG, MEDIUM, ARMS[0])
    assert a / (a + b) < 0.25  # the newer failures dominate the older, decayed successes


def test_only_returns_are_rewards() -> None:
    assert reward_of(OutcomeKind.returned_within_7d) is True
    assert reward_of("not_returned_within_7d") is False
    for kind in (OutcomeKind.opened, OutcomeKind.clicked, OutcomeKind.held_out, OutcomeKind.delivered):
        assert reward_of(kind) is None
    with pytest.raises(ValueError, match="bogus"):
        reward_of("bogus")
