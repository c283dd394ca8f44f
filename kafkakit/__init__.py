"""The Kafka kit that ``stream`` (the detector) and ``replay`` stand on: client settings and
secrets (``config``), the start-up connection check (``check``), topic admin (``admin``), reading a
topic or a group's progress to the end (``read``) and the one mapping of Kafka errors to
``BrokerError`` (``errors``). It imports nothing of ours but ``detector.errors``."""
