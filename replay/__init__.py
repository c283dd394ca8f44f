"""Replay CSV into Kafka (the simulator, which writes such CSV, is the ``simulator`` package)."""
