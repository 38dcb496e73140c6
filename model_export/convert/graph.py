"""The user's integer model -> an ONNX graph with textserve's signature: int32 ``input_ids``
``[batch, sequence]`` in, float32 ``probabilities`` ``[batch, labels]`` out.

Two graphs, tried in this order (``candidates``):

* ``fused_lstm``: for a model whose Embedding masks padding and which has LSTM layers,
  tf2onnx's conversion of its *unmasked twin* (fused ONNX ``LSTM`` operators) given the mask
  back through ``sequence_lens`` by the export's own ``lstm_masking`` rewrite. The rewrite
  counts the non-zero ids of a row, so the graph is fed post-padded rows even when the user
  padded at the front: with the mask, an LSTM skips padding wherever it is. Parity decides.
* ``generic``: tf2onnx's conversion of the model as it is (a masked LSTM becomes a ``Loop``).

A ``Dense(1, sigmoid)`` output becomes ``[1 - p, p]`` inside the graph. A graph holding an
operator onnxruntime does not know (tf2onnx leaves TensorFlow ops it cannot convert in place)
or whose output is not a sigmoid or softmax is refused here, before any parity check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import onnx
import tensorflow as tf
import tf2onnx
from onnx import TensorProto, helper

from model_export.convert.errors import ConvertError
from model_export.convert.source import SourceModel
from model_export.lstm_masking import MaskingRewriteError, mask_with_sequence_lengths
from service.bundle.tokenizer.sequences import Side

INPUT_NAME = "input_ids"
OUTPUT_NAME = "probabilities"
OPSET = 17
_RAW = "textserve_model_output"
_PASS_THROUGH = ("Identity", "Cast")

FUSED = (
    "tf2onnx.convert.from_function of the unmasked twin (fused LSTM operators), the mask restored with"
    " LSTM sequence_lens counted from the ids (model_export/lstm_masking.py); rows padded at the end"
)
GENERIC = "tf2onnx.convert.from_function of the model as saved (masked recurrent layers become Loop operators)"


@dataclass(frozen=True)
class Graph:
    proto: onnx.ModelProto
    method: str  # for the manifest
    padding: Side | None  # the side the graph needs its rows padded on; None: the user's own
    length: int | None  # ids per row the graph takes; None: any number

    @property
    def name(self) -> str:
        return "the fused LSTM graph" if self.method == FUSED else "the generic graph"


def _convert(call: Any, source: SourceModel, length: int | None) -> onnx.ModelProto:
    signature = (tf.TensorSpec((None, length), tf.int32, name=INPUT_NAME),)

    @tf.function(input_signature=signature)  # type: ignore[untyped-decorator]
    def serve(ids: Any) -> dict[str, Any]:
        return {_RAW: call(tf.cast(ids, source.input_dtype))}

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET)
    except Exception as exc:  # tf2onnx raises whatever its handlers raise
        raise ConvertError(f"tf2onnx cannot convert the model: {' '.join(str(exc).split())[:300]}") from exc
    result: onnx.ModelProto = proto
    return result


def _unknown_ops(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type):
            yield node
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from _unknown_ops(attribute.g)


def _check_convertible(proto: onnx.ModelProto) -> None:
    unknown = list(_unknown_ops(proto.graph))
    if unknown:
        node = unknown[0]
        raise ConvertError(
            f"tf2onnx cannot convert the model's TensorFlow op {node.op_type} (node {node.name!r}):"
            " onnxruntime has no such operator; replace that layer or compute it outside the model"
        )


def _activation(graph: onnx.GraphProto) -> str:
    producers = {out: node for node in graph.node for out in node.output}
    name = graph.output[0].name
    while name in producers and producers[name].op_type in _PASS_THROUGH:
        name = producers[name].input[0]
    return producers[name].op_type if name in producers else "the input"


def _finish(proto: onnx.ModelProto, source: SourceModel, n_labels: int, length: int | None) -> onnx.ModelProto:
    """Check what the graph outputs, add the binary head, name the dimensions."""
    graph = proto.graph
    activation, units = _activation(graph), source.output_units
    if units == 1 and activation != "Sigmoid":
        raise ConvertError(f"the model's single output comes from {activation}, not a sigmoid: it is not a probability")
    if units > 1 and activation == "Sigmoid":
        raise ConvertError(
            f"the model's {units} outputs are independent sigmoids (multi-label); textserve serves one"
            " softmax over the classes or one sigmoid for two"
        )
    if units > 1 and activation != "Softmax":
        raise ConvertError(f"the model's outputs come from {activation}, not a softmax: they are not probabilities")
    raw = graph.output[0].name
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if o == raw and units > 1 else o for o in node.output]
    if units == 1:
        graph.initializer.append(helper.make_tensor("textserve_one", TensorProto.FLOAT, [], [1.0]))
        graph.node.extend([
            helper.make_node("Sub", ["textserve_one", raw], ["textserve_not_p"], name="textserve_not_p"),
            helper.make_node("Concat", ["textserve_not_p", raw], [OUTPUT_NAME], axis=1, name="textserve_binary"),
        ])
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", n_labels]))
    dims = graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_param = "batch"
    if length is None:
        dims[1].dim_param = "sequence"
    proto.doc_string = f"textserve: a converted Keras classifier (tf2onnx {tf2onnx.__version__})"
    onnx.checker.check_model(proto)
    return proto


def _unmasked_twin(model: Any) -> Any:
    def clone(layer: Any) -> Any:
        config = layer.get_config()
        if isinstance(layer, keras.layers.Embedding):
            config["mask_zero"] = False
        return layer.__class__.from_config(config)

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def _lengths(source: SourceModel) -> list[int | None]:
    """Ids per row to trace the graph with. A model that masks padding is tried with any
    length first (even when its Input declares one): only then may the service pad a batch
    to its longest text. A graph that cannot be traced so (e.g. Flatten -> Dense) keeps the
    declared length."""
    if source.fixed_length is None or not source.masks_padding:
        return [source.fixed_length]
    return [None, source.fixed_length]


def _traced(call: Any, source: SourceModel) -> tuple[onnx.ModelProto, int | None]:
    lengths = _lengths(source)
    for length in lengths:
        try:
            return _convert(call, source, length), length
        except ConvertError:
            if length == lengths[-1]:
                raise
    raise AssertionError("unreachable")


def _fused(source: SourceModel, n_labels: int) -> Graph | None:
    if not (source.masks_padding and source.has_lstm and source.integer_model is not None):
        return None
    try:
        twin = _unmasked_twin(source.integer_model)
        proto, length = _traced(lambda x: twin(x, training=False), source)
        _check_convertible(proto)
        if any(node.op_type in ("Loop", "Scan") for node in proto.graph.node):
            return None  # another recurrent layer stays generic: the rewrite would not mask it
        mask_with_sequence_lengths(proto)
        return Graph(_finish(proto, source, n_labels, length), FUSED, "post", length)
    except (MaskingRewriteError, ConvertError, ValueError, TypeError) as exc:
        print(f"[convert] fused LSTM graph not possible ({' '.join(str(exc).split())[:200]}); using the generic one")
        return None


def candidates(source: SourceModel, n_labels: int) -> Iterator[Graph]:
    """The graphs to try, fastest first; the generic one is made only if needed."""
    fused = _fused(source, n_labels)
    if fused is not None:
        yield fused
    proto, length = _traced(source.call, source)
    _check_convertible(proto)
    yield Graph(_finish(proto, source, n_labels, length), GENERIC, None, length)
