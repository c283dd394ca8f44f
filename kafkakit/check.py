"""A start-up check of the Kafka connection: fail in seconds with the real reason, never hang.

librdkafka retries a refused login or a failed TLS handshake for ever and a metadata request then
only says "Broker transport failure" after its timeout. This asks for metadata in short slices and
reads the client's error callback in between: a refused password, an untrusted certificate or a
listener that wants other credentials ends the check at once with a ``BrokerError`` that says so.
Both ``centinela detect`` and ``centinela replay`` run it before their real clients start. The
detector passes ``give_up=False``: a cluster that merely does not answer yet (compose starting it
alongside) is left to the service's outage handling (``broker_outage_limit_s``), as before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from detector.errors import BrokerError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 15.0
_SLICE_S = 0.25


def _diagnosis(error: Any, config: Mapping[str, Any]) -> str | None:
    """A clear sentence for an error that retrying cannot fix, else None."""
    from confluent_kafka import KafkaError

    code, text = error.code(), error.str()
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    if code == KafkaError._AUTHENTICATION:
        who = config.get("sasl.username", "(no user)")
        mechanism = config.get("sasl.mechanism", "GSSAPI")
        return f"Kafka refused the credentials of user {who!r} ({mechanism}): {text}"
    if code == KafkaError._SSL or "certificate verify failed" in text:
        return (
            f"the TLS handshake failed: {text}. Check kafka.ssl_ca_location (the CA that signed the "
            "broker's certificate) and that the bootstrap host is named in that certificate"
        )
    if "alert bad certificate" in text or "certificate required" in text:
        return f"the broker refused this client's TLS certificate (mutual TLS): {text}"
    if error.fatal():
        return f"fatal Kafka client error ({protocol}): {text}"
    return None


def check_connection(
    config: Mapping[str, Any],
    timeout_s: float = DEFAULT_TIMEOUT_S,
    *,
    give_up: bool = True,
    stop: threading.Event | None = None,
) -> int:
    """One metadata request with ``config`` (librdkafka properties); returns the broker count.

    Raises ``BrokerError`` at once on a refused login, an untrusted or refused certificate. After
    ``timeout_s`` without an answer: raises naming the last error seen (never the password), or with
    ``give_up=False`` logs a warning and returns 0.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    settings = {
        key: value for key, value in config.items() if key not in ("error_cb", "logger", "on_delivery")
    }
    client_config: dict[str, Any] = {**settings, "error_cb": errors.append, "log_level": 0}
    admin = AdminClient(client_config)
    bootstrap = settings.get("bootstrap.servers", "?")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return len(admin.list_topics(timeout=_SLICE_S).brokers)
        except KafkaException:
            pass
        admin.poll(0)  # runs error_cb for what happened meanwhile
        for error in errors:
            reason = _diagnosis(error, settings)
            if reason is not None:
                raise BrokerError(f"cannot connect to Kafka at {bootstrap}: {reason}")
        if stop is not None and stop.is_set():
            return 0  # SIGTERM meanwhile: the caller stops
        if time.monotonic() >= deadline:
            seen = [e.str() for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
            hint = ""
            if not seen and str(settings.get("security.protocol", "PLAINTEXT")).upper() != "SASL_SSL":
                # A SASL listener closes a connection that does not start with SASL: nothing else is said.
                hint = "; if the listener wants SASL, set kafka.security_protocol=SASL_SSL and credentials"
            last = seen[-1] if seen else "no answer"
            message = f"cannot connect to Kafka at {bootstrap} within {timeout_s:g} s: {last}{hint}"
            if give_up:
                raise BrokerError(message)
            log.warning("%s; starting anyway, waiting for it", message)
            return 0
