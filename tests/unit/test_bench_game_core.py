"""`engage bench game-core` on a few thousand simulator events: both sides fold the same events, only the 'on'
side prices them and sends gamification messages, and the split names where its extra went."""

from __future__ import annotations

from config.settings import Settings
from engage.bench.game_core import GAME_TOPICS, measure


def test_the_on_side_alone_prices_the_events_and_sends_gamification_messages() -> None:
    result = measure(3_000, rounds=1, settings=Settings())
    on, off = result.on, result.off
    assert on is not None and off is not None
    assert on.messages["xp_awards"] > 0 and on.messages["standings"] > 0
    assert not any(off.messages.get(t) for t in GAME_TOPICS)
    assert on.stages["pricing (play)"] > 0 and "pricing (play)" not in off.stages
    assert off.stages["writing records"] > 0
    # the same events reach both sides (one gather: each student is re-scored once on each)
    assert on.messages["bench.risk-updates.v1"] == off.messages["bench.risk-updates.v1"] > 0
    assert on.record_bytes > off.record_bytes
    assert len(result.rounds) == 1 and result.cpu_ratio() > 0
