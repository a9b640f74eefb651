"""`engage bench replay-core` on the seven-enrolment OULAD sample: the core folds every event, and on the event
clock the silence pass re-scores the students the replayed days leave silent (the cost #26 is about)."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from engage.bench.replay_core import measure
from engage.oulad.dataset import OuladDataset
from engage.oulad.replay import replay_days

SAMPLE = Path(__file__).parent.parent / "fixtures" / "oulad_sample"


def test_the_core_folds_every_replayed_event_and_rescores_the_silent_days() -> None:
    data = OuladDataset.load(SAMPLE)
    expected = sum(len(events) for _, events in replay_days(OuladDataset.load(SAMPLE)))
    result = measure(data, Settings(), profile=True, top=5)
    assert result.events == expected > 0
    assert result.rescores_on_events > 0
    # students silent on a replayed day (a day with others' events: the clock moves only then) are re-scored by
    # the pass; with seven students most days have none of theirs
    assert result.rescores_silent > 0
    assert result.table_writes > 0 and len(result.top) == 5
    assert all(not row["function"].startswith("engage/bench/") for row in result.top)
