"""Kim (2014)-style CNN: parallel Conv1D of several widths, max-pooled over time.

Padding is made invisible: embeddings at padded positions are zeroed (so a window reaching
into the padding sees the same zeros as one reaching past the matrix's end, whatever the
batch's width), ``same`` convolutions keep one output per position, and the max-pool skips
the padded positions (``MaskedMaxPool``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from model_export.architectures.layers import MaskedMaxPool, PaddingMask, ZeroPadding

if TYPE_CHECKING:
    from model_export.model import ModelConfig


def features(ids: Any, config: ModelConfig, mask_padding: bool = True) -> Any:
    mask = PaddingMask(name="padding_mask")(ids)
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim)(ids)
    x = keras.layers.Dropout(config.embedding_dropout)(x)
    x = ZeroPadding()([x, mask])
    pooled = []
    for width in config.kernel_sizes:
        conv = keras.layers.Conv1D(config.filters, width, padding="same", activation="relu")(x)
        pooled.append(MaskedMaxPool()([conv, mask]))
    x = keras.layers.Concatenate()(pooled) if len(pooled) > 1 else pooled[0]
    return keras.layers.Dropout(config.dropout)(x)
