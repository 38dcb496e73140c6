"""A small Transformer encoder: token + learned position embeddings, a few post-norm
blocks (multi-head self-attention, feed-forward), masked mean pooling.

Attention never looks at padding (the key mask), and the pooling averages the real
positions only, so padded positions cannot change a text's output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from model_export.architectures.layers import KeyMask, MaskedMeanPool, PaddingMask, PositionEmbedding

if TYPE_CHECKING:
    from model_export.model import ModelConfig


def _block(x: Any, attention_mask: Any, config: ModelConfig) -> Any:
    width = config.embedding_dim
    attention = keras.layers.MultiHeadAttention(
        config.heads, width // config.heads, dropout=config.attention_dropout
    )(x, x, attention_mask=attention_mask)
    attention = keras.layers.Dropout(config.dropout)(attention)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x + attention)
    hidden = keras.layers.Dense(config.ff_dim, activation="relu")(x)
    hidden = keras.layers.Dense(width)(hidden)
    hidden = keras.layers.Dropout(config.dropout)(hidden)
    return keras.layers.LayerNormalization(epsilon=1e-6)(x + hidden)


def features(ids: Any, config: ModelConfig, mask_padding: bool = True) -> Any:
    mask = PaddingMask(name="padding_mask")(ids)
    attention_mask = KeyMask()(mask)
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim)(ids)
    x = PositionEmbedding(config.max_length)(x)
    x = keras.layers.Dropout(config.embedding_dropout)(x)
    for _ in range(config.blocks):
        x = _block(x, attention_mask, config)
    x = MaskedMeanPool()([x, mask])
    return keras.layers.Dropout(config.dropout)(x)
