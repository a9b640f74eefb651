"""Everything that talks to Kafka: topic admin, the producer library, the HTTP collector, Faust agents."""
