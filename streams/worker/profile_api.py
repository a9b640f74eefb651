"""``GET /v1/users/{id}/profile``: the student's personalisation profile as of now (``processors.profile``).

Read live from the record, with the worker's cohorts as priors, without counting the read in those cohorts (a
client polling a profile must not weigh its student more); the daily copy on the ``profiles`` topic is what the
warehouse keeps. The notification service and the client app read it to pick channel, time and content order.
"""

from __future__ import annotations

from typing import Any

from processors.pipeline import UserRecord, student_profile
from processors.signals import snapshot
from streams.worker.core.engine import WorkerCore


def profile_view(worker: WorkerCore, user_id: str, record: UserRecord) -> dict[str, Any]:
    now = worker.now()
    calendars = worker.courses.calendars()
    snap = snapshot(record.state, now, calendars)
    profile = student_profile(
        record, user_id, snap, worker.profiles, worker.activity, worker.policy, calendars, observe=False
    )
    return profile.model_dump(mode="json")
