"""The success team's desk: the human outreach queue and discount offers (``engage desk``).

``store`` keeps items, offers and an outbox of outcomes in SQLite; ``service`` turns intervention requests into
items and offers and publishes the outbox to Kafka; ``api`` is the HTTP API the CLI and staff tools use. The
rules themselves are pure and live in ``processors.outreach`` and ``processors.offers``.
"""
