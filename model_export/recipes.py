"""The architectures and the recipe (hyperparameters) each is trained with by default.

Every recipe was chosen on the validation split (docs/model.md lists what was tried and
its validation figures); the test split played no part. Kept free of TensorFlow so that
``--help`` and option checking stay fast.
"""

from __future__ import annotations

from typing import Any, Literal

Arch = Literal["lstm", "bilstm", "cnn", "transformer"]
ARCHITECTURES: tuple[Arch, ...] = ("lstm", "bilstm", "cnn", "transformer")
RECURRENT: tuple[Arch, ...] = ("lstm", "bilstm")
DEFAULT_ARCH: Arch = "cnn"

_COMMON: dict[str, Any] = {
    "ensemble": 1,
    "embedding_dim": 128,
    "embedding_dropout": 0.0,
    "dropout": 0.5,
    "learning_rate": 3e-4,
    "lr_decay": 1.0,
    "lstm_units": 128,
    "filters": 100,
    "kernel_sizes": (3, 4, 5),
    "heads": 4,
    "blocks": 2,
    "ff_dim": 256,
}
RECIPE_FIELDS = tuple(_COMMON)
# Only the fields that differ from _COMMON; the fields an architecture does not use are ignored.
RECIPES: dict[Arch, dict[str, Any]] = {
    "lstm": {},
    "bilstm": {},
    "cnn": {"ensemble": 3, "embedding_dim": 64, "learning_rate": 1e-3, "filters": 200, "kernel_sizes": (1, 2, 3, 4, 5)},
    "transformer": {"embedding_dim": 64, "learning_rate": 5e-4, "dropout": 0.1, "ff_dim": 128},
}
_TRAINING = ("ensemble", "learning_rate", "lr_decay")
_USED = {
    "lstm": (*_TRAINING, "embedding_dim", "dropout", "lstm_units"),
    "cnn": (*_TRAINING, "embedding_dim", "embedding_dropout", "dropout", "filters", "kernel_sizes"),
    "transformer": (*_TRAINING, "embedding_dim", "embedding_dropout", "dropout", "heads", "blocks", "ff_dim"),
}
_USED["bilstm"] = _USED["lstm"]


def recipe(arch: Arch, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every recipe field for ``arch``: the common defaults, its recipe, then ``overrides``."""
    return {**_COMMON, **RECIPES[arch], **(overrides or {})}


def used_fields(arch: Arch, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``values`` that ``arch`` reads (for manifests and reports)."""
    return {k: values[k] for k in _USED[arch]}


def recipes_help() -> str:
    parts = []
    for arch in ARCHITECTURES:
        settings = ", ".join(f"{k}={v}" for k, v in used_fields(arch, recipe(arch)).items())
        parts.append(f"{arch}: {settings}")
    return "; ".join(parts) + "."
