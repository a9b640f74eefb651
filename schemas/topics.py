"""The Kafka topic catalogue: every topic the engine reads or writes, in one place.

Names carry a version suffix so an incompatible contract change gets a new topic instead of breaking
consumers. Partition counts for per-user topics come from settings (they bound how many workers can share
the load); keys are user ids so one student's messages stay ordered in one partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 24 * 3600 * 1000
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a collector batch (1 MiB body) always fits, with room for dead letters


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    cleanup_policy: str = "delete"  # or "compact"
    retention_ms: int = 7 * DAY_MS  # -1 = keep forever
    key: str = "user_id"
    contract: str = ""  # the schemas model a message value conforms to
    extra_config: dict[str, str] = field(default_factory=dict)
    read_whole: bool = False  # a service reads it from the beginning as its state (as it does compacted topics)
    student_field: str = ""  # the value's field naming the student whose partition it is in, when the key does not

    @property
    def carried_over(self) -> bool:
        """State a service rebuilds by reading the whole topic: a new catalogue (more partitions) must start with
        it (``kafka_io.catalogue_move``); the other topics are a stream their consumers have finished with."""
        return self.cleanup_policy == "compact" or self.read_whole

    def config(self) -> dict[str, str]:
        cfg = {
            "cleanup.policy": self.cleanup_policy,
            "retention.ms": str(self.retention_ms),
            "max.message.bytes": str(MAX_MESSAGE_BYTES),
        }
        cfg.update(self.extra_config)
        return cfg


@dataclass(frozen=True)
class TopicCatalogue:
    events: TopicSpec
    dead_letters: TopicSpec
    risk_updates: TopicSpec
    interventions: TopicSpec
    streak_milestones: TopicSpec
    intervention_outcomes: TopicSpec
    courses: TopicSpec
    erasures: TopicSpec
    erasure_requests: TopicSpec
    erasure_reports: TopicSpec
    contacts: TopicSpec
    contact_changes: TopicSpec
    notification_ledger: TopicSpec
    profiles: TopicSpec
    xp_awards: TopicSpec
    level_ups: TopicSpec
    achievements: TopicSpec
    celebrations: TopicSpec
    standings: TopicSpec
    leaderboard_snapshots: TopicSpec
    league_results: TopicSpec
    exposures: TopicSpec
    bandit_outcomes: TopicSpec
    prefix: str = ""  # what every name starts with (``{prefix}.``); the consumer groups named after it too

    def all(self) -> list[TopicSpec]:
        return [
            self.events,
            self.dead_letters,
            self.risk_updates,
            self.interventions,
            self.streak_milestones,
            self.intervention_outcomes,
            self.courses,
            self.erasures,
            self.erasure_requests,
            self.erasure_reports,
            self.contacts,
            self.contact_changes,
            self.notification_ledger,
            self.profiles,
            self.xp_awards,
            self.level_ups,
            self.achievements,
            self.celebrations,
            self.standings,
            self.leaderboard_snapshots,
            self.league_results,
            self.exposures,
            self.bandit_outcomes,
        ]


def catalogue(prefix: str = "engage", partitions: int = 4) -> TopicCatalogue:
    return TopicCatalogue(
        prefix=prefix,
        events=TopicSpec(
            f"{prefix}.events.v1",
            partitions,
            retention_ms=7 * DAY_MS,
            contract="schemas.messages.EventBatch",
        ),
        dead_letters=TopicSpec(
            f"{prefix}.dead-letters.v1",
            1,
            retention_ms=30 * DAY_MS,
            key="source",
            contract="schemas.messages.DeadLetter",
        ),
        risk_updates=TopicSpec(
            f"{prefix}.risk-updates.v1", partitions, retention_ms=30 * DAY_MS, contract="schemas.risk.RiskUpdate"
        ),
        interventions=TopicSpec(
            f"{prefix}.interventions.v1",
            partitions,
            retention_ms=30 * DAY_MS,
            contract="schemas.interventions.InterventionRequest",
        ),
        streak_milestones=TopicSpec(
            f"{prefix}.streak-milestones.v1",
            partitions,
            retention_ms=30 * DAY_MS,
            contract="schemas.streaks.StreakMilestone",
        ),
        intervention_outcomes=TopicSpec(
            f"{prefix}.intervention-outcomes.v1",
            partitions,
            retention_ms=30 * DAY_MS,
            contract="schemas.interventions.InterventionOutcome",
        ),
        courses=TopicSpec(
            f"{prefix}.courses.v1",
            1,
            cleanup_policy="compact",
            retention_ms=-1,
            key="course_id",
            contract="schemas.courses.CourseCalendar",
        ),
        erasures=TopicSpec(
            f"{prefix}.erasures.v1",
            1,
            retention_ms=30 * DAY_MS,
            key="erasure_id",
            contract="schemas.privacy.ErasureDone",
        ),
        # The sinks service's work queue: the same request as on the events topic, so it names the student and
        # is kept no longer than the events topic keeps it.
        erasure_requests=TopicSpec(
            f"{prefix}.erasure-requests.v1",
            1,
            retention_ms=7 * DAY_MS,
            key="erasure_id",
            contract="schemas.privacy.ErasureRequest",
        ),
        # The newest report per erasure (the API's GET /v1/erasures/{id}); no student named, kept as an audit trail.
        erasure_reports=TopicSpec(
            f"{prefix}.erasure-reports.v1",
            1,
            cleanup_policy="compact",
            retention_ms=-1,
            key="erasure_id",
            contract="schemas.privacy.ErasureReport",
        ),
        # How each student can be reached, the newest per student; keyed and partitioned like the interventions
        # topic (by user id), so the notification process owning a partition of requests owns those contacts too.
        contacts=TopicSpec(
            f"{prefix}.contacts.v1",
            partitions,
            cleanup_policy="compact",
            retention_ms=-1,
            key="user_id",
            contract="schemas.contacts.Contact",
        ),
        # Unsubscribes and provider reports, folded into ``contacts`` by the notification service owning the student.
        contact_changes=TopicSpec(
            f"{prefix}.contact-changes.v1",
            partitions,
            retention_ms=7 * DAY_MS,
            contract="schemas.contacts.ContactChange",
        ),
        # The notification service's send ledger: the newest state per (intervention, channel), written to the
        # same partition number as the request it records, so a partition's ledger moves with its requests.
        notification_ledger=TopicSpec(
            f"{prefix}.notification-ledger.v1",
            partitions,
            cleanup_policy="compact",
            retention_ms=-1,
            key="ledger_key",
            contract="schemas.notifications.LedgerEntry",
            student_field="user_id",
        ),
        # Personalisation (PRODUCT.md §8): each student's profile, one message per student and local day.
        profiles=TopicSpec(
            f"{prefix}.profiles.v1", partitions, retention_ms=30 * DAY_MS, contract="schemas.profile.Profile"
        ),
        # Gamification (PRODUCT.md §7): the worker's awards, level-ups, unlocks and celebrations, keyed by student.
        xp_awards=TopicSpec(
            f"{prefix}.xp-awards.v2", partitions, retention_ms=30 * DAY_MS, contract="schemas.gamification.XpAwardBatch"
        ),
        level_ups=TopicSpec(
            f"{prefix}.level-ups.v1", partitions, retention_ms=30 * DAY_MS, contract="schemas.gamification.LevelUp"
        ),
        achievements=TopicSpec(
            f"{prefix}.achievements.v1",
            partitions,
            retention_ms=30 * DAY_MS,
            contract="schemas.gamification.AchievementUnlocked",
        ),
        celebrations=TopicSpec(
            f"{prefix}.celebrations.v1",
            partitions,
            retention_ms=30 * DAY_MS,
            contract="schemas.gamification.Celebration",
        ),
        # Each student's newest XP on every board they are on: what the leaderboard service rebuilds from.
        standings=TopicSpec(
            f"{prefix}.standings.v1",
            partitions,
            cleanup_policy="compact",
            retention_ms=-1,
            contract="schemas.gamification.Standing",
        ),
        leaderboard_snapshots=TopicSpec(
            f"{prefix}.leaderboard-snapshots.v1",
            1,
            retention_ms=7 * DAY_MS,
            key="board",
            contract="schemas.gamification.LeaderboardRow",
        ),
        # Weekly leagues: each student's newest result (the tier they are in now), what a restarted leaderboard
        # service reads the tiers back from; published by the leaderboard service when a week closes.
        league_results=TopicSpec(
            f"{prefix}.league-results.v1",
            partitions,
            cleanup_policy="compact",
            retention_ms=-1,
            contract="schemas.gamification.LeagueResult",
        ),
        # Experiments (PRODUCT.md §6): each time a service acts on a student's variant; keyed by student.
        exposures=TopicSpec(
            f"{prefix}.exposures.v1", partitions, retention_ms=30 * DAY_MS, contract="schemas.experiments.Exposure"
        ),
        # What became of each bandit-chosen intervention. Every worker reads the whole topic into its posteriors
        # at start and follows it: the bandit remembers the topic's retention (90 days), so it follows drift.
        bandit_outcomes=TopicSpec(
            f"{prefix}.bandit-outcomes.v1",
            partitions,
            retention_ms=90 * DAY_MS,
            contract="schemas.experiments.ArmOutcome",
            read_whole=True,
        ),
    )
