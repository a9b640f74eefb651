"""The worker's Prometheus metrics. Labels are bounded sets (event types, tiers, outcomes): never a user id."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter(
    "engage_worker_events_processed_total", "Behaviour events folded into user state", ["event_type"]
)
REDELIVERED_MESSAGES = Counter(
    "engage_worker_redelivered_messages_total",
    "Messages skipped because the record had folded them already (re-delivered after a crash or rebalance)",
)
MESSAGES_REFETCHED = Counter(
    "engage_worker_messages_refetched_total",
    "Messages the consumer skipped (their offsets missing before a batch), read directly and folded",
)
OWED_RESTORED = Counter(
    "engage_worker_owed_rescores_restored_total",
    "Debounced re-scores found owed in restored records (their previous owner stopped before running them)",
)
OUTPUTS_RESENT = Counter(
    "engage_worker_outputs_resent_total",
    "Outputs of not yet committed batches sent again after a restore (their first send may not have reached Kafka)",
)
REBALANCES_REQUESTED = Counter(
    "engage_worker_rebalances_requested_total",
    "Rebalances this worker asked for because the group held no partition of the events topic",
)
COMMITS_UNSTUCK = Counter(
    "engage_worker_commits_unstuck_total",
    "Partitions whose offsets Faust had stopped committing after a failed commit, marked done again",
)
DUPLICATE_EVENTS = Counter("engage_worker_duplicate_events_total", "Events ignored as repeats of a seen event id")
MESSAGES_PROCESSED = Counter("engage_worker_messages_processed_total", "Kafka messages (per-user batches) processed")
GATHER_SECONDS = Counter(
    "engage_worker_gather_seconds_total", "Seconds spent folding gathers (its rate: how busy the events path is)"
)
GATHER_CPU_SECONDS = Counter(
    "engage_worker_gather_cpu_seconds_total", "CPU seconds the events path's thread spent folding gathers"
)
GATHER_MESSAGES = Histogram(
    "engage_worker_gather_messages",
    "Messages per gather folded at once (a backlog should drain in full gathers: streams.worker.core.gathering)",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500),
)
EVENT_TO_RISK_SECONDS = Histogram(
    "engage_event_to_risk_seconds",
    "From the engine receiving an event to the risk update it caused being sent",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
LAG_SECONDS = Gauge("engage_worker_consumer_lag_seconds", "Age of the newest Kafka message processed (wall clock)")
RISK_UPDATES = Counter("engage_risk_updates_total", "Risk updates emitted", ["trigger", "tier"])
RISK_SCORES = Histogram(
    "engage_risk_score",
    "Risk scores (0-100) of the risk updates emitted, by horizon: the score distribution",
    ["horizon"],
    buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
)
USERS_BY_TIER = Gauge("engage_users_by_tier", "Students on this worker by their current risk tier", ["tier"])
INTERVENTIONS = Counter(
    "engage_intervention_requests_total",
    "Intervention policy decisions by intervention type and outcome",
    ["intervention_type", "outcome"],
)
STREAK_MILESTONES = Counter("engage_streak_milestones_total", "Streak milestones reached", ["milestone_days"])
XP_AWARDED = Counter("engage_xp_awarded_total", "XP awarded, by rule", ["rule"])
LEVEL_UPS = Counter("engage_level_ups_total", "Level-ups")
ACHIEVEMENTS = Counter("engage_achievements_unlocked_total", "Achievements unlocked", ["achievement"])
RULES_RELOADS = Counter(
    "engage_gamification_rules_reloads_total", "Gamification rules files read after a change, by outcome", ["outcome"]
)
RULES_VERSION = Gauge("engage_gamification_rules_version", "The version of the gamification rules in force")
CACHED_RECORDS = Gauge(
    "engage_worker_cached_records", "Student records held decoded in memory (worker_record_cache_size bounds them)"
)
TABLE_USERS = Gauge("engage_worker_table_users", "Students in this worker's local state (counted by the silence pass)")
REFUSED_BATCHES = Counter(
    "engage_worker_refused_batches_total",
    "Events messages, or students' batches in one, the worker could not read and sent to the dead-letter topic",
)
REJECTED_EVENTS = Counter(
    "engage_worker_rejected_events_total", "Events the processors could not place (dead-lettered)"
)
ERASURES = Counter(
    "engage_privacy_erasures_total", "Students erased from this worker's state, by whether it knew them", ["state"]
)
BACKPRESSURE_SECONDS = Counter(
    "engage_worker_backpressure_seconds_total",
    "Time the worker waited for Kafka to acknowledge its writes before taking more (streams.worker.core.backpressure)",
)
UNACKNOWLEDGED_WRITES = Gauge(
    "engage_worker_unacknowledged_writes",
    "Changelog writes and outputs sent to Kafka and not acknowledged yet, when last waited for",
)
PROFILES = Counter(
    "engage_worker_profiles_total",
    "Daily personalisation profiles sent (one per student and local day, on their first re-score that day)",
)
EXPOSURES = Counter(
    "engage_worker_exposures_total",
    "Experiment exposures sent: decisions an experiment's variant shaped (type or send time), by experiment, variant",
    ["experiment", "variant"],
)
ARM_WINDOWS = Counter(
    "engage_worker_bandit_windows_total",
    "Bandit-chosen interventions whose 7-day window closed, by arm and result (returned, not_returned)",
    ["arm", "result"],
)
BANDIT_OUTCOMES = Counter(
    "engage_worker_bandit_outcomes_total",
    "Bandit outcomes read by this worker's learner: learned, duplicate (counted already), refused (dead-lettered)",
    ["result"],
)
BANDIT_CONTEXTS = Gauge("engage_worker_bandit_contexts", "Contexts (tier, tier/profile) the bandit's posteriors hold")
