"""The desk's Prometheus metrics (served on the API's /metrics). Labels are bounded sets, never ids or names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from processors.offers import AlreadyRedeemed, NotTheirOffer, OfferExpired
from processors.outreach import OutreachState

OUTREACH_ITEMS = Gauge("engage_outreach_items", "Outreach queue items by state (read from the store)", ["state"])
OUTREACH_OVERDUE = Gauge(
    "engage_outreach_overdue_items", "Outreach items still open or claimed past their deadline (the SLA)"
)
CLAIM_TO_RESOLVE = Histogram(
    "engage_outreach_claim_to_resolve_seconds",
    "From an item's (last) claim to its resolution",
    buckets=(60, 300, 900, 1_800, 3_600, 7_200, 14_400, 28_800, 86_400, 259_200),
)
OFFERS_ISSUED = Counter("engage_offers_issued_total", "Discount offers stored with their code")
OFFERS_REDEEMED = Counter("engage_offers_redeemed_total", "Discount offers redeemed")
REDEMPTIONS_REFUSED = Counter("engage_offer_redemptions_refused_total", "Redemptions refused, by reason", ["reason"])
REQUESTS = Counter(
    "engage_desk_requests_total",
    "Intervention requests the desk consumed, by what it did with them",
    ["action"],
)
REQUEST_ACTIONS = ("queued", "offer_issued", "duplicate", "held_out", "not_for_desk", "dead_lettered")
OUTCOMES_PUBLISHED = Counter("engage_desk_outcomes_published_total", "Outcomes moved from the outbox to Kafka")
OUTBOX_PENDING = Gauge("engage_desk_outbox_pending", "Outcomes stored but not yet acknowledged by Kafka")
API_REQUESTS = Counter("engage_desk_api_requests_total", "Desk API requests by answer", ["outcome"])
API_OUTCOMES = ("ok", "bad_request", "unauthorized", "forbidden", "not_found", "conflict", "gone", "unavailable")

# Exported at 0 from the start: rates and alert rules see every series before its first event.
for _state in OutreachState:
    OUTREACH_ITEMS.labels(_state.value)
for _action in REQUEST_ACTIONS:
    REQUESTS.labels(_action)
for _refused in (AlreadyRedeemed, NotTheirOffer, OfferExpired):
    REDEMPTIONS_REFUSED.labels(_refused.reason)
for _outcome in API_OUTCOMES:
    API_REQUESTS.labels(_outcome)
