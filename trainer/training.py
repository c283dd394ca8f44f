"""Training the autoencoder on normal windows, deterministically."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trainer.model import FitConfig, ModelConfig, build_autoencoder

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class TrainedModel:
    model: Any
    history: dict[str, list[float]]
    epochs_run: int
    best_epoch: int
    seconds: float

    def reconstruct(self, x: npt.NDArray[np.float32], batch_size: int = 1024) -> npt.NDArray[np.float32]:
        if not len(x):
            return np.empty_like(x)
        # Calling the model directly on big batches is several times faster than predict() here.
        parts = [
            np.asarray(self.model(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)


def early_stopping_holdout(n_windows: int, validation_split: float) -> slice:
    """The windows ``model.fit(validation_split=...)`` holds out: Keras keeps the last ones, unshuffled."""
    if validation_split <= 0:
        return slice(n_windows, n_windows)
    return slice(math.floor(n_windows * (1.0 - validation_split)), n_windows)


def make_deterministic(seed: int) -> None:
    """Same seed, same numbers: seeded Python/NumPy/TF RNGs and deterministic TF kernels."""
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def train_autoencoder(
    x_normal: npt.NDArray[np.float32],
    model_config: ModelConfig,
    fit_config: FitConfig,
    on_epoch: EpochCallback | None = None,
) -> TrainedModel:
    """Fit on normal windows only, holding out the last ``validation_split`` for early stopping.

    The held-out part is the chronologically last slice (Keras takes it before shuffling), so early
    stopping judges the model on later data than it learned from.
    """
    import keras

    make_deterministic(fit_config.seed)
    model = build_autoencoder(x_normal.shape[1], x_normal.shape[2], model_config)
    monitor = "val_loss" if fit_config.validation_split > 0 else "loss"
    callbacks: list[Any] = [
        keras.callbacks.EarlyStopping(
            monitor=monitor, patience=fit_config.patience, restore_best_weights=True, min_delta=1e-5
        )
    ]
    if on_epoch is not None:
        total = fit_config.epochs
        report = on_epoch

        class _Progress(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                report(epoch + 1, total, {k: float(v) for k, v in (logs or {}).items()})

        callbacks.append(_Progress())
    started = time.perf_counter()
    fitted = model.fit(
        x_normal,
        x_normal,
        batch_size=fit_config.batch_size,
        epochs=fit_config.epochs,
        validation_split=fit_config.validation_split,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    losses = history.get(monitor, [])
    best_epoch = int(np.argmin(losses)) + 1 if losses else 0
    log.debug("trained %d epochs in %.1f s, best %d", len(losses), seconds, best_epoch)
    return TrainedModel(model, history, len(losses), best_epoch, seconds)
