"""Keras -> ONNX with tf2onnx, with the dimension names the manifest promises.

CNN and Transformer graphs are tf2onnx's conversion of the trained model itself: their
padding masks are computed from the ids inside the graph. For the recurrent models the
served graph is tf2onnx's conversion of the model's *unmasked twin* (fused ``LSTM``
operators) given the model's masking back through ``sequence_lens`` (see
``lstm_masking.py``); tf2onnx's direct conversion of the masked model (a generic ``Loop``)
is written too, as the reference the served graph is compared with; it is not shipped.
"""

from __future__ import annotations

from pathlib import Path

import keras
import onnx
import tensorflow as tf
import tf2onnx

from model_export.lstm_masking import METHOD as LSTM_METHOD
from model_export.lstm_masking import mask_with_sequence_lengths
from model_export.model import INPUT_NAME, OUTPUT_NAME
from model_export.options import DEFAULT_OPSET

BATCH_DIM = "batch"
SEQUENCE_DIM = "sequence"
MASKED_IN_GRAPH = (
    "tf2onnx.convert.from_keras of the Keras model; padding (id 0) is masked inside the graph"
    " (masked max/mean pooling, attention key mask), checked against Keras padded to max_length"
    " and padded only to each group's longest text"
)


def method(recurrent: bool) -> str:
    """How the served graph was made, for the manifest."""
    return LSTM_METHOD if recurrent else MASKED_IN_GRAPH


def convert(model: keras.Model, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """tf2onnx's conversion: int32 ``[batch, sequence]`` in, float32 ``[batch, k]`` out.

    Both input dimensions stay dynamic: the service pads each batch only to its longest
    text. tf2onnx names dynamic dimensions ``unk__N``; they are renamed to say what they are.
    """
    signature = (tf.TensorSpec((None, None), tf.int32, name=INPUT_NAME),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    graph = proto.graph
    if [i.name for i in graph.input] != [INPUT_NAME] or [o.name for o in graph.output] != [OUTPUT_NAME]:
        raise RuntimeError(
            f"tf2onnx produced inputs {[i.name for i in graph.input]} and outputs"
            f" {[o.name for o in graph.output]}, expected [{INPUT_NAME}] and [{OUTPUT_NAME}]"
        )
    in_dims = graph.input[0].type.tensor_type.shape.dim
    in_dims[0].dim_param, in_dims[1].dim_param = BATCH_DIM, SEQUENCE_DIM
    out_dims = graph.output[0].type.tensor_type.shape.dim
    out_dims[0].dim_param = BATCH_DIM
    result: onnx.ModelProto = proto
    return result


def export_onnx(model: keras.Model, path: Path, opset: int = DEFAULT_OPSET, recurrent: bool = True) -> onnx.ModelProto:
    """Write the served graph for ``model`` (for recurrent models: the unmasked twin)."""
    proto = convert(model, opset)
    if recurrent:
        mask_with_sequence_lengths(proto)
    proto.doc_string = f"textserve text classifier: {method(recurrent)} (tf2onnx {tf2onnx.__version__})"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return proto


def export_reference(model: keras.Model, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """Write tf2onnx's plain conversion of the masked recurrent model (a Loop per LSTM)."""
    proto = convert(model, opset)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
