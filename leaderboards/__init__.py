"""Leaderboards (PRODUCT.md §7): every student's XP on the global and per-course boards, all-time, per UTC day and
per ISO week (UTC), held in memory by one small service that reads the compacted standings topic.

``boards`` is the pure ranking logic; ``service`` wires it to Kafka and HTTP.
"""
