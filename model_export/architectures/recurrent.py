"""LSTM and BiLSTM: Embedding -> (Bi)LSTM -> Dropout -> (Bi)LSTM -> Dense(softmax).

``mask_zero`` makes the recurrent layers skip padding. The export converts the *unmasked*
twin (same layers and weights), which tf2onnx fuses into ONNX ``LSTM`` operators, and gives
it the mask back through ``sequence_lens`` (``model_export/lstm_masking.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from model_export.model import ModelConfig


def features(ids: Any, config: ModelConfig, mask_padding: bool) -> Any:
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=mask_padding)(ids)
    bidirectional = config.arch == "bilstm"

    def recurrent(return_sequences: bool) -> keras.layers.Layer:
        layer = keras.layers.LSTM(config.lstm_units, return_sequences=return_sequences)
        return keras.layers.Bidirectional(layer) if bidirectional else layer

    x = recurrent(return_sequences=True)(x)
    x = keras.layers.Dropout(config.dropout)(x)
    return recurrent(return_sequences=False)(x)
