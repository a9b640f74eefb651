"""Did every request reach a student exactly once? The check behind the SIGKILL test, the chaos suite's notify case
and ``engage bench notify``.

Given the intervention ids that had to be handled (``send`` and ``deferred`` requests), every provider-accepted
send as the providers saw it (one id per message received, repeats included) and the ids dead-lettered, a request
is: ``sent once`` (the goal), ``lost`` (neither sent nor dead-lettered), ``duplicated`` (sent more than once: a
crash between the provider's acceptance and the ledger's acknowledgement, bounded by the messages in flight at each
crash) or ``sent and dead-lettered`` (a contradiction: it must never happen). Digested requests count as handled
when their carrier was sent (pass them in ``digested``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendCheck:
    expected: int
    sent_once: int
    dead_lettered: tuple[str, ...]
    digested: tuple[str, ...]
    lost: tuple[str, ...]
    duplicated: dict[str, int]  # id -> times the providers accepted it (> 1)
    sent_and_dead: tuple[str, ...]
    unexpected: tuple[str, ...]  # sent, but not among the requests (another run's, or a bug)

    @property
    def extra_sends(self) -> int:
        """Messages sent beyond the first, over all requests."""
        return sum(n - 1 for n in self.duplicated.values())

    @property
    def ok(self) -> bool:
        """Nothing lost, nothing contradictory, nothing unexpected (duplicates are judged against their bound)."""
        return not (self.lost or self.sent_and_dead or self.unexpected)

    def summary(self) -> str:
        return (
            f"{self.expected} requests: {self.sent_once} sent once, {len(self.dead_lettered)} dead-lettered, "
            f"{len(self.digested)} digested, {len(self.lost)} lost, {len(self.duplicated)} duplicated "
            f"({self.extra_sends} extra sends), {len(self.sent_and_dead)} sent and dead-lettered, "
            f"{len(self.unexpected)} unexpected"
        )


def check_sends(
    expected: Iterable[str],
    accepted: Iterable[str],
    dead_lettered: Iterable[str] = (),
    digested: Iterable[str] = (),
) -> SendCheck:
    wanted = set(expected)
    sends = Counter(accepted)
    dead = set(dead_lettered) & wanted
    merged = set(digested) & wanted
    sent = {i for i in sends if i in wanted}
    return SendCheck(
        expected=len(wanted),
        sent_once=sum(1 for i in sent if sends[i] == 1),
        dead_lettered=tuple(sorted(dead - sent)),
        digested=tuple(sorted(merged - sent - dead)),
        lost=tuple(sorted(wanted - sent - dead - merged)),
        duplicated={i: n for i, n in sorted(sends.items()) if i in wanted and n > 1},
        sent_and_dead=tuple(sorted(sent & dead)),
        unexpected=tuple(sorted(set(sends) - wanted)),
    )
