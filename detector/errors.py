"""The one exception hierarchy of Centinela.

Adapters translate library errors (confluent-kafka, file system, ONNX Runtime) into these with
``raise ... from`` so callers handle a handful of named failures, not every library's own.
"""

from __future__ import annotations


class CentinelaError(Exception):
    """Root of every error Centinela raises on purpose."""


class ConfigError(CentinelaError):
    """A setting is missing or invalid; the message names the setting."""


class DataError(CentinelaError):
    """Input data (CSV, messages) cannot be used; the message says where and why."""


class BundleError(CentinelaError):
    """A model bundle is incomplete, tampered, or does not match what is expected."""


class BrokerError(CentinelaError):
    """Kafka cannot be reached or refused an operation."""
