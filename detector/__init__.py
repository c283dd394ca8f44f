"""The pure core shared by the trainer and the live service.

Readings, event-time windows, the model bundle, scoring, calibration and incidents. Nothing here
imports Kafka, Prometheus or TensorFlow.
"""
