"""Keras -> ONNX with tf2onnx, with the dimension names the manifest promises."""

from __future__ import annotations

from pathlib import Path

import keras
import onnx
import tensorflow as tf
import tf2onnx

from model_export.model import INPUT_NAME, OUTPUT_NAME
from model_export.options import DEFAULT_OPSET

BATCH_DIM = "batch"
SEQUENCE_DIM = "sequence"


def export_onnx(model: keras.Model, path: Path, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Write ``model`` to ``path``: int32 ``[batch, sequence]`` in, float32 ``[batch, k]`` out.

    Both input dimensions stay dynamic: the service pads each batch only to its longest
    text. tf2onnx names dynamic dimensions ``unk__N``; they are renamed so the graph says
    what they are.
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
    proto.doc_string = f"textserve text classifier, exported with tf2onnx {tf2onnx.__version__}"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    result: onnx.ModelProto = proto
    return result
