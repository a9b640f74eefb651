"""Celebrations in the student's in-app inbox: what the worker's ``Celebration`` messages become there.

The notification service (``engage notify``) also consumes the celebrations topic and writes each celebration into
the inbox store the in-app channel writes (``notifications.inbox``), which the engagement API reads. Why there:

- It is the process that already owns inbox writes, and the celebrations topic is partitioned like the
  interventions topic (by user id, same count), so the range assignment gives each process the same students for
  both: nothing new to run, no second writer design.
- A celebration is not an intervention: it skips the policy, the ledger, the per-student cap, the holdout and the
  deadline, and has no channel choice (in-app only). It only respects an explicit unsubscribe from in-app.
- Exactly once in the inbox, without a ledger: the item id is the ``celebration_id`` (deterministic,
  ``{kind}:{source id}``) and the store keeps one row per (student, item id), so a re-sent or re-delivered
  celebration changes nothing (``InboxStore.add`` answers False). Celebration ids start with their kind and
  intervention ids with the user id, so the two cannot meet in one student's inbox unless a user id is literally
  ``achievement``, ``level_up`` or ``streak_milestone``.

Reading a celebration in the inbox marks it read and nothing else: no ``opened`` outcome or event, which would be
counted as an intervention's (``streams.worker.inbox_api``).
"""

from __future__ import annotations

from datetime import datetime

from notifications.inbox import InboxItem
from schemas.gamification import Celebration

CELEBRATION = "celebration"


def celebration_item(celebration: Celebration, at: datetime) -> InboxItem:
    """The inbox item for ``celebration``, delivered at ``at`` (its place in the inbox, like an in-app message's)."""
    return InboxItem(
        user_id=celebration.user_id,
        item_id=celebration.celebration_id,
        title=celebration.title,
        body=celebration.body,
        created_at=at,
        data={
            "type": CELEBRATION,
            "kind": celebration.kind.value,
            "source_id": celebration.source_id,
            "event_time": celebration.event_time.isoformat(),
        },
    )


def is_celebration(item: InboxItem) -> bool:
    return item.data.get("type") == CELEBRATION
