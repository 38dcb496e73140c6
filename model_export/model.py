"""The text classifier: one of the architectures, then Dense(softmax); optionally several
trained copies averaged inside one graph."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from model_export.architectures import FEATURES
from model_export.recipes import RECURRENT, Arch

INPUT_NAME = "input_ids"
OUTPUT_NAME = "probabilities"


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    n_classes: int
    arch: Arch = "lstm"
    max_length: int = 40
    embedding_dim: int = 128
    embedding_dropout: float = 0.0
    dropout: float = 0.5
    learning_rate: float = 3e-4
    lstm_units: int = 128
    filters: int = 100
    kernel_sizes: tuple[int, ...] = (3, 4, 5)
    heads: int = 4
    blocks: int = 2
    ff_dim: int = 256
    attention_dropout: float = 0.1

    @property
    def recurrent(self) -> bool:
        return self.arch in RECURRENT


def build_model(config: ModelConfig, mask_padding: bool = True, name: str | None = None) -> keras.Model:
    """The sequence length stays unspecified so the ONNX graph accepts any length.

    Every architecture gives a text the same probabilities whether it is padded to the
    maximum length or only to its batch's longest text. ``mask_padding=False`` builds the
    recurrent models' unmasked twin that the export converts (same weights).
    """
    ids = keras.Input(shape=(None,), dtype="int32", name=INPUT_NAME)
    x = FEATURES[config.arch](ids, config, mask_padding)
    probs = keras.layers.Dense(config.n_classes, activation="softmax", name=OUTPUT_NAME)(x)
    suffix = "" if mask_padding else "_unmasked"
    model = keras.Model(ids, probs, name=name or f"text_classifier_{config.arch}{suffix}")
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


def parameter_count(model: keras.Model) -> int:
    return int(model.count_params())
