"""The leaderboard service's Prometheus metrics (on the API's /metrics). Labels are bounded sets: course boards are
summed under ``courses``, never one series per course or student."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STANDINGS = Counter(
    "engage_leaderboard_standings_total", "Standings read from the topic, by what became of them", ["outcome"]
)
STANDING_OUTCOMES = ("applied", "stale", "forgotten", "invalid")
SKIPPED = Counter(
    "engage_leaderboard_skipped_periods_total",
    "Day or week scores not put on a board: late (period no longer kept) or future (ahead of the clock)",
    ["reason"],
)
LAG = Gauge("engage_leaderboard_lag_messages", "Standings on the topic not yet applied (all partitions)")
LAG_SECONDS = Gauge(
    "engage_leaderboard_lag_seconds", "Age of the newest standing applied while there is lag (0 when caught up)"
)
STUDENTS = Gauge(
    "engage_leaderboard_students",
    "Students on boards: global, or summed over course boards; by period",
    ["board", "period"],
)
HELD = Gauge("engage_leaderboard_students_held", "Students with a standing")
COURSE_BOARDS = Gauge("engage_leaderboard_course_boards", "Courses with a board")
READY = Gauge("engage_leaderboard_ready", "1 once the boards were rebuilt from the topic and are served")
REBUILD_SECONDS = Gauge("engage_leaderboard_rebuild_seconds", "Time to read the standings topic to its end at start")
REBUILD_STANDINGS = Gauge("engage_leaderboard_rebuild_standings", "Standings read during the rebuild")
REQUEST_SECONDS = Histogram(
    "engage_leaderboard_request_seconds",
    "Leaderboard API answer time, by endpoint",
    ["endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
API_REQUESTS = Counter("engage_leaderboard_api_requests_total", "Leaderboard API requests by answer", ["outcome"])
API_OUTCOMES = ("ok", "bad_request", "unauthorized", "forbidden", "not_found", "unavailable")
SNAPSHOT_ROWS = Counter("engage_leaderboard_snapshot_rows_total", "Leaderboard rows published as snapshots")
SNAPSHOTS = Counter("engage_leaderboard_snapshots_total", "Snapshot rounds by outcome", ["outcome"])
LEAGUE_RESULTS = Counter(
    "engage_league_results_published_total", "League results published at week closes (acknowledged by Kafka)"
)
LEAGUE_PUBLISH_FAILURES = Counter(
    "engage_league_publish_failures_total", "Attempts to publish a closed week's results that Kafka did not acknowledge"
)
LEAGUE_LATE = Counter("engage_league_late_standings_total", "Standings of a week already closed (not in its league)")
LEAGUE_PLAYERS = Gauge("engage_league_players", "Students with XP in the current week (in a league group)")

for _outcome in STANDING_OUTCOMES:
    STANDINGS.labels(_outcome)
for _reason in ("late", "future"):
    SKIPPED.labels(_reason)
for _endpoint in ("top", "position", "league"):
    REQUEST_SECONDS.labels(_endpoint)
for _api in API_OUTCOMES:
    API_REQUESTS.labels(_api)
for _snap in ("ok", "failed"):
    SNAPSHOTS.labels(_snap)
