"""The bandit benchmark's simulation (engage.bench.bandit) on a small population: consistent and reproducible."""

from __future__ import annotations

from engage.bench.bandit import ARM_TRIGGER, POLICIES, BanditBenchConfig, measure_bandit, schedule, simulate_students
from processors.policy import PolicyConfig

SMALL = BanditBenchConfig(students=400, weeks=4, seed=7)
POLICY = PolicyConfig()


def test_students_have_a_preferred_type_and_the_holdout_is_the_policys() -> None:
    students = simulate_students(SMALL, POLICY)
    assert len(students) == 400
    held = [s for s in students if s.held_out]
    assert 0.05 < len(held) / len(students) < 0.15  # the policy's 10 % holdout
    # Every type helps a little; the one matching the hidden trigger helps most (noise aside).
    assert all(min(s.p.values()) > s.base - 0.1 for s in students)
    matching = [s for s in students if s.trigger == ARM_TRIGGER[max(s.p, key=lambda arm: s.p[arm])]]
    assert len(matching) / len(students) > 0.8
    assert all(s.bucket(0) == "unknown" for s in students)


def test_schedule_only_asks_for_tiers_with_interventions() -> None:
    students = simulate_students(SMALL, POLICY)
    weeks = schedule(SMALL, POLICY, students)
    assert len(weeks) == 4
    for decisions in weeks:
        assert decisions
        for d in decisions:
            assert d.tier != "minimal"  # the tier without interventions never reaches the bandit
            assert list(d.allowed) == [str(t) for t in POLICY.tiers[d.tier].intervention_types]


def test_measurement_is_consistent_and_reproducible() -> None:
    first = measure_bandit(SMALL, POLICY)
    assert first.rows == measure_bandit(SMALL, POLICY).rows
    assert first.regret["oracle_student"] == 0.0
    assert all(first.regret[p] >= 0 for p in POLICIES)
    for row in first.rows:
        assert row.decisions > 0 and row.held_out > 0
        assert all(row.expected["oracle_student"] >= row.expected[p] - 1e-9 for p in POLICIES)
    decisions, returned, held, held_returned = first.totals()
    assert decisions == sum(r.decisions for r in first.rows)
    assert all(0 < returned[p] < decisions for p in POLICIES)
    assert 0 < held_returned < held
