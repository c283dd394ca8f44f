"""The live detector service: Kafka in, incidents out, Prometheus metrics."""
