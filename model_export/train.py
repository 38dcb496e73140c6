"""Fitting with early stopping, and evaluation on the held-out test split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from model_export.options import ClassWeighting


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 32
    patience: int = 2
    class_weighting: ClassWeighting = "none"
    verbose: int = 2
    lr_decay: float = 1.0


@dataclass(frozen=True)
class TrainResult:
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    seconds: float


def class_weights(y: np.ndarray, n_classes: int, weighting: ClassWeighting) -> dict[int, float] | None:
    """``balanced``: n / (k * count) per class, so a rare class weighs as much in the loss."""
    if weighting == "none":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(float)
    return {i: float(len(y) / (n_classes * c)) for i, c in enumerate(counts) if c > 0}


def fit(
    model: keras.Model,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
) -> TrainResult:
    """Train until validation loss stops improving; the best epoch's weights are kept."""
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.patience, restore_best_weights=True
    )
    callbacks: list[keras.callbacks.Callback] = [stop]
    if config.lr_decay != 1.0:
        start = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch: start * config.lr_decay**epoch))
    n_classes = int(model.output_shape[-1])
    started = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=config.epochs,
        batch_size=config.batch_size,
        class_weight=class_weights(y_train, n_classes, config.class_weighting),
        callbacks=callbacks,
        shuffle=True,
        verbose=config.verbose,
    )
    seconds = time.perf_counter() - started
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    val_loss = hist["val_loss"]
    return TrainResult(hist, int(np.argmin(val_loss)) + 1, len(val_loss), seconds)


def evaluate(probs: np.ndarray, y_true: np.ndarray, label_names: list[str]) -> dict[str, Any]:
    """Loss, accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    labels = list(range(len(label_names)))
    y_pred = probs.argmax(axis=1)
    probs64 = probs.astype(np.float64)  # float32 softmax rows miss 1.0 by ~1e-7
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "rows": len(y_true),
        "loss": float(log_loss(y_true, probs64 / probs64.sum(axis=1, keepdims=True), labels=labels)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }
