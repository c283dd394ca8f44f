"""The pure core shared by the trainer and the live service.

Readings, event-time windows, the model bundle, scoring, calibration and incidents, and the
``engine`` that turns a batch of readings into the live service's work and outputs. Nothing here
imports Kafka, Prometheus or TensorFlow.
"""
