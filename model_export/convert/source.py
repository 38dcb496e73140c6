"""Reading the user's model (legacy HDF5, ``.keras`` or SavedModel) and finding what textserve
must know about it: its one input and output, a leading ``TextVectorization`` layer and the
integer model behind it, the input length it fixes, and whether an Embedding masks padding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from model_export.convert.errors import ConvertError

_STANDARDIZE = (None, "lower", "strip_punctuation", "lower_and_strip_punctuation")
_SPLIT = (None, "whitespace", "character")


@dataclass(frozen=True)
class Vectorizer:
    """A model's leading ``TextVectorization`` layer, as the tokenizer spec records it."""

    layer: Any
    standardize: str | None
    split: str | None
    vocabulary: list[str]
    output_sequence_length: int | None


@dataclass
class SourceModel:
    path: Path
    format: str
    call: Callable[[Any], Any]  # token ids (a tensor of the input dtype) -> the model's output
    input_dtype: Any
    fixed_length: int | None
    output_units: int
    masks_padding: bool = False  # an Embedding with mask_zero=True
    has_lstm: bool = False
    model: Any = None  # the loaded Keras model (None for a SavedModel)
    integer_model: Any = None  # what follows the vectorizer (the model itself without one)
    vectorizer: Vectorizer | None = None
    string_rank: int = 1  # rank of a vectorizing model's string input

    def predict_ids(self, ids: np.ndarray) -> np.ndarray:
        if self.integer_model is not None:
            out = self.integer_model.predict(ids, batch_size=256, verbose=0)
        else:
            out = np.concatenate([
                np.asarray(self.call(tf.cast(ids[i : i + 256], self.input_dtype))) for i in range(0, len(ids), 256)
            ])
        return np.asarray(out, dtype=np.float32)

    def predict_texts(self, texts: list[str]) -> np.ndarray:
        """The whole model on raw strings (a model that starts with its vectorizer)."""
        strings = tf.constant(texts, dtype=tf.string)
        if self.string_rank == 2:
            strings = tf.reshape(strings, (-1, 1))
        return np.asarray(self.model.predict(strings, batch_size=256, verbose=0), dtype=np.float32)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


def load_source(path: Path, fmt: str) -> SourceModel:
    if fmt == "saved_model":
        return _saved_model(path)
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for files it cannot read
        raise ConvertError(f"--keras-model {path}: Keras cannot load it as a model: {_one_line(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise ConvertError(f"--keras-model {path} holds a {type(model).__name__}, not a Keras model")
    return _keras_model(path, fmt, model)


def _units(model: Any, path: Path) -> int:
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or not isinstance(shape[1], int):
        raise ConvertError(f"--keras-model {path}: output shape {shape} is not one vector of class scores per text")
    return shape[1]


def _keras_model(path: Path, fmt: str, model: Any) -> SourceModel:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConvertError(
            f"--keras-model {path} has {len(model.inputs)} inputs and {len(model.outputs)} outputs;"
            " textserve serves models with one text input and one output"
        )
    model_input = model.inputs[0]
    vectorizers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.TextVectorization)]
    vectorizer = None
    integer_model = model
    if vectorizers:
        if len(vectorizers) > 1:
            raise ConvertError(f"--keras-model {path} has {len(vectorizers)} TextVectorization layers, not one")
        vectorizer = _vectorizer(vectorizers[0], path)
        integer_model = _after_vectorizer(model, vectorizers[0], path)
    elif model_input.dtype == "string":
        raise ConvertError(f"--keras-model {path} takes strings but has no TextVectorization layer to read")
    units = _units(model, path)
    ids = integer_model.inputs[0]
    if len(ids.shape) != 2 or not (ids.dtype.startswith("int") or ids.dtype.startswith("float")):
        what = "its vectorizer's output" if vectorizer else "its input"
        raise ConvertError(
            f"--keras-model {path}: {what} is {ids.dtype} {tuple(ids.shape)}, not token ids [batch, sequence]"
        )
    layers = list(integer_model._flatten_layers())
    return SourceModel(
        path=path,
        format=fmt,
        call=lambda x: integer_model(x, training=False),
        input_dtype=tf.as_dtype(ids.dtype),
        fixed_length=ids.shape[1],
        output_units=units,
        masks_padding=any(isinstance(x, keras.layers.Embedding) and x.mask_zero for x in layers),
        has_lstm=any(isinstance(x, keras.layers.LSTM) for x in layers),
        model=model,
        integer_model=integer_model,
        vectorizer=vectorizer,
        string_rank=len(model_input.shape),
    )


