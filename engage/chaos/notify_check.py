"""The chaos suite's notify case: every request the notification service had to send by now reached a provider
exactly once or became a dead letter, never both, while ``notify-*`` processes were SIGKILLed (issue #21).

Which requests had to be handled (``plan``, pure): every distinct intervention id on the interventions topic (the
worker may emit one decision twice under the same id after its own crash: the service's ledger dedupes by id, and
the first occurrence in its partition is what it acted on), of status ``send`` (not human outreach: that is
queued for the success desk, never sent) or ``deferred`` with ``send_after`` before the cutoff (the verification
time minus a margin). A request not due yet must be ``scheduled`` in the send ledger (else it was lost); one the
cap held back (``scheduled`` past the cutoff) is not due either. A request that was handled early anyway (pulled
into a digest, or sent a moment before the cutoff) is checked like a due one. Held-out and outreach requests
must never reach a provider: a send of one is ``unexpected``.

What happened (thin readers): the stand-ins' record of accepted e-mail and push (each carries its intervention id),
the in-app inbox (one item per intervention id, so a repeated in-app send cannot show: the inbox keeps one), the
``dead_lettered`` and ``digested`` outcomes. ``notifications.verify.check_sends`` judges them; duplicates are
allowed only up to the crashes x ``notify_max_in_flight`` (a crash between a provider's acceptance and the ledger's
acknowledgement resends at most what was in flight).
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from deploy.providers.record import read_accepted
from engage.chaos.verify import topic_messages
from kafka_io.client import Kafka
from notifications.celebrations import CELEBRATION
from notifications.verify import SendCheck, check_sends
from schemas.interventions import InterventionRequest, InterventionType
from schemas.notifications import FINAL_STATES, LedgerEntry


@dataclass(frozen=True)
class SendPlan:
    """What the service owed at ``cutoff``."""

    cutoff: datetime
    expected: frozenset[str]  # had to be sent (or dead-lettered, or digested) by the cutoff
    later: frozenset[str]  # scheduled in the ledger for after the cutoff
    unscheduled: frozenset[str]  # not due yet, yet not scheduled in the ledger either: lost
    never_sent: frozenset[str]  # held out or human outreach: must reach no provider
    requests: int  # distinct intervention ids
    re_emitted: int  # messages on the topic beyond the first per id
    by_status: dict[str, int] = field(default_factory=dict)


def newest_states(entries: Iterable[LedgerEntry]) -> dict[str, LedgerEntry]:
    """Each request's newest request-level entry (no channel), from entries in topic order."""
    out: dict[str, LedgerEntry] = {}
    for entry in entries:
        if entry.channel is None:
            out[entry.intervention_id] = entry
    return out


def plan(requests: Iterable[InterventionRequest], ledger: Mapping[str, LedgerEntry], cutoff: datetime) -> SendPlan:
    """Sort the requests into owed by ``cutoff``, scheduled for later, lost before their time, never to be sent.
    ``ledger``: intervention id -> its newest request-level entry (``newest_states``)."""
    first: dict[str, InterventionRequest] = {}
    seen = 0
    for request in requests:
        seen += 1
        first.setdefault(request.intervention_id, request)
    expected: set[str] = set()
    later: set[str] = set()
    unscheduled: set[str] = set()
    never: set[str] = set()
    for iid, request in first.items():
        if request.status == "held_out" or request.intervention_type is InterventionType.human_outreach:
            never.add(iid)
            continue
        entry = ledger.get(iid)
        due = request.send_after if request.status == "deferred" else None
        if entry is not None and entry.state in FINAL_STATES:
            expected.add(iid)  # handled, possibly early (a digest): check what happened to it
        elif entry is not None and entry.state == "scheduled" and entry.due_at is not None and entry.due_at > cutoff:
            later.add(iid)  # deferred, or held back by the per-student cap, to after the cutoff
        elif due is not None and due > cutoff:
            (later if entry is not None and entry.state == "scheduled" else unscheduled).add(iid)
        else:
            expected.add(iid)
    return SendPlan(
        cutoff=cutoff,
        expected=frozenset(expected),
        later=frozenset(later),
        unscheduled=frozenset(unscheduled),
        never_sent=frozenset(never),
        requests=len(first),
        re_emitted=seen - len(first),
        by_status=dict(Counter(r.status for r in first.values())),
    )


