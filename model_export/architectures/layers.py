"""Keras layers that make pooling and attention ignore padding (id 0, always at the end).

The service pads each batch only to its longest text, so a text's probabilities must not
depend on how many padding positions follow it. Every layer here reads the padding mask
computed from the ids, never the matrix width.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


@keras.saving.register_keras_serializable("textserve")
class PaddingMask(keras.layers.Layer):  # type: ignore[misc]
    """ids ``[batch, sequence]`` -> float ``[batch, sequence, 1]``: 1.0 on tokens, 0.0 on padding."""

    def call(self, ids: Any) -> Any:
        return ops.expand_dims(ops.cast(ops.not_equal(ids, 0), self.compute_dtype), -1)


@keras.saving.register_keras_serializable("textserve")
class MaskedMaxPool(keras.layers.Layer):  # type: ignore[misc]
    """Max over time of *non-negative* features, padding excluded.

    For features >= 0 (after a ReLU), zeroing the padded positions and taking the plain
    maximum gives exactly the maximum over the real positions (and 0 for an empty text),
    with two cheap operators and no large negative constants in the graph.
    """

    def call(self, inputs: list[Any]) -> Any:
        features, mask = inputs
        return ops.max(features * mask, axis=1)


@keras.saving.register_keras_serializable("textserve")
class MaskedMeanPool(keras.layers.Layer):  # type: ignore[misc]
    """Mean over the real positions only (0 for an empty text)."""

    def call(self, inputs: list[Any]) -> Any:
        features, mask = inputs
        total = ops.sum(features * mask, axis=1)
        return total / ops.maximum(ops.sum(mask, axis=1), 1.0)


@keras.saving.register_keras_serializable("textserve")
class ZeroPadding(keras.layers.Layer):  # type: ignore[misc]
    """Zero the vectors at padded positions, so a convolution window that reaches into the
    padding sees exactly what it sees past the matrix's end (the convolution's own zeros)."""

    def call(self, inputs: list[Any]) -> Any:
        features, mask = inputs
        return features * mask


@keras.saving.register_keras_serializable("textserve")
class PositionEmbedding(keras.layers.Layer):  # type: ignore[misc]
    """Adds a learned vector per position (0 .. max_length - 1) to ``[batch, sequence, dim]``."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length

    def build(self, input_shape: tuple[Any, ...]) -> None:
        self.positions = self.add_weight(
            name="positions", shape=(self.max_length, int(input_shape[-1])),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, x: Any) -> Any:
        return x + self.positions[: ops.shape(x)[1]]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "max_length": self.max_length}


@keras.saving.register_keras_serializable("textserve")
class KeyMask(keras.layers.Layer):  # type: ignore[misc]
    """float mask ``[batch, sequence, 1]`` -> boolean attention mask ``[batch, 1, sequence]``:
    every query may attend to the real tokens only."""

    def call(self, mask: Any) -> Any:
        return ops.transpose(ops.cast(mask, "bool"), (0, 2, 1))
