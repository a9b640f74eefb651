"""Talking to Kafka: the producer every service writes through (one partitioner for every per-student topic) and
the admin helpers (topics, consumer-group positions and lag). A floor of its own, under every service that uses
Kafka (streams, sinks, notifications, desk), so none of them has to import another to send a message."""
