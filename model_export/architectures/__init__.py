"""The selectable architectures; each module's ``features`` maps ids to a pooled vector."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from model_export.architectures import cnn, recurrent, transformer

if TYPE_CHECKING:
    from model_export.model import ModelConfig

FEATURES: dict[str, Callable[[Any, ModelConfig, bool], Any]] = {
    "lstm": recurrent.features,
    "bilstm": recurrent.features,
    "cnn": cnn.features,
    "transformer": transformer.features,
}
