"""Sinks: Kafka topics persisted to ClickHouse, all following the ``BatchingSink`` contract in ``sinks.base``."""
