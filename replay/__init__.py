"""Replay CSV into Kafka, and simulate multi-station pipeline telemetry with labelled events."""