@dataclass(frozen=True)
class NotifyVerdict:
    plan: SendPlan
    check: SendCheck
    crashes: int  # notification processes that died (SIGKILLs among them) and were restarted
    max_in_flight: int
    unattributed: int = 0  # accepted messages naming no intervention (SMS: none expected, no phone numbers)
    unscheduled: frozenset[str] = frozenset()  # not due, not scheduled, not sent either: lost

    @property
    def bound(self) -> int:
        """Resends a correct service may make: what was in flight at each crash."""
        return self.crashes * self.max_in_flight

    @property
    def lost(self) -> tuple[str, ...]:
        return tuple(sorted({*self.check.lost, *self.unscheduled}))

    @property
    def delivered(self) -> bool:
        c = self.check
        return (
            not self.lost
            and not c.sent_and_dead
            and not c.unexpected
            and not self.unattributed
            and c.extra_sends <= self.bound
        )

    def lines(self) -> list[str]:
        p, c = self.plan, self.check
        statuses = ", ".join(f"{k} {v}" for k, v in sorted(p.by_status.items()))
        return [
            f"requests: {p.requests:,} distinct ids ({statuses}; {p.re_emitted} re-emitted under the same id)",
            f"expected by {p.cutoff:%H:%M:%S}: {c.expected:,}; sent once {c.sent_once:,}, dead-lettered "
            f"{len(c.dead_lettered):,}, digested {len(c.digested):,}",
            f"lost: {len(self.lost)}; sent and dead-lettered: {len(c.sent_and_dead)}; unexpected sends: "
            f"{len(c.unexpected) + self.unattributed}",
            f"duplicated: {len(c.duplicated)} requests, {c.extra_sends} extra sends (bound: {self.crashes} crashes x "
            f"{self.max_in_flight} in flight = {self.bound})",
            f"scheduled for later: {len(p.later):,}; held out or outreach (never sent): {len(p.never_sent):,}",
        ]


def judge(
    send_plan: SendPlan,
    accepted: Iterable[str | None],
    dead_lettered: Iterable[str],
    digested: Iterable[str],
    crashes: int,
    max_in_flight: int,
) -> NotifyVerdict:
    """The verdict: ``accepted`` is one intervention id per message a provider accepted (None: not attributable)."""
    sends = list(accepted)
    named = [i for i in sends if i is not None]
    # Sent before its time (just before the cutoff, the ledger not read back with it yet): check it as owed.
    early = (send_plan.later | send_plan.unscheduled) & set(named)
    check = check_sends(send_plan.expected | early, named, dead_lettered, digested)
    return NotifyVerdict(
        send_plan,
        check,
        crashes,
        max_in_flight,
        unattributed=len(sends) - len(named),
        unscheduled=send_plan.unscheduled - early,
    )


# -- readers ----------------------------------------------------------------------------------------------------


def read_requests(bootstrap: Kafka, topic: str) -> list[InterventionRequest]:
    return [InterventionRequest.model_validate(m) for m in topic_messages(bootstrap, topic)]


def read_ledger(bootstrap: Kafka, topic: str) -> dict[str, LedgerEntry]:
    return newest_states(LedgerEntry.model_validate(m) for m in topic_messages(bootstrap, topic))


def read_outcomes(bootstrap: Kafka, topic: str) -> dict[str, set[str]]:
    """Outcome kind -> intervention ids."""
    out: dict[str, set[str]] = {}
    for m in topic_messages(bootstrap, topic):
        out.setdefault(str(m.get("outcome")), set()).add(str(m.get("intervention_id")))
    return out


def read_sends(record_dir: Path, inbox: Path) -> list[str | None]:
    """One intervention id per accepted e-mail or push, and per in-app item (None: a record naming none); the
    worker's celebrations in the inbox are not interventions and are left out."""
    ids: list[str | None] = [a.intervention_id for a in read_accepted(record_dir)]
    if inbox.exists():
        with sqlite3.connect(f"file:{inbox}?mode=ro", uri=True) as db:
            rows = db.execute("SELECT item_id, data FROM inbox_items").fetchall()
        ids += [str(item) for item, data in rows if json.loads(data).get("type") != CELEBRATION]
    return ids


def owed_now(ledger: Mapping[str, LedgerEntry], now: datetime) -> int:
    """Requests the ledger holds as scheduled whose time has come (the service still owes them)."""
    return sum(1 for e in ledger.values() if e.state == "scheduled" and e.due_at is not None and e.due_at <= now)
