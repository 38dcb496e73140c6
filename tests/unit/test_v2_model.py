"""The model's V2 face without HTTP: which inputs and outputs it accepts, /predict's limits,
and how predictions become output tensors."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from service.engine.predictor import Prediction
from service.v2.codec import parse_infer_request
from service.v2.model import (
    LABEL,
    PROBABILITIES,
    OutputPlan,
    build_outputs,
    classifications,
    model_metadata,
    plan_outputs,
    texts_of,
)
from service.v2.tensors import InferRequest, TensorError, encode_bytes_tensor

LABELS = ["negative", "neutral", "positive"]
TEXT_A = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"]}


def request(
    data: Any = ("a", "b"), *, shape: list[int] | None = None, datatype: str = "BYTES", name: str = "text",
    **top: Any,
) -> InferRequest:
    data = list(data)
    tensor = {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}
    return parse_infer_request(orjson.dumps({"inputs": [tensor], **top}), None)


def texts(req: InferRequest, max_texts: int = 4, max_chars: int = 10) -> list[str]:
    return texts_of(req, max_texts=max_texts, max_chars=max_chars)


def test_metadata_describes_the_input_and_both_outputs() -> None:
    assert model_metadata("sentiment", [3, 2], LABELS) == {
        "name": "sentiment", "versions": ["3", "2"], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
    }


@pytest.mark.parametrize("shape", [[2], [2, 1]])
def test_texts_with_either_accepted_shape(shape: list[int]) -> None:
    assert texts(request(["a", "\U0001f600" * 10], shape=shape)) == ["a", "\U0001f600" * 10]


def test_binary_texts_are_accepted() -> None:
    blob = encode_bytes_tensor(["caf\u00e9".encode(), b""])
    header = orjson.dumps({"inputs": [
        {"name": "text", "datatype": "BYTES", "shape": [2, 1], "parameters": {"binary_data_size": len(blob)}}
    ]})
    assert texts(parse_infer_request(header + blob, len(header))) == ["caf\u00e9", ""]


@pytest.mark.parametrize(
    ("req", "fragment"),
    [
        (request(datatype="FP32"), "must have datatype BYTES, not 'FP32'"),
        (request(datatype="<script>"), "not (unprintable name)"),
        (request(shape=[1, 2]), "shape [n] or [n, 1], not [1, 2]"),
        (request(shape=[2, 1, 1]), "shape [n] or [n, 1], not [2, 1, 1]"),
        (request(shape=[1] * 9), "not a 9-dimensional shape"),
        (request([], shape=[0]), "1 to 4 texts, not 0"),
        (request("abcde"), "1 to 4 texts, not 5"),
        (request(["x" * 11]), "element 0 has 11 characters; at most 10"),
        (request(name="texts"), "unexpected input 'texts'; this model takes only 'text'"),
        (parse_infer_request(orjson.dumps({"inputs": [TEXT_A, TEXT_A]}), None), "more than once"),
    ],
    ids=["wrong-datatype", "odd-datatype", "wrong-shape", "three-dims", "many-dims", "no-texts", "too-many",
         "too-long", "unknown-input", "duplicate-input"],
)
def test_bad_text_inputs(req: InferRequest, fragment: str) -> None:
    with pytest.raises(TensorError) as caught:
        texts(req)
    assert fragment in str(caught.value)


def test_the_limits_themselves_are_allowed() -> None:
    assert texts(request(["x" * 10] * 4)) == ["x" * 10] * 4


def test_every_output_by_default_binary_if_the_request_says_so() -> None:
    assert plan_outputs(request(), 3) == [OutputPlan(PROBABILITIES, False), OutputPlan(LABEL, False)]
    binary = request(parameters={"binary_data_output": True})
    assert plan_outputs(binary, 3) == [OutputPlan(PROBABILITIES, True), OutputPlan(LABEL, True)]


def test_outputs_in_the_order_asked_with_their_own_settings() -> None:
    req = request(
        parameters={"binary_data_output": True},
        outputs=[{"name": "label", "parameters": {"binary_data": False}},
                 {"name": "probabilities", "parameters": {"classification": 5}}],
    )
    assert plan_outputs(req, 3) == [OutputPlan(LABEL, False), OutputPlan(PROBABILITIES, True, 3)]


@pytest.mark.parametrize(
    ("outputs", "fragment"),
    [
        ([{"name": "scores"}], "unknown output 'scores'; this model has 'probabilities' and 'label'"),
        ([{"name": "label"}, {"name": "label"}], "requested more than once"),
        ([{"name": "label", "parameters": {"classification": 1}}], "applies to 'probabilities' only"),
        ([{"name": "probabilities", "parameters": {"classification": 0}}], "positive integer"),
        ([{"name": "probabilities", "parameters": {"classification": True}}], "positive integer"),
        ([{"name": "probabilities", "parameters": {"classification": "2"}}], "positive integer"),
        ([{"name": "label", "parameters": {"binary_data": "yes"}}], "'binary_data' must be true or false"),
    ],
)
def test_bad_output_requests(outputs: list[dict[str, Any]], fragment: str) -> None:
    with pytest.raises(TensorError) as caught:
        plan_outputs(request(outputs=outputs), 3)
    assert fragment in str(caught.value)


def test_a_bad_request_level_binary_flag() -> None:
    with pytest.raises(TensorError, match="'binary_data_output' must be true or false"):
        plan_outputs(request(parameters={"binary_data_output": 1}), 3)


def prediction(values: list[float]) -> Prediction:
    scores = dict(zip(LABELS, values, strict=True))
    return Prediction(max(scores, key=scores.__getitem__), scores, truncated=False)


def test_outputs_are_built_from_predictions() -> None:
    predictions = [prediction([0.1, 0.2, 0.7]), prediction([0.5, 0.3, 0.2])]
    plans = [OutputPlan(LABEL, True), OutputPlan(PROBABILITIES, False), OutputPlan(PROBABILITIES, False, 2)]
    label, probs, top = build_outputs(plans, predictions, LABELS)
    assert (label.datatype, label.shape, label.binary) == ("BYTES", (2,), True)
    assert label.data == ["positive", "negative"]
    assert (probs.datatype, probs.shape) == ("FP32", (2, 3))
    assert isinstance(probs.data, np.ndarray) and probs.data.dtype == np.float32
    np.testing.assert_array_equal(probs.data, np.array([[0.1, 0.2, 0.7], [0.5, 0.3, 0.2]], dtype=np.float32))
    assert (top.datatype, top.shape) == ("BYTES", (2, 2))
    assert top.data == ["0.7:2:positive", "0.2:1:neutral", "0.5:0:negative", "0.3:1:neutral"]


def test_classification_ties_keep_label_order() -> None:
    probs = np.array([[0.25, 0.5, 0.25]], dtype=np.float32)
    assert classifications(probs, LABELS, 3) == ["0.5:1:neutral", "0.25:0:negative", "0.25:2:positive"]
