"""``engage bench gamification``'s comparison logic: fastest of each side, and the median of the rounds' paired
ratios, which a machine whose speed drifts between rounds does not bias."""

from __future__ import annotations

from rich.console import Console

from engage.bench.gamification import figures, gamification_cost
from engage.bench.report import Run

SENT = {"xp_awards": 5, "level_ups": 1, "achievements": 1, "celebrations": 2, "standings": 3}
NOTHING = dict.fromkeys(SENT, 0)


def test_paired_ratios_follow_each_round_while_the_fastest_mixes_rounds() -> None:
    # round 1 ran on a fast machine, round 2 on one twice as slow: within each round 'on' is 10 % slower
    seconds = {"game-on0": 1.1, "game-off0": 1.0, "game-off1": 2.0, "game-on1": 2.2}
    order: list[str] = []

    def drain(name: str, on: bool) -> tuple[Run, dict[str, int]]:
        order.append(name)
        return Run(seconds[name], cpu=seconds[name] * 0.9), SENT if on else NOTHING

    cost = gamification_cost(drain, Console(quiet=True), 100, rounds=2)
    assert order == ["game-on0", "game-off0", "game-off1", "game-on1"]  # alternating which goes first
    assert cost.problems == []
    assert round(cost.paired(""), 6) == round(1 / 1.1, 6)
    assert round(cost.paired("cpu"), 6) == 1.1
    shown = {f.name: f for f in figures(cost, 100, None)}
    assert round(shown["throughput on / off, median of rounds"].value, 3) == 0.909
    assert "0.91, 0.91" in shown["throughput on / off, median of rounds"].notes


def test_a_side_that_sent_the_wrong_messages_is_a_problem() -> None:
    def drain(name: str, on: bool) -> tuple[Run, dict[str, int]]:
        return Run(1.0, cpu=1.0), SENT  # 'off' sent gamification messages

    cost = gamification_cost(drain, Console(quiet=True), 100, rounds=1)
    assert any("gamification off still sent" in p for p in cost.problems)
