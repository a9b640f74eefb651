"""What the worker sends: risk updates, interventions, daily profiles, experiment exposures, bandit outcomes, streak
milestones, gamification, erasures, dead letters.

On the events path each output is also kept in the student's record (its outbox) until the batch behind it is
committed, so that a worker that crashes after Kafka acknowledged the record but not the outputs sends them
again from the restored record (``core.engine.WorkerCore.restore_owed``). Outputs carry their ids, so a second
copy replaces the first downstream.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from processors.gamification.engine import GameOutcome
from processors.pipeline import ScoreOutcome, UserRecord
from schemas.messages import DeadLetter, kept_raw
from schemas.privacy import ErasureDone
from schemas.streaks import StreakMilestone
from schemas.topics import TopicCatalogue
from streams.worker import metrics as m
from streams.worker.core.ports import Message, Outputs


class Emitter:
    def __init__(self, outputs: Outputs, topics: TopicCatalogue) -> None:
        self.outputs = outputs
        self.topics = topics
        self._tier_counts: dict[str, int] = {}  # students per risk tier on this worker (a gauge)
        # labelled counters by (counter, label): ``labels()`` costs more than the increment, once per batch and rule
        self._children: dict[tuple[Any, str], Any] = {}

    def _child(self, counter: Any, label: str) -> Any:
        """``counter.labels(label)``, made once."""
        child = self._children.get((counter, label))
        if child is None:
            child = self._children[(counter, label)] = counter.labels(label)
        return child

    def send_kept(self, record: UserRecord | None, topic: str, key: str, value: str) -> None:
        """Send an output; on the events path (``record`` given) also keep it in the record's outbox."""
        self.outputs.send_encoded(key.encode(), value.encode(), topic=topic)
        if record is not None:
            record.outbox.append([topic, key, value, record.source_offset])

    def risk(self, outcome: ScoreOutcome, user_id: str, sent_at: float, keep: UserRecord | None = None) -> None:
        """A re-score's risk update, its intervention if the policy decided one, and the day's profile if due."""
        update = outcome.update
        self.outputs.send_encoded(
            user_id.encode(), update.model_dump_json().encode(), topic=self.topics.risk_updates.name
        )
        m.RISK_UPDATES.labels(update.trigger, update.tier).inc()
        m.RISK_SCORES.labels("7d").observe(update.risk_7d)
        m.RISK_SCORES.labels("30d").observe(update.risk_30d)
        if update.received_at is not None and update.trigger == "events":
            m.EVENT_TO_RISK_SECONDS.observe(max(0.0, sent_at - update.received_at.timestamp()))
        if update.previous_tier != update.tier:
            if update.previous_tier is not None:
                self._count_tier(update.previous_tier, -1)
            self._count_tier(update.tier, +1)
        decision = outcome.decision
        kind = decision.request.intervention_type.value if decision.request is not None else "none"
        m.INTERVENTIONS.labels(kind, decision.outcome).inc()
        if decision.request is not None:
            self.send_kept(keep, self.topics.interventions.name, user_id, decision.request.model_dump_json())
        if outcome.profile is not None:
            m.PROFILES.inc()
            self.send_kept(keep, self.topics.profiles.name, user_id, outcome.profile.model_dump_json())
        for shown in outcome.exposures:
            m.EXPOSURES.labels(shown.experiment, shown.variant).inc()
            self.send_kept(keep, self.topics.exposures.name, user_id, shown.model_dump_json())
        for closed in outcome.arm_outcomes:
            m.ARM_WINDOWS.labels(closed.arm.value, "returned" if closed.success else "not_returned").inc()
            self.send_kept(keep, self.topics.bandit_outcomes.name, user_id, closed.model_dump_json())

    def milestone(self, record: UserRecord, user_id: str, milestone: StreakMilestone) -> None:
        m.STREAK_MILESTONES.labels(str(milestone.milestone_days)).inc()
        self.send_kept(record, self.topics.streak_milestones.name, user_id, milestone.model_dump_json())

    def game(self, record: UserRecord, outcome: GameOutcome) -> None:
        """What a batch earned: its XP awards as one ``XpAwardBatch``, level-ups, unlocks and celebrations, each
        kept in the outbox.

        The awards go as one message (about one award for every three events: a message each cost more than
        pricing them); the rest are rarer, kept by the engine as JSON-ready dicts and encoded with orjson: pydantic's
        validation and serialiser cost more than the rest of the gamification fold."""
        t = self.topics
        batch = outcome.award_batch()
        if batch is not None:
            xp: dict[str, int] = {}
            for row in outcome.award_rows:  # schemas.gamification.AWARD_FIELDS: rule id first, XP fourth
                xp[row[0]] = xp.get(row[0], 0) + row[3]
            for rule, n in xp.items():
                self._child(m.XP_AWARDED, rule).inc(n)
            self.send_kept(record, t.xp_awards.name, outcome.user_id, orjson.dumps(batch).decode())
        user_id = outcome.user_id
        if outcome.level_up_rows:
            m.LEVEL_UPS.inc(len(outcome.level_up_rows))
        for up in outcome.level_up_rows:
            self.send_kept(record, t.level_ups.name, user_id, orjson.dumps(up).decode())
        for unlock in outcome.unlock_rows:
            self._child(m.ACHIEVEMENTS, unlock["achievement_id"]).inc()
            self.send_kept(record, t.achievements.name, user_id, orjson.dumps(unlock).decode())
        for c in outcome.celebration_rows:
            self.send_kept(record, t.celebrations.name, user_id, orjson.dumps(c).decode())
        for shown in outcome.exposures:
            m.EXPOSURES.labels(shown.experiment, shown.variant).inc()
            self.send_kept(record, t.exposures.name, shown.user_id, shown.model_dump_json())

    def standing(self, record: UserRecord, user_id: str) -> None:
        """The student's XP on their boards, once per gather that changed it (the leaderboard service's input)."""
        row = record.game.standing_row(user_id)
        self.send_kept(record, self.topics.standings.name, user_id, orjson.dumps(row).decode())

    def forget_standing(self, user_id: str) -> None:
        """An erased student leaves the leaderboards: a tombstone on the compacted standings topic."""
        self.outputs.send_encoded(user_id.encode(), None, topic=self.topics.standings.name)

    def erased(self, erasure_id: str, found: bool) -> None:
        """Confirm an erasure on the erasures topic (keyed by its id)."""
        done = ErasureDone(erasure_id=erasure_id, erased_at=datetime.now(UTC), found=found)
        self.outputs.send_encoded(erasure_id.encode(), done.model_dump_json().encode(), topic=self.topics.erasures.name)
        m.ERASURES.labels("found" if found else "unknown").inc()

    def forget_tier(self, tier: str | None) -> None:
        """An erased student leaves the tier gauge."""
        if tier is not None and self._tier_counts.get(tier, 0) > 0:
            self._count_tier(tier, -1)

    def dead_letter(
        self,
        raw: bytes,
        reason: str,
        keep: UserRecord | None = None,
        source: Message | None = None,
        event_in: tuple[int, int] | None = None,
    ) -> None:
        """Refused input to the dead-letter topic, with where it came from: ``source``, the events message refused
        (or a student's batch in it), or ``event_in``, the (partition, offset) of the message holding one refused
        event. A large input keeps only its start: a letter bigger than Kafka takes would fail to send, and the
        worker would stop on the same message after every restart; the whole message stays on its topic."""
        where = (source.partition, source.offset) if source is not None else event_in
        letter = DeadLetter(
            dead_letter_id=f"processor:{time.time_ns()}",
            received_at=datetime.now(UTC),
            source="processor:signals",
            reason=reason,
            raw=kept_raw(raw.decode("utf-8", errors="replace")),
            original_topic=self.topics.events.name if where is not None else None,
            original_partition=where[0] if where is not None else None,
            original_offset=where[1] if where is not None else None,
        )
        if source is not None:  # a message or a student's batch in it, not one event (those: REJECTED_EVENTS)
            m.REFUSED_BATCHES.inc()
        self.send_kept(keep, self.topics.dead_letters.name, letter.source, letter.model_dump_json())

    def _count_tier(self, tier: str, delta: int) -> None:
        self._tier_counts[tier] = self._tier_counts.get(tier, 1 if delta < 0 else 0) + delta
        m.USERS_BY_TIER.labels(tier).set(self._tier_counts[tier])
