"""Local infrastructure: Kafka (KRaft) and ClickHouse on loopback, started and stopped by PID."""
