"""One typed settings object for the whole engine, read from ``ENGAGE_*`` environment variables.

Every process (collector, workers, sinks, CLI, tests) builds its configuration from here, so a port or a
topic prefix is changed in one place. Defaults are for a single machine on loopback.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafka_io.client import KafkaClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENGAGE_", extra="ignore")

    # --- local infrastructure (deploy/) -------------------------------------------------------------
    run_dir: Path = Field(PROJECT_ROOT / ".run", description="Runtime data: Kafka log dirs, ClickHouse data, pids")
    cache_dir: Path = Field(PROJECT_ROOT / ".cache", description="Downloaded artefacts (Kafka jars)")
    kafka_version: str = "4.0.0"
    kafka_host: str = "127.0.0.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "1g"
    kafka_bootstrap_servers: str = Field(
        "", description="comma-separated host:port of several brokers ('': the local kafka_host:kafka_port)"
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how every client talks to Kafka: TLS (SSL), SASL, or both (SASL_SSL)"
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = Field("", description="the SASL user every component authenticates as")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="its password")
    kafka_ssl_ca_file: str = Field("", description="CA certificate(s) to verify the brokers' TLS with ('': system's)")
    kafka_replication_factor: int = Field(
        1, ge=1, description="copies of each partition the components create topics and changelogs with (≤ brokers)"
    )
    kafka_min_insync_replicas: int = Field(
        1, ge=1, description="copies that must have a write before Kafka acknowledges it (≤ the replication factor)"
    )
    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 19000
    clickhouse_http_port: int = 18123
    clickhouse_database: str = "engage"
    clickhouse_user: str = Field("default", description="the ClickHouse user every component connects as")
    clickhouse_password: SecretStr = Field(
        SecretStr(""), description="its password ('': none; the local server started by `engage infra` gets it too)"
    )
    clickhouse_secure: bool = Field(False, description="TLS to ClickHouse (its secure native port)")
    clickhouse_ca_file: str | None = Field(None, description="CA certificate(s) to verify ClickHouse's TLS with")
    clickhouse_cluster: str = Field(
        "", description="render the cluster variant (Replicated + Distributed tables) ON CLUSTER this name"
    )

    # --- where the servers listen -------------------------------------------------------------------
    # Every HTTP API and /metrics endpoint binds here. The *_host settings (collector_host, worker_host,
    # dashboards_host) are where clients call a service (its URLs): 127.0.0.1 on this machine, also when the
    # servers listen on every interface.
    bind_host: str = Field(
        "127.0.0.1",
        description="the address every service listens on (APIs and /metrics); 0.0.0.0 in a container, for Prometheus",
    )

    # --- topics --------------------------------------------------------------------------------------
    topic_prefix: str = "engage"
    event_partitions: int = 4

    # --- HTTP collector ------------------------------------------------------------------------------
    collector_host: str = Field("127.0.0.1", description="where clients reach the collector; it listens on bind_host")
    collector_port: int = 18080
    collector_max_body_bytes: int = 1_048_576
    collector_rate_per_key: float = Field(
        10_000.0, description="Requests/s one API key may send (2 s of burst); more get 429 + Retry-After; 0: none"
    )
    collector_max_in_progress: int = Field(256, description="Requests handled at once; more get 503 + Retry-After")
    collector_max_queued_messages: int = Field(
        200_000, description="Messages waiting for Kafka in the collector; more requests get 503 + Retry-After"
    )
    collector_max_batch_events: int = 500
    collector_max_future_skew_seconds: int = 300
    collector_max_event_age_days: int = 400
    collector_cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    # "app_id:key" pairs. Keys are hashed at load time and never kept or logged in plain text.
    write_keys: list[str] = Field(default_factory=lambda: ["demo-web:wk_demo_web", "demo-mobile:wk_demo_mobile"])
    server_keys: list[str] = Field(default_factory=lambda: ["demo-backend:sk_demo_backend"])
    admin_keys: list[str] = Field(default_factory=lambda: ["demo-admin:ak_demo_admin"])
    # Keys made with `engage keys create` (hashes only; rotated, revoked, expiring). The collector and the
    # workers re-read the file when it changes, looking at most every key_registry_check_seconds.
    key_registry_path: Path | None = Field(None, description="the API key registry (JSON); default run_dir/keys.json")
    key_registry_check_seconds: float = Field(1.0, description="how often services look for a changed key registry")

    # --- stream processors (Faust workers) -----------------------------------------------------------
    worker_host: str = Field(
        "127.0.0.1", description="where this worker is reached (its URL, forwarded requests); it listens on bind_host"
    )
    worker_web_port: int = 16066
    worker_store: str = Field("rocksdb://", description="Faust table store: rocksdb:// (default) or memory://")
    worker_clock: Literal["wall", "event"] = Field(
        "wall", description="'event': 'now' is the newest event time seen (replays of history, e.g. OULAD)"
    )
    event_clock_idle_seconds: float = Field(
        5.0, description="event clock: a partition with no new events for this long stops holding the clock back"
    )
    worker_take_max: int = Field(500, description="most messages in one gather (the core folds a gather at once)")
    worker_take_within_seconds: float = Field(
        0.05, description="a gather of a live stream ends this long after the previous one (Faust's take 'within')"
    )
    # streams.worker.core.gathering: why a stream that is behind gathers on
    worker_take_behind_seconds: float = Field(
        1.0, description="messages older than this: the stream is behind, and a gather goes on while more arrive"
    )
    worker_take_longest_seconds: float = Field(1.0, description="a gather of a stream that is behind ends after this")
    worker_fetch_max_wait_ms: int = Field(
        100, description="longest the broker may hold a fetch request of the worker (Faust's own: 1,500)"
    )
    # Each commit writes every record changed since the last one to the table and waits for Kafka: at 1 s that was
    # ~15% of a drain (3 s: 59-61k -> 65-75k events/s). Longer means more re-folded after a crash, never less safe.
    worker_commit_interval_seconds: float = Field(
        3.0, description="how often the worker commits offsets, writing its changed records first (Faust's own: 2.8)"
    )
    # Messages Faust handed to the stream that never reached a batch (a fetch race) are read directly after this
    # long (streams.worker.gaps.StalledTails). A message merely queued is folded well within it; reading one twice
    # is harmless, only wasted work.
    worker_lost_message_grace_seconds: float = Field(
        10.0, description="how long a message handed to the worker's stream may stay unfolded before it is read again"
    )
    # The group leader assigns partitions only once every topic of the group is in its Kafka metadata
    # (faust_internals.assign_only_with_every_topic_known); well within Faust's 60 s rebalance timeout.
    worker_assign_wait_seconds: float = Field(
        30.0, description="how long the group leader waits for a topic missing from its metadata, then restarts"
    )
    # Backpressure (streams.worker.core.backpressure): the events path and the timers wait before writing more while
    # this many changelog writes and outputs are unacknowledged; a commit waits for at most about this many.
    worker_max_unacknowledged_writes: int = Field(
        2_000, description="writes to Kafka the worker may have unacknowledged before it stops taking more"
    )
    # Faust's producer (the table's changelog) sends batches of at most 16 KB by default: 2-3 records of ~5 KB
    # per partition per request (measured alone: 5,900 records/s; with 512 KB batches and 5 ms linger 16,600/s).
    worker_changelog_batch_bytes: int = Field(524_288, description="largest batch of changelog writes per partition")
    worker_changelog_linger_ms: int = Field(5, description="how long changelog writes wait to fill a batch")
    worker_record_cache_size: int = Field(
        10_000, description="student records a worker keeps decoded in memory between commits (beyond the changed)"
    )
    # 0.3 s cost event-to-risk p95 ~400 ms at any load (a batch inside the window waits for it); 0.1 s keeps p99
    # under 250 ms at 5,000 events/s and throughput the same (a drain re-scores each student once per gather anyway).
    score_debounce_seconds: float = Field(0.1, description="re-score one student at most this often on events")
    rescore_after_seconds: float = Field(86_400.0, description="silent students are re-scored at least this often")
    silence_tick_seconds: float = 30.0
    dormant_rescore_after_seconds: float = Field(
        7 * 86_400.0, description="students with no current course are re-scored this often while silent"
    )
    policy_path: Path | None = Field(None, description="intervention policy JSON; default deploy/policy/default.json")
    broker_session_timeout_seconds: float = 10.0
    worker_api_rate_per_key: float = Field(
        2_000.0, description="Engagement API requests/s one key may send (2 s of burst); more get 429; 0: none"
    )
    worker_api_max_in_progress: int = Field(
        64, description="Engagement API requests a worker handles at once; more get 503 + Retry-After"
    )

    # --- models --------------------------------------------------------------------------------------
    model_registry_dir: Path | None = Field(
        None, description="trained models and the promoted pointer; default run_dir/models"
    )
    model_check_seconds: float = Field(5.0, description="how often workers look for a newly promoted model")
    # --- gamification (processors/gamification) ---
    gamification: bool = Field(True, description="XP, levels, achievements and standings in the worker's fold")
    gamification_rules_path: Path | None = Field(
        None, description="gamification rules JSON; default deploy/policy/gamification.json"
    )
    gamification_check_seconds: float = Field(5.0, description="how often workers look for a changed rules file")
    # --- experiments and the bandit (processors/experiments): what chooses an intervention's type and send time ---
    experiments: bool = Field(True, description="workers apply the running experiments and the bandit to decisions")
    experiments_path: Path | None = Field(
        None, description="experiments JSON (and the global holdout); default deploy/policy/experiments.json"
    )
    bandit: bool = Field(True, description="Thompson sampling chooses the type for students no experiment holds")
    bandit_seed: int = Field(0, description="seeds each decision's draws (with its id): a replay picks the same type")
    # --- badges (processors/gamification/badges.py, GET /v1/users/{id}/badges): Open Badges 3.0, unsigned ---
    badges_issuer_id: str = Field(
        "https://engage.example.org/issuer",
        pattern=r"^https?://\S+$",
        description="the issuer Profile's id (an http(s) URL) in exported badges; achievement ids are built under it",
    )
    badges_issuer_name: str = Field("Student Engagement Engine", min_length=1, description="the issuer's name")
    badges_identity_salt: str = Field(
        "engage-badges-v1",
        min_length=1,
        description="salt of the hashed student identity in badges (published in each badge, as OB 3.0 has it)",
    )

    # --- sinks ---------------------------------------------------------------------------------------
    # Each sink has its own batch size and interval (``sinks.service.BATCHING``: ClickHouse wants 10k-100k
    # rows per insert and about one insert per second per table); these override every sink at once.
    sink_batch_rows: int | None = None
    sink_batch_seconds: float | None = None
    sink_metrics_port: int = Field(16067, description="`engage sink` serves /metrics on bind_host here (0: not at all)")

    # --- notification channels (notifications/channels/) --------------------------------------------------
    # Every provider's address is a setting, so tests and the demo point them at servers on 127.0.0.1. A channel
    # whose credentials are unset is not built (push without a project and a token, SMS without an account).
    smtp_host: str = Field("127.0.0.1", description="SMTP server e-mail is handed to")
    smtp_port: int = Field(11025, description="its port (25/587 for a real relay, 465 with smtp_use_tls)")
    smtp_username: str | None = Field(None, description="SMTP AUTH user; unset: no authentication")
    smtp_password: SecretStr | None = Field(None, description="SMTP AUTH password")
    smtp_use_tls: bool = Field(False, description="implicit TLS from the first byte (port 465)")
    smtp_start_tls: bool = Field(False, description="upgrade with STARTTLS before sending (port 587)")
    smtp_local_hostname: str = Field(
        "localhost", description="the name given in EHLO (set, so that no DNS lookup of our own name is made)"
    )
    smtp_timeout_seconds: float = Field(10.0, description="connect and each SMTP command")
    email_from: str = Field("Engage <engage@localhost>", description="From: of every e-mail")
    email_unsubscribe_mailbox: str = Field(
        "unsubscribe@localhost", description="the mailto: half of List-Unsubscribe (its subject names the message)"
    )
    email_message_id_domain: str = Field(
        "", description="right-hand side of Message-IDs; empty: the domain of email_from"
    )
    fcm_base_url: str = Field("https://fcm.googleapis.com", description="FCM HTTP v1 API root")
    fcm_project_id: str = Field("", description="Firebase project id; empty: no push channel")
    fcm_access_token: SecretStr | None = Field(
        None, description="OAuth2 access token for FCM (a token provider can be given in code instead)"
    )
    fcm_timeout_seconds: float = Field(10.0, description="one FCM request, connect to answer")
    twilio_base_url: str = Field("https://api.twilio.com", description="Twilio REST API root")
    twilio_account_sid: str = Field("", description="Twilio account (AC...); empty: no SMS channel")
    twilio_auth_token: SecretStr | None = Field(None, description="Twilio auth token (HTTP basic auth password)")
    twilio_from_number: str = Field("", description="E.164 sender number; or use twilio_messaging_service_sid")
    twilio_messaging_service_sid: str = Field("", description="Messaging Service (MG...) used instead of From")
    twilio_timeout_seconds: float = Field(10.0, description="one Twilio request, connect to answer")
    inbox_path: Path | None = Field(None, description="the in-app inbox (SQLite); default run_dir/inbox.sqlite3")
    inbox_max_items: int = Field(100, ge=1, description="in-app messages kept per student (the oldest go first)")
    notify_retry_attempts: int = Field(4, ge=1, description="sends tried per channel, the first included")
    notify_retry_initial_seconds: float = Field(1.0, gt=0, description="first backoff wait (then doubled)")
    notify_retry_max_seconds: float = Field(30.0, gt=0, description="cap on one backoff wait")
    notify_retry_jitter_seconds: float = Field(1.0, ge=0, description="random extra on each wait (0 to this)")
    notify_retry_budget_seconds: float = Field(
        120.0, gt=0, description="total waiting per channel; a Retry-After beyond it ends the retries"
    )
    notify_breaker_failures: int = Field(
        5, ge=1, description="consecutive provider failures that open its circuit breaker"
    )
    notify_breaker_cooldown_seconds: float = Field(
        30.0, gt=0, description="how long an open breaker refuses before one probe is let through"
    )

    # --- success desk (desk/): the human outreach queue and discount offers ----------------------------------
    desk_port: int = Field(16071, description="`engage desk serve`: its API and /metrics on bind_host here")
    desk_store_path: Path | None = Field(None, description="the desk's SQLite file; default run_dir/desk.sqlite3")
    desk_key: SecretStr | None = Field(
        None, description="server key `engage desk` commands present to the API; default the first of server_keys"
    )
    offer_percent_off: int = Field(20, ge=1, le=100, description="what every discount offer gives")
    offer_valid_days: float = Field(14.0, gt=0, description="an offer code expires this long after the decision")
    # Codes are HMAC(secret, intervention id): the notification service and the desk must share it, and anyone who
    # has it can compute codes. Set ENGAGE_OFFER_CODE_SECRET outside development (the desk warns when it is not).
    offer_code_secret: SecretStr = Field(
        SecretStr("engage-dev-offer-secret"), description="key offer codes are derived with (shared with notify)"
    )

    @property
    def desk_store(self) -> Path:
        return self.desk_store_path or self.run_dir / "desk.sqlite3"

    @property
    def offer_secret(self) -> bytes:
        return self.offer_code_secret.get_secret_value().encode()

    # --- leaderboards (leaderboards/, `engage leaderboards serve`): ranks from the compacted standings topic --------
    leaderboard_port: int = Field(16074, description="`engage leaderboards serve`: its API and /metrics on bind_host")
    leaderboard_snapshot_seconds: float = Field(
        300.0, ge=0, description="publish the top of each current board to leaderboard_snapshots this often (0: never)"
    )
    leaderboard_snapshot_top: int = Field(100, ge=1, le=10_000, description="rows per board in a snapshot")
    leaderboard_default_limit: int = Field(100, ge=1, description="rows a top-N request gets without ?limit=")
    leaderboard_max_limit: int = Field(1_000, ge=1, description="largest ?limit= a top-N request may ask for")
    leaderboard_max_neighbours: int = Field(50, ge=0, description="largest ?neighbours= a position request may ask")
    leaderboard_apply_batch: int = Field(
        32, ge=1, description="standings applied per hold of the boards' lock (readers wait at most one batch)"
    )
    leaderboard_url: str = Field(
        "", description="where workers ask for a student's ranks (the engagement API); '' = 127.0.0.1:leaderboard_port"
    )
    leaderboard_timeout_seconds: float = Field(0.5, gt=0, description="the engagement API waits this long for ranks")
    # Weekly leagues (processors/gamification/leagues.py), held and closed by the leaderboard service.
    league_group_size: int = Field(30, ge=2, description="students per league group, about (groups split evenly)")
    league_promote: int = Field(7, ge=0, description="the top this many of a full group go up a tier")
    league_demote: int = Field(5, ge=0, description="the bottom this many of a full group go down a tier")
    league_close_grace_seconds: float = Field(
        600.0, ge=0, description="a week closes this long after Monday 00:00 UTC (room for late standings)"
    )

    @model_validator(mode="after")
    def _leagues_leave_someone_in_the_middle(self) -> Settings:
        if self.league_promote + self.league_demote >= self.league_group_size:
            raise ValueError(
                f"league_promote ({self.league_promote}) + league_demote ({self.league_demote}) must be less than "
                f"league_group_size ({self.league_group_size}): a full group would move every student"
            )
        return self

    @model_validator(mode="after")
    def _insync_within_replicas(self) -> Settings:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(
                f"kafka_min_insync_replicas ({self.kafka_min_insync_replicas}) must be at most "
                f"kafka_replication_factor ({self.kafka_replication_factor}): no write could ever be acknowledged"
            )
        return self

    @property
    def leaderboards_base(self) -> str:
        return self.leaderboard_url.rstrip("/") or f"http://127.0.0.1:{self.leaderboard_port}"

    # --- tracking back (notifications/tracking/, streams/collector/tracking.py) -----------------------------
    # Opens, clicks, unsubscribes and provider delivery reports come back through the collector's /t/... and
    # /v1/webhooks/... endpoints, with encrypted tokens (no student id in a URL in clear).
    tracking_public_url: str = Field(
        "", description="the collector's public base URL for tracking links; empty: http://collector_host:port"
    )
    tracking_secret: SecretStr | None = Field(
        None, description="secret tracking tokens are made with (16+ bytes); unset: a random one in run_dir"
    )
    tracking_retired_secrets: SecretStr | None = Field(
        None, description="older secrets, comma-separated, still accepted after a rotation"
    )
    tracking_action_url: str = Field(
        "https://app.example/continue?utm_source=engage&utm_medium={channel}&utm_campaign={intervention_type}",
        description="where a click on a message leads; {channel} and {intervention_type} are filled in",
    )
    tracking_preferences_url: str = Field(
        "https://app.example/settings/notifications", description="the platform's notification settings page"
    )
    tracking_redirect_hosts: list[str] = Field(
        default_factory=list, description="if set, clicks are only ever redirected to these hosts"
    )
    tracking_link_days: int = Field(60, ge=1, description="open and click links work this long after the send")
    tracking_unsubscribe_days: int = Field(400, ge=30, description="unsubscribe links work this long")
    tracking_status_days: int = Field(7, ge=1, description="Twilio status callbacks are accepted this long")
    tracking_store_wait_seconds: float = Field(
        2.0, gt=0, description="an open or click waits this long for Kafka before the student is answered anyway"
    )
    # --- notification service (notifications/service.py, `engage notify`) ------------------------------------
    notify_clock: Literal["wall", "request"] = Field(
        "wall",
        description="'request': each request is judged (deadline, 24 h cap) at its own instant: replays of history "
        "(the demo, OULAD), whose decisions carry the event clock's time, like worker_clock=event",
    )
    notify_metrics_port: int = Field(
        16068, description="`engage notify` serves /metrics on bind_host here (0: not at all)"
    )
    notify_instance_id: str = Field(
        "", description="this process's static group member id (a restart takes its partitions back at once); '' none"
    )
    notify_max_in_flight: int = Field(
        16, ge=1, description="requests a process sends at once; bounds the resends after a crash (see ledger.py)"
    )
    notify_max_per_student_24h: int = Field(
        3, ge=0, description="delivered notifications per student per rolling 24 h, across requests (0: no cap)"
    )
    notify_digest_window_seconds: float = Field(
        900.0, ge=0, description="low/medium requests of one student due within this of each other go as one digest"
    )
    notify_platform_url: str = Field(
        "http://127.0.0.1:3000", description="the platform the untracked links point to (no link tracking set up)"
    )
    notify_templates_dir: Path | None = Field(None, description="message templates; default deploy/templates")
    notify_poll_seconds: float = Field(0.2, gt=0, description="longest wait for requests before due work is checked")

    # --- dashboards (dashboards/, `engage dashboards serve`): the admin pages and the student page ----------------
    dashboards_host: str = Field(
        "127.0.0.1",
        description="where the pages are reached (their URL); `engage dashboards serve` listens on bind_host",
    )
    dashboards_port: int = Field(16080, description="`engage dashboards serve`: the admin and student pages")
    dashboards_secret_path: Path | None = Field(
        None, description="32 random bytes signing session cookies and student links; default run_dir/dashboards.key"
    )
    dashboards_session_hours: float = Field(12.0, gt=0, description="an admin login lasts this long")
    student_link_hours: float = Field(24.0, gt=0, description="a student's signed link works this long")
    dashboards_base: str = Field("", description="the pages' public base URL; '' = http://dashboards_host:port")
    dashboards_poll_seconds: float = Field(
        5.0, gt=0, le=5.0, description="the live overview asks ClickHouse at most this often (shared by all viewers)"
    )
    dashboards_worker_url: str = Field("", description="the engagement API the pages call; '' = worker_host:port")
    dashboards_desk_url: str = Field("", description="the desk API the pages call; '' = 127.0.0.1:desk_port")
    dashboards_timeout_seconds: float = Field(5.0, gt=0, description="one call to the worker or desk API")
    dashboards_upstream_timeout_seconds: float = Field(
        2.0, gt=0, description="the student page waits this long for the engagement API and the leaderboards"
    )

    @property
    def dashboards_secret(self) -> Path:
        return self.dashboards_secret_path or self.run_dir / "dashboards.key"

    @property
    def worker_base(self) -> str:
        """The engagement API of the worker on this host (any worker answers for any student)."""
        return f"http://{self.worker_host}:{self.worker_web_port}"

    @property
    def dashboards_url(self) -> str:
        return self.dashboards_base.rstrip("/") or f"http://{self.dashboards_host}:{self.dashboards_port}"

    @property
    def model_registry(self) -> Path:
        return self.model_registry_dir or self.run_dir / "models"

    @property
    def key_registry(self) -> Path:
        return self.key_registry_path or self.run_dir / "keys.json"

    @property
    def inbox(self) -> Path:
        return self.inbox_path or self.run_dir / "inbox.sqlite3"

    @property
    def kafka_replication(self) -> tuple[int, int]:
        """(replication factor, min.insync.replicas) for the topics the components create
        (``kafka_io.admin.Replication(*settings.kafka_replication)``)."""
        return self.kafka_replication_factor, self.kafka_min_insync_replicas

    @property
    def kafka(self) -> KafkaClient:
        """Where and how every client reaches Kafka: ``kafka_bootstrap_servers`` when set (several brokers), else
        the local broker's ``kafka_host``:``kafka_port``; with the TLS and SASL settings (``kafka_io.client``)."""
        return KafkaClient(
            self.kafka_bootstrap_servers or f"{self.kafka_host}:{self.kafka_port}",
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password.get_secret_value(),
            ca_file=self.kafka_ssl_ca_file,
        )


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ENGAGE_* variables, to start a child process (collector, worker) with the same config."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue  # unset: the child falls back to the default, which is None for these fields
        secret = getattr(settings, name)
        if isinstance(secret, SecretStr):
            value = secret.get_secret_value()  # the JSON form is a mask ("**********"), not the secret
        env[f"ENGAGE_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own ``Settings`` and pass them explicitly)."""
    return Settings()
