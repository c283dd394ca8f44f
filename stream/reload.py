"""Hot model reload: a new bundle at the watched path, or SIGHUP, swaps the model between batches.

The watcher notices a new bundle by the identity of its manifest (resolved folder, inode, size,
modification time): ``detector.bundle.write_bundle`` renames a complete folder into place and a
deployment may flip a ``current -> v7`` symlink; either changes that identity. A bundle that fails
verification, or that changes the sensors or the window geometry (the live buffers depend on them,
so that needs a restart), is refused with a log line and a metric, and the old model keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from detector.bundle import MANIFEST, Bundle, load_bundle
from detector.clock import SYSTEM_CLOCK, MonotonicClock
from detector.errors import BundleError
from detector.scoring import ReconstructorFactory
from stream.metrics import DetectorMetrics

log = logging.getLogger(__name__)

Signature = tuple[str, int, int, int]
Loader = Callable[[Path], Bundle]


def bundle_signature(path: Path) -> Signature | None:
    """Identity of the bundle at ``path`` now, or None if there is no manifest to look at."""
    try:
        root = path.resolve()
        info = (root / MANIFEST).stat()
    except OSError:
        return None
    return (str(root), info.st_ino, info.st_size, info.st_mtime_ns)


def compatible(current: Bundle, candidate: Bundle) -> str | None:
    """Why ``candidate`` can't replace ``current`` without a restart, or None if it can."""
    if candidate.sensors != current.sensors:
        return f"sensors changed from {list(current.sensors)} to {list(candidate.sensors)}"
    if candidate.window_spec != current.window_spec:
        return "window geometry changed"
    return None


class BundleWatcher:
    """Decides when to reload and does it; ``poll`` runs on the service thread between batches."""

    def __init__(
        self,
        path: Path,
        loader: Loader,
        metrics: DetectorMetrics,
        *,
        watch: bool = True,
        interval_s: float = 5.0,
        monotonic: MonotonicClock = SYSTEM_CLOCK,
    ) -> None:
        self.path = path
        self._loader = loader
        self._metrics = metrics
        self._watch = watch
        self._interval_s = interval_s
        self._monotonic = monotonic.monotonic
        self._requested = False
        self._next_check = self._monotonic() + interval_s
        self._seen = bundle_signature(path)

    def request(self) -> None:
        """Ask for a reload at the next batch boundary (safe to call from a signal handler)."""
        self._requested = True

    def poll(self, current: Bundle) -> Bundle | None:
        """A verified bundle to swap in, or None (nothing new, or the new one was refused)."""
        requested, self._requested = self._requested, False
        if not requested:
            if not self._watch or self._monotonic() < self._next_check:
                return None
            self._next_check = self._monotonic() + self._interval_s
            signature = bundle_signature(self.path)
            if signature is None or signature == self._seen:
                return None
        self._seen = bundle_signature(self.path)
        try:
            candidate = self._loader(self.path)
        except BundleError as error:
            self._refuse(str(error))
            return None
        reason = compatible(current, candidate)
        if reason is not None:
            self._refuse(f"bundle {self.path}: {reason}; restart the detector to use it")
            return None
        self._metrics.model_reloads.inc()
        log.info(
            "model reloaded: %s -> %s (threshold %g)",
            current.model_version,
            candidate.model_version,
            candidate.threshold,
        )
        return candidate

    def _refuse(self, reason: str) -> None:
        self._metrics.model_reload_failures.inc()
        log.error("model reload refused, the current model keeps serving: %s", reason)


def bundle_loader(
    reconstructor_factory: ReconstructorFactory,
    expected_sensors: tuple[str, ...] | None = None,
    *,
    verify_key: bytes | None = None,
) -> Loader:
    """Loads and verifies a bundle, serving its model through ``reconstructor_factory``; with
    ``verify_key`` it must be signed with it (at start and at every reload: a refused reload keeps
    the bundle being served)."""

    def load(path: Path) -> Bundle:
        return load_bundle(
            path, expected_sensors, reconstructor_factory=reconstructor_factory, verify_key=verify_key
        )

    return load
