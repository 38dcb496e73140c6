"""The Open Inference Protocol (V2) routes with the real shipped bundle, through the app's
lifespan. Request bodies are built, and binary responses read, by tritonclient's own
(static) encoder and decoder; reference answers come from /predict at test time."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.engine.batcher import QueueFullError
from service.settings import Settings
from tests.conftest import SHIPPED_VERSION
from tests.integration.v2_bodies import tensor, v2_json

LABELS = ["negative", "neutral", "positive"]
TEXTS = [
    "@united thanks for the quick rebooking, great crew!",
    "my flight got cancelled again and nobody answers the phone",
    "",
    "caf\u00e9 \U0001f600\U0001f600 love it",
    " ".join(["delayed"] * 100),
]
INFER = "/v2/models/sentiment/infer"
INFER_ROUTE = "/v2/models/{model_name}/infer"  # the metrics' route label
LIMITS = {"max_texts_per_request": 4, "max_text_chars": 50, "max_body_bytes": 4096}
SECRET = "s3cret-input"


def triton_request(
    texts: Sequence[str], *, binary: bool = True, outputs: list[triton.InferRequestedOutput] | None = None,
    request_id: str = "",
) -> tuple[bytes, dict[str, str]]:
    """A request body exactly as tritonclient would send it."""
    tensor = triton.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    body, json_size = triton.InferenceServerClient.generate_request_body(
        [tensor], outputs=outputs, request_id=request_id
    )
    return body, ({} if json_size is None else {"Inference-Header-Content-Length": str(json_size)})


def triton_result(response: httpx.Response) -> triton.InferResult:
    assert response.status_code == 200, response.text
    return triton.InferenceServerClient.parse_response_body(
        response.content, header_length=response.headers.get("inference-header-content-length")
    )


def predict_reference(client: TestClient, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    predictions = client.post("/predict", json={"texts": list(texts)}).json()["predictions"]
    probs = np.array([[p["scores"][label] for label in LABELS] for p in predictions], dtype=np.float32)
    return probs, [p["label"] for p in predictions]


def binary_texts(elements: Sequence[bytes], shape: list[int] | None = None) -> tuple[bytes, dict[str, str]]:
    blob = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    return binary_with(blob, shape or [len(elements)])


def binary_with(blob: bytes, shape: list[int], size: int | None = None) -> tuple[bytes, dict[str, str]]:
    parameters = {"binary_data_size": len(blob) if size is None else size}
    spec = {"name": "text", "datatype": "BYTES", "shape": shape, "parameters": parameters}
    header = orjson.dumps({"inputs": [spec]})
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


def metric_value(page: str, name: str, **labels: str) -> float:
    """One sample of the exposition page, 0 if absent (route labels hold braces, so parse
    the page properly)."""
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


# -- health and metadata --------------------------------------------------------------------


def test_openapi_documents_the_v2_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    infer = paths["/v2/models/{model_name}/versions/{model_version}/infer"]["post"]
    assert set(infer["requestBody"]["content"]) == {"application/json", "application/octet-stream"}
    assert set(infer["responses"]) >= {"200", "400", "404", "413", "503"}
    expected = {"/v2", "/v2/health/live", "/v2/models/{model_name}", "/v2/models/{model_name}/ready"}
    assert expected <= set(paths)


def test_server_metadata_names_the_implemented_extensions(client: TestClient) -> None:
    assert client.get("/v2").json() == {
        "name": "textserve", "version": "0.1.0", "extensions": [
            "binary_tensor_data", "classification", "model_repository", "model_repository(unload_dependents)"],
    }


@pytest.mark.parametrize(
    "path",
    ["/v2/health/live", "/v2/health/ready", "/v2/models/sentiment/ready",
     f"/v2/models/sentiment/versions/{SHIPPED_VERSION}/ready"],
)
def test_health_is_200_with_an_empty_body(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert (response.status_code, response.content) == (200, b"")


@pytest.mark.parametrize("path", ["/v2/models/sentiment", f"/v2/models/sentiment/versions/{SHIPPED_VERSION}"])
def test_model_metadata(client: TestClient, path: str) -> None:
    assert client.get(path).json() == {
        "name": "sentiment", "versions": [SHIPPED_VERSION], "platform": "onnxruntime_onnx",
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
        ],
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/nope"), ("GET", f"/v2/models/sentiment/versions/{int(SHIPPED_VERSION) + 1}"),
        ("GET", "/v2/models/nope/ready"),
        ("GET", "/v2/models/sentiment/versions/01/ready"), ("POST", "/v2/models/nope/infer"),
        ("POST", f"/v2/models/sentiment/versions/{int(SHIPPED_VERSION) + 1}/infer"), ("POST", "/v2/models/Sentiment/infer"),
    ],
)
def test_unknown_model_or_version_is_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json=v2_json(["hi"]))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert isinstance(response.json()["error"], str)


# -- inference ------------------------------------------------------------------------------


def test_json_inference_matches_predict_and_echoes_the_id(client: TestClient) -> None:
    expected, labels = predict_reference(client, TEXTS)
    response = client.post(f"/v2/models/sentiment/versions/{SHIPPED_VERSION}/infer", json=v2_json(TEXTS, id="req-9"))
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    body = response.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("sentiment", SHIPPED_VERSION, "req-9")
    probs, label = body["outputs"]
    assert (probs["name"], probs["datatype"], probs["shape"]) == ("probabilities", "FP32", [len(TEXTS), 3])
    np.testing.assert_allclose(np.array(probs["data"]).reshape(-1, 3), expected, atol=1e-6)
    assert (label["name"], label["datatype"], label["shape"]) == ("label", "BYTES", [5])
    assert label["data"] == labels


@pytest.mark.parametrize("binary_input", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_output", [True, False], ids=["binary-out", "json-out"])
def test_tritonclient_bodies_both_ways(client: TestClient, binary_input: bool, binary_output: bool) -> None:
    expected, labels = predict_reference(client, TEXTS)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary_output) for n in ("label", "probabilities")]
    body, headers = triton_request(TEXTS, binary=binary_input, outputs=outputs, request_id="abc")
    response = client.post(INFER, content=body, headers=headers)
    result = triton_result(response)
    binary_reply = response.headers["content-type"] == "application/octet-stream"
    assert binary_reply is binary_output
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label", "probabilities"]
    assert result.get_response()["id"] == "abc"
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    got_labels = result.as_numpy("label")
    assert got_labels is not None
    assert [x.decode() if isinstance(x, bytes) else x for x in got_labels] == labels


def test_default_outputs_are_binary_as_tritonclient_asks(client: TestClient) -> None:
    body, headers = triton_request(TEXTS[:2])  # no outputs named: binary_data_output is set
    response = client.post(INFER, content=body, headers=headers)
    result = triton_result(response)
    assert response.headers["content-type"] == "application/octet-stream"
    assert all("binary_data_size" in o["parameters"] for o in result.get_response()["outputs"])
    expected, _ = predict_reference(client, TEXTS[:2])
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)


def test_only_the_requested_outputs_are_returned(client: TestClient) -> None:
    body = client.post(INFER, json=v2_json(TEXTS[:2], outputs=[{"name": "label"}])).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]


def test_classification_extension(client: TestClient) -> None:
    expected, _ = predict_reference(client, TEXTS[:2])
    outputs = [{"name": "probabilities", "parameters": {"classification": 2}}]
    (top,) = client.post(INFER, json=v2_json(TEXTS[:2], outputs=outputs)).json()["outputs"]
    assert (top["datatype"], top["shape"]) == ("BYTES", [2, 2])
    for row, pair in zip(expected, [top["data"][:2], top["data"][2:]], strict=True):
        order = np.argsort(-row, kind="stable")[:2]
        assert [int(s.split(":")[1]) for s in pair] == list(order)
        assert [s.split(":")[2] for s in pair] == [LABELS[i] for i in order]
        assert [float(s.split(":")[0]) for s in pair] == pytest.approx(row[order], abs=1e-6)


def test_n_by_1_shape_and_nested_json_data(client: TestClient) -> None:
    texts = TEXTS[:3]
    nested = {"inputs": [tensor("BYTES", [3, 1], [[t] for t in texts])]}
    body, headers = binary_texts([t.encode() for t in texts], shape=[3, 1])
    from_json = client.post(INFER, json=nested).json()["outputs"][0]["data"]
    from_binary = client.post(INFER, content=body, headers=headers).json()["outputs"][0]["data"]
    assert from_json == from_binary
    expected, _ = predict_reference(client, texts)
    np.testing.assert_allclose(np.array(from_json).reshape(3, 3), expected, atol=1e-6)


def test_content_type_is_not_required(client: TestClient) -> None:
    body = orjson.dumps(v2_json(["hi"]))
    for headers in ({}, {"Content-Type": "application/octet-stream"}, {"Content-Type": "text/plain"}):
        assert client.post(INFER, content=body, headers=headers).status_code == 200


# -- mistakes -------------------------------------------------------------------------------

GOOD = binary_texts([b"fine", b"also fine"])


def inputs(*tensors: dict[str, Any]) -> bytes:
    return orjson.dumps({"inputs": list(tensors)})


JSON_HEADERS = {"Content-Type": "application/json"}

# (id, body, headers, status, message fragment)
BAD: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("malformed-json", b'{"inputs": [', JSON_HEADERS, 400, "malformed JSON"),
    ("empty-body", b"", JSON_HEADERS, 400, "malformed JSON"),
    ("wrong-datatype", inputs(tensor("FP32", [1], [1.5])), {}, 400, "must have datatype BYTES, not 'FP32'"),
    ("wrong-shape", inputs(tensor("BYTES", [2, 2], [SECRET] * 4)), {}, 400, "shape [n] or [n, 1]"),
    ("shape-and-data-differ", inputs(tensor("BYTES", [3], [SECRET, "b"])), {}, 400,
     "shape [3] needs 3 elements, 'data' has 2"),
    ("missing-input", b'{"inputs": []}', {}, 400, "'inputs' must be a non-empty list"),
    ("other-input", inputs(tensor("BYTES", [1], ["a"], name="texts")), {}, 400, "unexpected input 'texts'"),
    ("unknown-output", orjson.dumps(v2_json(["a"], outputs=[{"name": "logits"}])), {}, 400,
     "unknown output 'logits'"),
    ("too-many-texts", orjson.dumps(v2_json(["a"] * 5)), {}, 400, "1 to 4 texts, not 5"),
    ("text-too-long", orjson.dumps(v2_json([SECRET * 5])), {}, 400, "element 0 has 60 characters; at most"),
    ("binary-text-too-long", *binary_texts([SECRET.encode() * 5]), 400, "element 0 has 60 characters"),
    ("invalid-utf8", *binary_texts([b"ok", SECRET.encode() + b"\xff"]), 400, "element 1 is not valid UTF-8"),
    ("header-length-not-a-number", GOOD[0], {"Inference-Header-Content-Length": "twelve"}, 400,
     "Inference-Header-Content-Length must be a non-negative integer"),
    ("header-length-huge", GOOD[0], {"Inference-Header-Content-Length": "18446744073709551615"}, 400,
     "Inference-Header-Content-Length must be"),
    ("header-length-past-the-body", GOOD[0], {"Inference-Header-Content-Length": "9999999999999999999"}, 400,
     f"is 9999999999999999999 but the body has {len(GOOD[0])} bytes"),
    ("header-length-too-short", GOOD[0], {"Inference-Header-Content-Length": "10"}, 400, "malformed JSON"),
    ("binary-without-header-length", GOOD[0], {}, 400, "malformed JSON"),
    ("binary-size-huge", *binary_with(b"\x01\x00\x00\x00a", [1], size=2**62), 400,
     f"declare {2**62} bytes of binary data but 5 bytes follow"),
    ("binary-sizes-dont-add-up", *binary_with(b"\x01\x00\x00\x00a" * 2, [2], size=5), 400,
     "declare 5 bytes of binary data but 10 bytes follow"),
    ("element-length-huge", *binary_with(struct.pack("<I", 0xFFFFFFFF) + b"abc", [1]), 400,
     "element 0 declares 4294967295 bytes but only 3 remain"),
    ("element-length-cut", *binary_with(b"\x01\x00", [1]), 400, "binary data ends before element 0 of 1"),
    ("more-elements-than-shape", *binary_texts([b"a", b"b"], shape=[1]), 400, "over after its 1 elements"),
    ("gzip-body", orjson.dumps(v2_json(["a"])), {"Content-Encoding": "gzip"}, 415, "compressed request"),
    ("body-too-large", orjson.dumps(v2_json(["a" * 5000])), {}, 413, "exceeds 4096 bytes"),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD]
)
def test_bad_v2_requests_get_a_clear_4xx_and_the_server_keeps_serving(
    make_client: Callable[..., TestClient], body: bytes, headers: dict[str, str], status: int, fragment: str,
) -> None:
    client = make_client(**LIMITS)
    response = client.post(INFER, content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert isinstance(payload["error"], str) and fragment in payload["error"], payload
    assert SECRET not in response.text
    for leak in ("Traceback", 'File "', "/service/", "site-packages"):
        assert leak not in response.text
    assert client.post(INFER, content=GOOD[0], headers=GOOD[1]).status_code == 200


def test_a_chunked_body_over_the_limit_is_413(make_client: Callable[..., TestClient]) -> None:
    client = make_client(**LIMITS)

    def chunks() -> Any:
        yield b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"]}]}'

    assert client.post(INFER, content=chunks()).status_code == 413


def test_api_key_guards_inference_only(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_key="s3cret-key")
    assert client.post(INFER, json=v2_json(["hi"])).status_code == 401
    assert client.post("/v2/models/nope/infer", json=v2_json(["hi"])).status_code == 401
    authorized = client.post(INFER, json=v2_json(["hi"]), headers={"Authorization": "Bearer s3cret-key"})
    assert authorized.status_code == 200
    for path in ("/v2", "/v2/health/ready", "/v2/models/sentiment", "/v2/models/sentiment/ready"):
        assert client.get(path).status_code == 200


def test_before_the_model_is_loaded(shipped_bundle_dir: Path) -> None:
    outside = TestClient(create_app(Settings(model_path=shipped_bundle_dir)))  # no lifespan: loading
    assert outside.get("/v2/health/live").status_code == 200
    assert outside.get("/v2/health/ready").status_code == 400
    assert outside.get("/v2/models/sentiment/ready").status_code == 400
    assert outside.get("/v2/models/sentiment").status_code == 503
    response = outside.post(INFER, json=v2_json(["hi"]))
    assert (response.status_code, response.json()["code"]) == (503, "not_ready")


def test_while_draining(client: TestClient) -> None:
    client.app.state.engine.begin_drain()  # type: ignore[attr-defined]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 400
    assert client.get("/v2/models/sentiment/ready").status_code == 400
    response = client.post(INFER, json=v2_json(["hi"]))
    assert (response.status_code, response.json()["code"]) == (503, "shutting_down")
    assert response.headers["connection"] == "close"


def test_overload_is_503(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def full(items: Any, hold: Any = None) -> Any:
        raise QueueFullError("full")

    monkeypatch.setattr(client.app.state.engine.route(None, None).predictor.batcher, "submit", full)  # type: ignore[attr-defined]
    response = client.post(INFER, json=v2_json(["hi"]))
    assert (response.status_code, response.json()["code"]) == (503, "overloaded")
    assert response.headers["retry-after"] == "1"


# -- one batcher, one set of metrics --------------------------------------------------------


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_v2_and_predict_texts_share_one_batch(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hold the model on a first batch, queue one V2 text and one /predict text behind it:
    the next batch holds exactly 2 texts, so it can only be the two of them together."""
    client = make_client(max_batch_size=2, max_batch_delay_ms=1000)
    runtime = client.app.state.engine.route(None, None).predictor.runtime  # type: ignore[attr-defined]
    real, gate = runtime.predict, threading.Event()

    def held(ids: Any) -> Any:
        gate.wait(10)
        return real(ids)

    monkeypatch.setattr(runtime, "predict", held)

    def metric(name: str, **labels: str) -> float:
        return metric_value(client.get("/metrics").text, name, **labels)

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(client.post, "/predict", json={"texts": ["warming up"]})
        wait_until(lambda: metric("textserve_batch_size_count") == 1)
        from_v2 = pool.submit(client.post, INFER, json=v2_json([TEXTS[0]]))
        from_predict = pool.submit(client.post, "/predict", json={"texts": [TEXTS[1]]})
        wait_until(lambda: metric("textserve_queue_depth") == 2)
        gate.set()
        responses = [f.result(timeout=10) for f in (first, from_v2, from_predict)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    page = client.get("/metrics").text
    assert metric_value(page, "textserve_batch_size_count") == 2
    assert metric_value(page, "textserve_batch_size_bucket", le="1.0") == 1
    assert metric_value(page, "textserve_batch_size_bucket", le="2.0") == 2
    assert metric_value(page, "textserve_requests_total", route=INFER_ROUTE, status="200") == 1
    assert metric_value(page, "textserve_requests_total", route="/predict", status="200") == 2
    monkeypatch.undo()
    expected, _ = predict_reference(client, TEXTS[:2])
    np.testing.assert_allclose(responses[1].json()["outputs"][0]["data"], expected[0], atol=1e-6)
    got = [responses[2].json()["predictions"][0]["scores"][label] for label in LABELS]
    np.testing.assert_allclose(got, expected[1], atol=1e-6)


def test_v2_traffic_is_counted_and_its_probes_are_not(client: TestClient) -> None:
    for _ in range(3):
        client.post(INFER, json=v2_json(TEXTS[:2]))
        client.get("/v2/health/live")
        client.get("/v2/health/ready")
    client.post(INFER, json=v2_json(["a"], outputs=[{"name": "nope"}]))
    page = client.get("/metrics").text
    route = INFER_ROUTE
    assert metric_value(page, "textserve_requests_total", route=route, status="200") == 3
    assert metric_value(page, "textserve_requests_total", route=route, status="400") == 1
    assert "/v2/health" not in page
    assert metric_value(page, "textserve_batch_size_sum") == 6
    assert sum(metric_value(page, "textserve_predictions_total", label=label) for label in LABELS) == 6


def test_health_and_readiness_probes_are_not_counted_as_traffic(client: TestClient) -> None:
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/sentiment/ready",
                 f"/v2/models/sentiment/versions/{SHIPPED_VERSION}/ready"):
        assert client.get(path).status_code == 200
    page = client.get("/metrics").text
    assert "/ready" not in page and "/health" not in page
