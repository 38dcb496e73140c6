"""Give tf2onnx's fused LSTM graph the trained model's masking, with ``sequence_lens``.

tf2onnx turns a Keras LSTM into one ONNX ``LSTM`` operator only when no mask is involved;
with ``mask_zero`` it emits a generic ``Loop`` whose body runs some forty small operators per
time step, four to five times slower at batch 1 and about 1.6 times at batch 64 on this
model. So the export converts an *unmasked twin* (same layers, same weights) and then:

1. computes each row's length from the ids (padding is id 0, always at the end);
2. passes it to every ``LSTM`` operator as ``sequence_lens``, so steps past a text's end
   are skipped, exactly as the Keras mask skips them;
3. feeds the classifier the last LSTM's final hidden state ``Y_h`` (its state at the last
   real token) instead of ``Y`` at the last time step (zeros past a short text's end). For a
   bidirectional LSTM, ``Y_h`` holds both directions' final states (the forward one at the
   last real token, the backward one at the first token), laid side by side as Keras's
   ``Bidirectional`` concatenates them: forward, then backward.

The result is checked against the masked Keras model on the whole test split (parity) and
against tf2onnx's own ``Loop`` export of it, so a rewrite that got anything wrong fails
the export instead of shipping.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

METHOD = (
    "tf2onnx.convert.from_keras of the unmasked twin (fused LSTM operators), masking restored"
    " with LSTM sequence_lens computed from the ids; checked against Keras and against"
    " tf2onnx's Loop conversion of the masked model"
)
LENGTHS = "textserve_sequence_lens"
FINAL_STATE = "textserve_final_state"
_ZERO = "textserve_zero_i32"
_AXIS_1 = "textserve_axis_1"
_AXIS_0 = "textserve_axis_0"
_BOTH_DIRECTIONS = "textserve_both_directions_shape"
_SEQUENCE_LENS_INPUT = 4  # X, W, R, B, sequence_lens, initial_h, initial_c, P


class MaskingRewriteError(Exception):
    """The graph does not have the shape this rewrite expects; nothing was changed."""


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _classifier_matmul(graph: onnx.GraphProto, lstm: onnx.NodeProto) -> tuple[onnx.NodeProto, int] | None:
    """The Dense layer's MatMul reached from ``lstm``'s Y through reshaping ops, and which of
    its inputs carries the LSTM's output; None if Y feeds another LSTM instead."""
    consumers = _consumers(graph)
    frontier = [lstm.output[0]]
    while frontier:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if node.op_type == "MatMul":
                return node, list(node.input).index(name)
            # A bidirectional LSTM's two halves are sliced out of Y and concatenated.
            if node.op_type in ("Squeeze", "Slice", "Transpose", "Gather", "Reshape", "Identity", "Concat"):
                frontier.extend(node.output)
    return None


def _prune(graph: onnx.GraphProto) -> None:
    """Drop nodes whose outputs nothing reads any more (the old last-step slicing)."""
    while True:
        needed = {o.name for o in graph.output} | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in needed for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def mask_with_sequence_lengths(proto: onnx.ModelProto) -> None:
    """Rewrite ``proto`` in place (see the module docstring)."""
    graph = proto.graph
    lstms = [n for n in graph.node if n.op_type == "LSTM"]
    if not lstms:
        raise MaskingRewriteError("the graph has no fused LSTM operator")
    if any(len(n.input) > _SEQUENCE_LENS_INPUT and n.input[_SEQUENCE_LENS_INPUT] for n in lstms):
        raise MaskingRewriteError("an LSTM operator already has sequence_lens")
    finals = [(lstm, found) for lstm in lstms if (found := _classifier_matmul(graph, lstm)) is not None]
    if not finals:
        raise MaskingRewriteError("no MatMul reads the last LSTM's output")
    if any(len(last.output) < 2 or not last.output[1] for last, _ in finals):
        raise MaskingRewriteError("the last LSTM does not expose Y_h")
    ids = graph.input[0].name

    graph.initializer.extend([
        helper.make_tensor(_ZERO, TensorProto.INT32, [], [0]),
        helper.make_tensor(_AXIS_1, TensorProto.INT64, [1], [1]),
        helper.make_tensor(_AXIS_0, TensorProto.INT64, [1], [0]),
    ])
    lengths = [
        helper.make_node("Equal", [ids, _ZERO], ["textserve_is_pad"], name="textserve_is_pad"),
        helper.make_node("Not", ["textserve_is_pad"], ["textserve_is_token"], name="textserve_is_token"),
        helper.make_node("Cast", ["textserve_is_token"], ["textserve_tokens"], to=TensorProto.INT32,
                         name="textserve_tokens"),
        helper.make_node("ReduceSum", ["textserve_tokens", _AXIS_1], [LENGTHS], keepdims=0, name=LENGTHS),
    ]
    for offset, node in enumerate(lengths):
        graph.node.insert(offset, node)

    for lstm in lstms:
        inputs = list(lstm.input) + [""] * max(0, _SEQUENCE_LENS_INPUT + 1 - len(lstm.input))
        inputs[_SEQUENCE_LENS_INPUT] = LENGTHS
        del lstm.input[:]
        lstm.input.extend(inputs)

    # One final LSTM per model; several when copies of the model are averaged (an ensemble).
    for index, (last, (dense, dense_input)) in enumerate(finals):
        state = FINAL_STATE if index == 0 else f"{FINAL_STATE}_{index}"
        position = list(graph.node).index(dense)
        for offset, node in enumerate(_final_state(graph, last, state)):
            graph.node.insert(position + offset, node)
        dense.input[dense_input] = state
    _prune(graph)


def _final_state(graph: onnx.GraphProto, lstm: onnx.NodeProto, state: str) -> list[onnx.NodeProto]:
    """Nodes turning ``Y_h`` ``[directions, batch, hidden]`` into ``state``, ``[batch, directions * hidden]``."""
    direction = next((a.s.decode() for a in lstm.attribute if a.name == "direction"), "forward")
    if direction == "forward":
        return [helper.make_node("Squeeze", [lstm.output[1], _AXIS_0], [state], name=state)]
    if direction != "bidirectional":
        raise MaskingRewriteError(f"the last LSTM runs {direction}, which no Keras layer here makes")
    if _BOTH_DIRECTIONS not in {i.name for i in graph.initializer}:
        graph.initializer.append(helper.make_tensor(_BOTH_DIRECTIONS, TensorProto.INT64, [2], [0, -1]))
    by_batch = f"{state}_by_batch"
    return [
        helper.make_node("Transpose", [lstm.output[1]], [by_batch], perm=[1, 0, 2], name=by_batch),
        helper.make_node("Reshape", [by_batch, _BOTH_DIRECTIONS], [state], name=state),
    ]
