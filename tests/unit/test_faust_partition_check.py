"""faust_internals.partition_count_unknown_is_not_a_mismatch: a changelog counted at 0 partitions (absent from a
metadata answer while a broker is lost) is not known yet, not a mismatch; a real mismatch still fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.exceptions import PartitionsMismatch

from streams.worker.faust_internals import partition_count_unknown_is_not_a_mismatch


def _table(source: int, changelog: int) -> SimpleNamespace:
    counts = {"events": source, "changelog": changelog}
    checked: list[str] = []

    def faust_check(topic: str) -> None:  # what Faust's own check does with these counts
        checked.append(topic)
        if counts["events"] != counts["changelog"]:
            raise PartitionsMismatch(f"{counts['events']} against {counts['changelog']}")

    consumer = SimpleNamespace(topic_partitions=lambda topic: counts["events" if topic == "events" else "changelog"])
    table = SimpleNamespace(app=SimpleNamespace(consumer=consumer), changelog_topic_name="changelog",
                            _verify_source_topic_partitions=faust_check, checked=checked)  # fmt: skip
    partition_count_unknown_is_not_a_mismatch(table)
    return table


def test_a_changelog_missing_from_the_metadata_is_checked_at_a_later_write() -> None:
    table = _table(4, 0)
    table._verify_source_topic_partitions("events")  # no PartitionsMismatch, and Faust's check not run
    assert table.checked == []


def test_a_real_mismatch_still_fails_and_a_match_passes() -> None:
    with pytest.raises(PartitionsMismatch, match="4 against 2"):
        _table(4, 2)._verify_source_topic_partitions("events")
    matching = _table(4, 4)
    matching._verify_source_topic_partitions("events")
    assert matching.checked == ["events"]
