"""When a gather of messages is complete: at once when the stream is live, full when it is behind.

The worker folds messages a gather at a time, and much of a fold's cost is per student and gather, not per
event (a re-score, a standing, a record write each), so large gathers make a backlog cheaper per event. Faust's
``take`` ends a gather ``within`` seconds after the previous one, however far behind the stream is, so a gather's
size was set by how many messages Faust could hand over in that window, which varies with everything else the
event loop does (a commit, a timer): the same backlog drained in 4 gathers one time and in 11 the next, at up
to 1.4x the CPU per event (`engage bench gamification`, #22).

So: while the newest message gathered is older than ``behind_seconds`` (the stream is catching up: its events
are late already, a few more milliseconds cost them nothing), the gather goes on as long as messages keep
arriving, up to ``max_messages`` or ``longest_seconds``. A live stream ends its gathers after ``within_seconds``
as before, so its latency is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GatherPolicy:
    max_messages: int
    within_seconds: float  # a live gather ends this long after the previous one (Faust's ``within``)
    behind_seconds: float  # a message older than this: the stream is behind
    longest_seconds: float  # a gather that is behind ends after this long whatever comes

    def keep_going(self, size_before: int, size_now: int, newest_timestamp: float | None, now: float,
                   waited: float) -> bool:  # fmt: skip
        """After one more wait of ``within_seconds``: whether the gather should wait again (``size_before``: its
        messages before that wait; ``newest_timestamp``: the newest gathered message's Kafka timestamp, seconds
        since the epoch, None when unknown; ``waited``: seconds since the gather's first wait began)."""
        if size_now == 0 or size_now >= self.max_messages or size_now == size_before:
            return False  # empty, full, or nothing came: the stream has caught up (or stalled)
        if waited >= self.longest_seconds:
            return False
        return newest_timestamp is not None and now - newest_timestamp > self.behind_seconds
