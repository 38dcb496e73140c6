"""The user's own pipeline, run by Keras on the probes: the answers the bundle must give.

For a Keras ``Tokenizer``: ``tokenizer_from_json`` on the user's file, their standardization
(written here as the classic recipe writes it, independently of textserve's tokenizer),
``texts_to_sequences``, ``pad_sequences`` and ``model.predict``. For a ``TextVectorization``
model: the layer itself for the ids, and the whole model on the raw strings for the answers.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import tensorflow as tf

from model_export.convert.parity import Reference
from model_export.convert.probes import Probe
from model_export.convert.source import SourceModel
from model_export.convert.tokenizer_json import KerasTokenizerFile
from service.bundle.tokenizer.sequences import Layout


def clean_text(text: str) -> str:
    """The classic recipe's cleaning (``--standardize seed``)."""
    text = text.lower()
    return re.sub(r"[^\w\s]", "", text)


_STANDARDIZE = {"none": lambda t: t, "lower": lambda t: t.lower(), "seed": clean_text}


def probabilities(source: SourceModel, raw: np.ndarray) -> np.ndarray:
    """A sigmoid's p becomes [1 - p, p], as the graph's binary head makes it."""
    return np.hstack([1.0 - raw, raw]).astype(np.float32) if source.output_units == 1 else raw


def keras_tokenizer_reference(
    source: SourceModel, file: KerasTokenizerFile, standardize: str, layout: Layout, probes: list[Probe]
) -> Reference:
    tokenizer = tf.keras.preprocessing.text.tokenizer_from_json(file.json_text)
    texts = [_STANDARDIZE[standardize](p.text) for p in probes]
    sequences = tokenizer.texts_to_sequences(texts)
    ids = keras.utils.pad_sequences(
        sequences, maxlen=layout.max_length, dtype="int32",
        padding=layout.padding, truncating=layout.truncating, value=0,
    )
    return Reference(
        probes=probes,
        probs=probabilities(source, source.predict_ids(ids)),
        ids=ids,
        layout=layout,
        description=(
            f"keras: tokenizer_from_json, --standardize {standardize}, texts_to_sequences, pad_sequences("
            f"maxlen={layout.max_length}, padding={layout.padding!r}, truncating={layout.truncating!r}), model.predict"
        ),
    )


def vectorizer_reference(source: SourceModel, standardize: str, layout: Layout, probes: list[Probe]) -> Reference:
    assert source.vectorizer is not None
    texts = [_STANDARDIZE[standardize](p.text) for p in probes]
    # One string per row, [n, 1]: with split=None the layer reads a rank-1 batch as one example.
    ids = np.asarray(source.vectorizer.layer(tf.constant(texts, dtype=tf.string)[:, None]), dtype=np.int64)
    if source.vectorizer.output_sequence_length is not None:
        raw = source.predict_texts(texts)
        description = f"keras: --standardize {standardize}, then model.predict on the raw strings"
    else:
        # The layer pads to each batch's longest text: the service cuts at --max-length.
        width = min(ids.shape[1], layout.max_length)
        ids = np.pad(ids[:, :width], ((0, 0), (0, layout.max_length - width)))
        raw = source.predict_ids(ids)
        description = (
            f"keras: --standardize {standardize}, the model's TextVectorization layer, its ids cut or"
            f" padded at the end to --max-length {layout.max_length}, then the rest of the model"
        )
    return Reference(probes, probabilities(source, raw), ids.astype(np.int32), layout, description)
