"""The classic text classifier: Embedding -> LSTM -> Dropout -> LSTM -> Dense(softmax)."""

from __future__ import annotations

from dataclasses import dataclass

import keras

INPUT_NAME = "input_ids"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    n_classes: int
    embedding_dim: int = 128
    lstm_units: int = 128
    dropout: float = 0.5
    learning_rate: float = 3e-4


def build_model(config: ModelConfig, mask_padding: bool = True) -> keras.Model:
    """The sequence length stays unspecified so the ONNX graph accepts any length.

    ``mask_zero`` makes both LSTMs skip padding, so a text gives the same probabilities
    whether it is padded to the maximum length or only to its batch's longest text.
    ``mask_padding=False`` builds the unmasked twin the export converts (same weights).
    """
    ids = keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME)
    x = keras.layers.Embedding(config.vocab_size, config.embedding_dim, mask_zero=mask_padding)(ids)
    x = keras.layers.LSTM(config.lstm_units, return_sequences=True)(x)
    x = keras.layers.Dropout(config.dropout)(x)
    x = keras.layers.LSTM(config.lstm_units)(x)
    probs = keras.layers.Dense(config.n_classes, activation="softmax", name=OUTPUT_NAME)(x)
    model = keras.Model(ids, probs, name="text_classifier" if mask_padding else "text_classifier_unmasked")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def unmasked_twin(model: keras.Model, config: ModelConfig) -> keras.Model:
    """``model``'s layers and weights, without the mask (what tf2onnx fuses into LSTM ops)."""
    twin = build_model(config, mask_padding=False)
    twin.set_weights(model.get_weights())
    return twin
