from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from detector.bundle import Bundle, load_bundle
from detector.clock import ManualClock
from devtools.stand_ins import build_linear_bundle, linear_reconstructors
from stream.memory import MemoryBroker
from stream.metrics import DetectorMetrics
from stream.service import DetectorService
from stream.settings import Settings

T0_MS = 1_750_000_000_000


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CENTINELA_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)


@pytest.fixture
def bundle_path(tmp_path: Path) -> Path:
    return build_linear_bundle(tmp_path / "bundle", factor=0.5, threshold=1.0, stations=("EST-01", "EST-02"))


@pytest.fixture
def bundle(bundle_path: Path) -> Bundle:
    # The numpy twin of the bundle's linear model: the service's tests need no ONNX Runtime.
    return load_bundle(bundle_path, reconstructor_factory=linear_reconstructors(0.5))


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {"instance_id": "unit", "idle_timeout_s": 1e9, "metrics_enabled": False}
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock.at_unix(T0_MS / 1000)


ServiceFactory = Callable[..., DetectorService]


@pytest.fixture
def make_service(bundle: Bundle, clock: ManualClock) -> ServiceFactory:
    def make(broker: MemoryBroker, **overrides: object) -> DetectorService:
        service = DetectorService(
            settings(**overrides), broker, bundle, DetectorMetrics(CollectorRegistry()), clock=clock
        )
        broker.start(service, int(service.rebuild_horizon().total_seconds() * 1000))
        return service

    return make


def drain(service: DetectorService, limit: int = 10_000) -> None:
    for _ in range(limit):
        if not service.step():
            return
    raise AssertionError("the service never ran out of messages")