def _vectorizer(layer: Any, path: Path) -> Vectorizer:
    config = layer.get_config()
    where = f"--keras-model {path}: its TextVectorization layer"
    if config["output_mode"] != "int":
        raise ConvertError(
            f"{where} outputs {config['output_mode']!r}, not token ids (output_mode='int'); textserve serves"
            " models that read token ids"
        )
    for key, allowed in (("standardize", _STANDARDIZE), ("split", _SPLIT)):
        if config[key] not in allowed:
            raise ConvertError(
                f"{where} has a callable {key} ({config[key]!r}), which cannot be exported; use one of"
                f" {[a for a in allowed if a]} or None"
            )
    if config.get("ngrams") is not None:
        raise ConvertError(f"{where} makes ngrams {config['ngrams']!r}; textserve reproduces ngrams=None only")
    if config.get("ragged"):
        raise ConvertError(f"{where} is ragged; textserve needs padded ids (ragged=False)")
    if str(config.get("encoding", "utf-8")).lower().replace("-", "") != "utf8":
        raise ConvertError(f"{where} decodes {config['encoding']!r}; textserve reads UTF-8")
    vocabulary = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in layer.get_vocabulary()]
    return Vectorizer(layer, config["standardize"], config["split"], vocabulary, config["output_sequence_length"])


def _after_vectorizer(model: Any, layer: Any, path: Path) -> Any:
    """The integer model: every layer after the vectorizer, fed its ids."""
    if isinstance(model, keras.Sequential):
        if model.layers[0] is not layer:
            raise ConvertError(f"--keras-model {path}: TextVectorization is not the model's first layer")
        ids = x = keras.Input(shape=tuple(layer.output.shape[1:]), dtype=layer.output.dtype)
        for following in model.layers[1:]:
            x = following(x)
        return keras.Model(ids, x)
    try:
        if layer.input is not model.inputs[0]:
            raise ValueError("the vectorizer does not read the model's input")
        return keras.Model(layer.output, model.outputs[0])
    except (ValueError, AttributeError) as exc:
        raise ConvertError(
            f"--keras-model {path}: cannot separate its TextVectorization layer from the rest ({_one_line(exc)})"
        ) from exc


def _saved_model(path: Path) -> SourceModel:
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises many types for directories it cannot read
        raise ConvertError(f"--keras-model {path}: TensorFlow cannot load this SavedModel: {_one_line(exc)}") from exc
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ConvertError(f"--keras-model {path}: the SavedModel has no serving_default signature")
    _, inputs = signature.structured_input_signature
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConvertError(
            f"--keras-model {path}: its serving_default signature has {len(inputs)} inputs and"
            f" {len(outputs)} outputs; textserve serves models with one text input and one output"
        )
    ((in_name, spec),) = inputs.items()
    ((out_name, out_spec),) = outputs.items()
    if spec.dtype == tf.string:
        raise ConvertError(
            f"--keras-model {path}: the SavedModel takes strings; convert the .keras file instead, whose"
            " TextVectorization layer textserve can read"
        )
    if spec.shape.rank != 2 or not (spec.dtype.is_integer or spec.dtype.is_floating):
        raise ConvertError(
            f"--keras-model {path}: its input is {spec.dtype.name} {spec.shape}, not token ids [batch, sequence]"
        )
    if out_spec.shape.rank != 2 or out_spec.shape[1] is None:
        raise ConvertError(
            f"--keras-model {path}: output shape {out_spec.shape} is not one vector of class scores per text"
        )

    def call(ids: Any) -> Any:
        return signature(**{in_name: ids})[out_name]

    return SourceModel(path, "saved_model", call, spec.dtype, spec.shape[1], int(out_spec.shape[1]), model=loaded)
