"""faust_internals.perform_assignment_knowing_every_topic: the group leader does not assign while a topic of the
group (a changelog just created) is missing from its Kafka metadata; it refreshes and assigns again, and exits to
be restarted if the topic never shows up."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from streams.worker.core.durability import EXIT_STATE_NOT_DURABLE
from streams.worker.faust_internals import assign_only_with_every_topic_known, perform_assignment_knowing_every_topic


class _Cluster:
    def __init__(self, known: dict[str, int]) -> None:
        self.known = known

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.known.get(topic, 0)
        return set(range(count)) if count else None


def _coordinator(known: dict[str, int], learns_after: int | None) -> SimpleNamespace:
    """A coordinator whose metadata lacks the changelog until ``learns_after`` refreshes (None: never)."""
    cluster = _Cluster(known)
    refreshes: list[int] = []

    async def force_metadata_update() -> bool:
        refreshes.append(1)
        if learns_after is not None and len(refreshes) >= learns_after:
            cluster.known["changelog"] = 4
        return True

    client = SimpleNamespace(force_metadata_update=force_metadata_update)
    return SimpleNamespace(_cluster=cluster, _group_subscription={"events", "changelog"}, _client=client,
                           refreshes=refreshes)  # fmt: skip


def _assignor(coordinator: SimpleNamespace, assigned: list[dict[str, int]]):  # type: ignore[no-untyped-def]
    async def perform() -> dict[str, int]:  # Faust's assignor: counts only the topics it knows
        assignment = {topic: count for topic, count in coordinator._cluster.known.items() if count}
        assigned.append(assignment)
        return assignment

    return perform


def test_a_changelog_missing_from_the_metadata_is_waited_for_then_assigned_with() -> None:
    coordinator = _coordinator({"events": 4}, learns_after=2)
    assigned: list[dict[str, int]] = []
    result = asyncio.run(perform_assignment_knowing_every_topic(coordinator, _assignor(coordinator, assigned), 5.0, 0))
    assert result == {"events": 4, "changelog": 4}
    assert len(coordinator.refreshes) == 2
    assert assigned[:2] == [{"events": 4}, {"events": 4}]  # those assignments were not handed to the group


def test_every_topic_known_assigns_at_once() -> None:
    coordinator = _coordinator({"events": 4, "changelog": 4}, learns_after=None)
    assigned: list[dict[str, int]] = []
    result = asyncio.run(perform_assignment_knowing_every_topic(coordinator, _assignor(coordinator, assigned), 5.0, 0))
    assert result == {"events": 4, "changelog": 4}
    assert coordinator.refreshes == [] and len(assigned) == 1


def test_a_topic_that_never_shows_up_restarts_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons: list[str] = []

    def exit_instead(reason: str) -> None:
        reasons.append(reason)
        raise SystemExit(EXIT_STATE_NOT_DURABLE)

    monkeypatch.setattr("streams.worker.faust_internals.exit_to_be_restarted", exit_instead)
    coordinator = _coordinator({"events": 4}, learns_after=None)
    with pytest.raises(SystemExit):
        asyncio.run(perform_assignment_knowing_every_topic(coordinator, _assignor(coordinator, []), 0.05, 0.01))
    assert len(reasons) == 1 and "['changelog']" in reasons[0], reasons
    assert coordinator.refreshes  # it asked again before giving up


def test_the_patch_is_on_aiokafkas_coordinator_once() -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    assign_only_with_every_topic_known(30.0)
    patched = GroupCoordinator._perform_assignment
    assign_only_with_every_topic_known(30.0)
    assert GroupCoordinator._perform_assignment is patched
    assert getattr(patched, "knows_every_topic", False)
