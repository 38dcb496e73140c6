"""textserve's model as the Open Inference Protocol sees it: one BYTES input of raw texts,
and two outputs, the label probabilities and the predicted label.

Pure functions over the protocol's tensors (``tensors.py``), which HTTP's codec and gRPC's
both decode into: every rule here holds for both transports and is testable without either.
The request limits are /predict's: the same number of texts and characters per text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.engine.predictor import Prediction
from service.v2.tensors import (
    InferRequest,
    RequestInput,
    ResponseOutput,
    TensorError,
    shown,
    string_elements,
    wants_binary,
)

PLATFORM = "onnxruntime_onnx"
INPUT = "text"
PROBABILITIES = "probabilities"
LABEL = "label"
OUTPUTS = (PROBABILITIES, LABEL)


@dataclass(frozen=True)
class OutputPlan:
    """One output to send back, decided before the model runs."""

    name: str
    binary: bool
    classification: int | None = None


def model_metadata(name: str, versions: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": PROBABILITIES, "datatype": "FP32", "shape": [-1, len(labels)]},
            {"name": LABEL, "datatype": "BYTES", "shape": [-1]},
        ],
    }


def texts_of(request: InferRequest, *, max_texts: int, max_chars: int) -> list[str]:
    """The texts of the ``text`` input: BYTES, shape ``[n]`` or ``[n, 1]``, 1 to
    ``max_texts`` elements of at most ``max_chars`` characters each."""
    tensor = _the_input(request.inputs)
    if tensor.datatype != "BYTES":
        raise TensorError(f"input {INPUT!r} must have datatype BYTES, not {shown(tensor.datatype)}")
    shape = list(tensor.shape)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise TensorError(f"input {INPUT!r} must have shape [n] or [n, 1], not {_short(shape)}")
    count = shape[0]
    if not 1 <= count <= max_texts:
        raise TensorError(f"input {INPUT!r} must hold 1 to {max_texts} texts, not {count}")
    texts = string_elements(tensor)
    for index, text in enumerate(texts):
        if len(text) > max_chars:
            raise TensorError(
                f"input {INPUT!r}: element {index} has {len(text)} characters;"
                f" at most {max_chars} are allowed"
            )
    return texts


def _the_input(inputs: Sequence[RequestInput]) -> RequestInput:
    found = [t for t in inputs if t.name == INPUT]
    others = [t.name for t in inputs if t.name != INPUT]
    if others:
        raise TensorError(f"unexpected input {shown(others[0])}; this model takes only {INPUT!r}")
    if not found:
        raise TensorError(f"input {INPUT!r} is missing")
    if len(found) > 1:
        raise TensorError(f"input {INPUT!r} is given more than once")
    return found[0]


def _short(shape: list[int]) -> str:
    return str(shape) if len(shape) <= 4 else f"a {len(shape)}-dimensional shape"


def plan_outputs(request: InferRequest, n_labels: int) -> list[OutputPlan]:
    """The outputs asked for, in the order asked (all of them if none was named), each
    binary or JSON as the binary tensor data extension says."""
    if request.outputs is None:
        return [OutputPlan(name, wants_binary(None, request.parameters)) for name in OUTPUTS]
    plans, seen = [], set()
    for output in request.outputs:
        if output.name not in OUTPUTS:
            raise TensorError(
                f"unknown output {shown(output.name)}; this model has {PROBABILITIES!r} and {LABEL!r}"
            )
        if output.name in seen:
            raise TensorError(f"output {output.name!r} is requested more than once")
        seen.add(output.name)
        plans.append(OutputPlan(
            output.name,
            wants_binary(output, request.parameters),
            _classification(output.name, output.parameters.get("classification"), n_labels),
        ))
    return plans


def _classification(name: str, count: object, n_labels: int) -> int | None:
    if count is None:
        return None
    if name != PROBABILITIES:
        raise TensorError(f"'classification' applies to {PROBABILITIES!r} only")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise TensorError("'classification' must be a positive integer")
    return min(count, n_labels)  # like Triton: at most every class


def build_outputs(
    plans: Sequence[OutputPlan], predictions: Sequence[Prediction], labels: Sequence[str]
) -> list[ResponseOutput]:
    n = len(predictions)
    probabilities = np.array([list(p.scores.values()) for p in predictions], dtype=np.float32)
    outputs = []
    for plan in plans:
        if plan.name == LABEL:
            outputs.append(ResponseOutput(LABEL, "BYTES", (n,), [p.label for p in predictions], plan.binary))
        elif plan.classification is not None:
            k = plan.classification
            top = classifications(probabilities, labels, k)
            outputs.append(ResponseOutput(PROBABILITIES, "BYTES", (n, k), top, plan.binary))
        else:
            shape = probabilities.shape
            outputs.append(ResponseOutput(PROBABILITIES, "FP32", shape, probabilities, plan.binary))
    return outputs


def classifications(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[str]:
    """Row-major ``"score:index:label"`` strings of each row's ``k`` most probable labels,
    best first (the classification extension's format; ties keep label order)."""
    out = []
    for row in probabilities:
        best = sorted(range(len(row)), key=lambda i: -row[i])[:k]
        out += [f"{row[i]!s}:{i}:{labels[i]}" for i in best]
    return out
