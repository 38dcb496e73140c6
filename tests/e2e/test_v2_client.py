"""The official Triton client, unmodified, against a real server process: health, metadata,
inference in binary and JSON both ways, and bad requests that must each get their 4xx
while the server keeps serving. Reference answers come from the same server's /predict."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import SHIPPED_VERSION
from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e
LABELS = ["negative", "neutral", "positive"]
BASE_TEXTS = [
    "thanks for the great flight!", "lost my bag again, worst airline", "", "   ",
    "love the new seats \U0001f600\U0001f680", "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e",
    "\u65e5\u672c\u8a9e \u0645\u0631\u062d\u0628\u0627", "@united delayed 3 hours at gate C14",
    " ".join(["delayed"] * 80), "a\u0000b \u202e",
]


def texts_of_size(n: int) -> list[str]:
    """``n`` texts: the base ones first, then numbered variants of them."""
    base = len(BASE_TEXTS)
    return [BASE_TEXTS[i % base] + (f" #{i}" if i >= base else "") for i in range(n)]


@pytest.fixture(scope="module")
def server(shipped_bundle_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(shipped_bundle_dir) as running:
        yield running


@pytest.fixture
def client(server: ServerProcess) -> Iterator[triton.InferenceServerClient]:
    official = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    yield official
    official.close()


def predict(server: ServerProcess, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    response = httpx.post(server.url + "/predict", json={"texts": list(texts)}, timeout=30)
    predictions = response.json()["predictions"]
    return (
        np.array([[p["scores"][label] for label in LABELS] for p in predictions], dtype=np.float32),
        [p["label"] for p in predictions],
    )


def text_input(texts: Sequence[str], binary: bool = True) -> triton.InferInput:
    tensor = triton.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    return tensor


def as_strings(array: np.ndarray | None) -> list[str]:
    assert array is not None
    return [x.decode() if isinstance(x, bytes) else str(x) for x in array.ravel()]


def test_health_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("sentiment")
    assert client.is_model_ready("sentiment", SHIPPED_VERSION)
    assert not client.is_model_ready("sentiment", str(int(SHIPPED_VERSION) + 1))
    assert not client.is_model_ready("other")
    metadata = client.get_server_metadata()
    assert metadata["name"] == "textserve"
    assert set(metadata["extensions"]) == {
        "binary_tensor_data", "classification", "model_repository", "model_repository(unload_dependents)"}
    model = client.get_model_metadata("sentiment", SHIPPED_VERSION)
    assert model == client.get_model_metadata("sentiment")
    assert (model["name"], model["versions"], model["platform"]) == ("sentiment", [SHIPPED_VERSION], "onnxruntime_onnx")
    assert model["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [(o["name"], o["datatype"], o["shape"]) for o in model["outputs"]] == [
        ("probabilities", "FP32", [-1, 3]), ("label", "BYTES", [-1])
    ]


@pytest.mark.parametrize("size", [1, 9, 64])
@pytest.mark.parametrize("binary_in", [True, False], ids=["binary-in", "json-in"])
@pytest.mark.parametrize("binary_out", [True, False], ids=["binary-out", "json-out"])
def test_infer_agrees_with_predict(
    server: ServerProcess, client: triton.InferenceServerClient, size: int, binary_in: bool, binary_out: bool
) -> None:
    texts = texts_of_size(size)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary_out) for n in ("probabilities", "label")]
    result = client.infer("sentiment", [text_input(texts, binary_in)], outputs=outputs, request_id=f"r{size}")
    expected, labels = predict(server, texts)
    response = result.get_response()
    assert response["id"] == f"r{size}"
    assert all(("parameters" in o) is binary_out for o in response["outputs"])
    probabilities = result.as_numpy("probabilities")
    assert probabilities is not None and probabilities.shape == (size, 3)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    assert as_strings(result.as_numpy("label")) == labels


def test_infer_with_the_client_defaults_and_a_version(
    server: ServerProcess, client: triton.InferenceServerClient
) -> None:
    texts = texts_of_size(5)
    result = client.infer("sentiment", [text_input(texts)], model_version=SHIPPED_VERSION)
    expected, labels = predict(server, texts)
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    assert as_strings(result.as_numpy("label")) == labels


def test_classification_and_a_single_output(
    server: ServerProcess, client: triton.InferenceServerClient
) -> None:
    texts = texts_of_size(4)
    outputs = [triton.InferRequestedOutput("probabilities", class_count=2)]
    result = client.infer("sentiment", [text_input(texts)], outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("label") is None
    top = as_strings(result.as_numpy("probabilities"))
    expected, labels = predict(server, texts)
    best = [entry.split(":") for entry in top[::2]]
    assert [label for _, _, label in best] == labels
    np.testing.assert_allclose([float(score) for score, _, _ in best], expected.max(axis=1), atol=1e-6)


def raw_post(server: ServerProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + "/v2/models/sentiment/infer", content=body, headers=headers, timeout=30)


def binary_request(blob: bytes, shape: list[int], size: int | None = None) -> tuple[bytes, dict[str, str]]:
    parameters = {"binary_data_size": len(blob) if size is None else size}
    spec = {"name": "text", "datatype": "BYTES", "shape": shape, "parameters": parameters}
    header = orjson.dumps({"inputs": [spec]})
    return header + blob, {"Inference-Header-Content-Length": str(len(header))}


GOOD_BLOB = struct.pack("<I", 2) + b"ok"
BAD_RAW = [
    ("element-length-past-the-end", *binary_request(struct.pack("<I", 50) + b"short", [1]), 400),
    ("element-length-huge", *binary_request(struct.pack("<I", 0xFFFFFFFF) + b"x", [1]), 400),
    ("sizes-dont-add-up", *binary_request(GOOD_BLOB * 2, [2], size=3), 400),
    ("binary-size-huge", *binary_request(GOOD_BLOB, [1], size=2**62), 400),
    ("header-length-huge", binary_request(GOOD_BLOB, [1])[0],
     {"Inference-Header-Content-Length": str(2**63)}, 400),
    ("header-length-past-the-body", binary_request(GOOD_BLOB, [1])[0],
     {"Inference-Header-Content-Length": "1000000"}, 400),
    ("invalid-utf8", *binary_request(struct.pack("<I", 2) + b"\xc3\x28", [1]), 400),
    ("shape-says-more", *binary_request(GOOD_BLOB, [2]), 400),
]


@pytest.mark.parametrize(
    ("body", "headers", "status"), [c[1:] for c in BAD_RAW], ids=[c[0] for c in BAD_RAW]
)
def test_malformed_binary_requests_get_their_4xx(
    server: ServerProcess, client: triton.InferenceServerClient, body: bytes, headers: dict[str, str],
    status: int,
) -> None:
    response = raw_post(server, body, headers)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["error"], str)
    assert client.infer("sentiment", [text_input(["still serving"])]).as_numpy("label") is not None


def client_error(call: object) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as caught:
        call()  # type: ignore[operator]
    return caught.value


def test_the_client_sees_4xx_for_bad_tensors_and_unknown_models(client: triton.InferenceServerClient) -> None:
    floats = triton.InferInput("text", [2], "FP32")
    floats.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
    error = client_error(lambda: client.infer("sentiment", [floats]))
    assert (error.status(), "must have datatype BYTES" in str(error.message())) == ("400", True)

    square = triton.InferInput("text", [2, 2], "BYTES")
    square.set_data_from_numpy(np.array([["a", "b"], ["c", "d"]], dtype=object))
    error = client_error(lambda: client.infer("sentiment", [square]))
    assert (error.status(), "shape [n] or [n, 1]" in str(error.message())) == ("400", True)

    other = triton.InferInput("texts", [1], "BYTES")
    other.set_data_from_numpy(np.array(["a"], dtype=object))
    assert client_error(lambda: client.infer("sentiment", [other])).status() == "400"
    assert client_error(lambda: client.infer("other", [text_input(["a"])])).status() == "404"
    wrong_version = client_error(lambda: client.infer("sentiment", [text_input(["a"])], model_version="7"))
    assert wrong_version.status() == "404"
    assert client_error(lambda: client.get_model_metadata("other")).status() == "404"
    too_many = text_input(["a"] * 257)
    assert client_error(lambda: client.infer("sentiment", [too_many])).status() == "400"


def test_a_huge_declared_content_length_is_refused_before_reading(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v2/models/sentiment/infer HTTP/1.1\r\nHost: x\r\n"
            b"Inference-Header-Content-Length: 10\r\nContent-Length: 999999999999\r\n\r\n{}"
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413 ")


def test_the_server_is_still_healthy_after_all_that(
    server: ServerProcess, client: triton.InferenceServerClient
) -> None:
    assert server.proc is not None and server.proc.poll() is None
    assert client.is_server_ready()
    assert "unhandled error" not in server.logs()
    metrics = httpx.get(server.url + "/metrics").text
    assert 'route="/v2/models/{model_name}/infer",status="500"' not in metrics
