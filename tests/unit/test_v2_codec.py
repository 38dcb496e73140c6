"""The V2 wire format without HTTP: round trips, the official client's own serializers, and
a table of malformed requests that must each be a TensorError that repeats no client data."""

from __future__ import annotations

import ast
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from service.v2.codec import encode_infer_response, parse_header_length, parse_infer_request
from service.v2.tensors import (
    InferRequest,
    RequestOutput,
    ResponseOutput,
    TensorError,
    decode_bytes_tensor,
    encode_bytes_tensor,
    string_elements,
    wants_binary,
)

ELEMENTS = [b"", b"a", "caf\u00e9 \U0001f600".encode(), b"\x00\x01 nul", "\u202e".encode() * 50]
SECRET = "s3cret-payload"
REPO = Path(__file__).resolve().parents[2]


def binary_body(inputs: list[dict[str, Any]], blobs: list[bytes], **extra: Any) -> tuple[bytes, int]:
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(blobs), len(header)


def text_input(blob: bytes, shape: list[int], name: str = "text") -> dict[str, Any]:
    return {"name": name, "datatype": "BYTES", "shape": shape, "parameters": {"binary_data_size": len(blob)}}


# -- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("elements", [[], ELEMENTS[:1], ELEMENTS], ids=["none", "one-empty", "mixed"])
def test_bytes_tensor_round_trip(elements: list[bytes]) -> None:
    assert decode_bytes_tensor(encode_bytes_tensor(elements), len(elements), "text") == elements


def test_bytes_tensor_matches_the_official_client_both_ways() -> None:
    ours = encode_bytes_tensor(ELEMENTS)
    theirs = serialize_byte_tensor(np.array(ELEMENTS, dtype=object)).item()
    assert ours == theirs
    assert list(deserialize_bytes_tensor(ours)) == ELEMENTS


def test_binary_inputs_get_their_own_slices_in_order() -> None:
    first, second = encode_bytes_tensor([b"one", b"two"]), encode_bytes_tensor(["dr\u00e9i".encode()])
    body, length = binary_body(
        [text_input(first, [2], "a"), {"name": "b", "datatype": "BYTES", "shape": [1], "data": ["x"]},
         text_input(second, [1, 1], "c")],
        [first, second],
    )
    request = parse_infer_request(body, length)
    assert [t.name for t in request.inputs] == ["a", "b", "c"]
    assert [string_elements(t) for t in request.inputs] == [["one", "two"], ["x"], ["dr\u00e9i"]]
    assert request.inputs[1].raw is None and request.inputs[2].shape == (1, 1)


def test_json_request_with_id_parameters_and_outputs() -> None:
    body = orjson.dumps({
        "id": "42", "parameters": {"binary_data_output": True, "priority": 3},
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2, 1], "data": [["a"], ["b"]]}],
        "outputs": [{"name": "label", "parameters": {"binary_data": False}}],
    })
    request = parse_infer_request(body, None)
    assert request.id == "42"
    assert string_elements(request.inputs[0]) == ["a", "b"]
    assert request.outputs == [RequestOutput("label", {"binary_data": False})]
    assert not wants_binary(request.outputs[0], request.parameters)
    assert wants_binary(None, request.parameters)


def test_an_empty_outputs_list_means_every_output() -> None:
    assert parse_infer_request(one({"outputs": []}), None).outputs is None


@pytest.mark.parametrize(
    ("output_params", "request_params", "expected"),
    [
        (None, {}, False),
        (None, {"binary_data_output": True}, True),
        ({}, {"binary_data_output": True}, True),
        ({"binary_data": False}, {"binary_data_output": True}, False),
        ({"binary_data": True}, {}, True),
    ],
)
def test_binary_output_choice(
    output_params: dict[str, Any] | None, request_params: dict[str, Any], expected: bool
) -> None:
    output = None if output_params is None else RequestOutput("label", output_params)
    assert wants_binary(output, request_params) is expected


def test_response_in_json_only() -> None:
    probs = np.array([[0.25, 0.75]], dtype=np.float32)
    body, length = encode_infer_response("m", "1", "id-7", [
        ResponseOutput("p", "FP32", (1, 2), probs, binary=False),
        ResponseOutput("l", "BYTES", (1,), ["caf\u00e9"], binary=False),
    ])
    assert length is None
    assert orjson.loads(body) == {
        "model_name": "m", "model_version": "1", "id": "id-7",
        "outputs": [
            {"name": "p", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
            {"name": "l", "datatype": "BYTES", "shape": [1], "data": ["caf\u00e9"]},
        ],
    }


def test_response_with_binary_outputs_in_order_after_the_json() -> None:
    probs = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], dtype=np.float32)
    labels = ["positive", "n\u00e9gative"]
    body, length = encode_infer_response("m", "1", None, [
        ResponseOutput("l", "BYTES", (2,), labels, binary=True),
        ResponseOutput("x", "BYTES", (2,), ["json"] * 2, binary=False),
        ResponseOutput("p", "FP32", (2, 3), probs, binary=True),
    ])
    assert length is not None
    header = orjson.loads(body[:length])
    assert "id" not in header
    sizes = [o.get("parameters", {}).get("binary_data_size") for o in header["outputs"]]
    label_size, _, prob_size = sizes
    assert prob_size == 24 and header["outputs"][1]["data"] == ["json", "json"]
    rest = body[length:]
    assert len(rest) == label_size + prob_size
    assert list(deserialize_bytes_tensor(rest[:label_size])) == [s.encode() for s in labels]
    np.testing.assert_array_equal(np.frombuffer(rest[label_size:], dtype="<f4").reshape(2, 3), probs)


# -- header length ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["abc", "-1", "1e3", "0x10", "", "0", "99999999999999999999", "\u0661\u0662", "101"]
)
def test_bad_header_length_is_refused(value: str) -> None:
    with pytest.raises(TensorError, match="Inference-Header-Content-Length"):
        parse_header_length(value, body_size=100)


def test_header_length_within_the_body() -> None:
    assert parse_header_length(None, 10) is None
    assert parse_header_length(" 10 ", 10) == 10


# -- malformed requests -------------------------------------------------------------------

GOOD_BLOB = encode_bytes_tensor([b"hello", b"world"])
DROP = object()


def one(top: dict[str, Any] | None = None, **fields: Any) -> bytes:
    """A JSON request whose one input is a valid 'text' input changed by ``fields``."""
    tensor = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["a"], **fields}
    tensor = {k: v for k, v in tensor.items() if v is not DROP}
    return orjson.dumps({"inputs": [tensor], **(top or {})})


def sized(size: Any, **fields: Any) -> tuple[bytes, int]:
    """A binary request for GOOD_BLOB that declares ``size`` bytes."""
    tensor = {**text_input(GOOD_BLOB, [2]), "parameters": {"binary_data_size": size}, **fields}
    return binary_body([tensor], [GOOD_BLOB])


# (id, body, header length (None: JSON only), message fragment)
MALFORMED: list[tuple[str, bytes, int | None, str]] = [
    ("not-json", b"{'inputs': 1", None, "malformed JSON"),
    ("lone-surrogate", b'{"inputs": [{"data": ["\\ud800"]}]}', None, "malformed JSON"),
    ("json-array", b"[]", None, "must be a JSON object"),
    ("id-not-string", one({"id": 7}), None, "'id' must be"),
    ("no-inputs", b"{}", None, "'inputs' must be a non-empty list"),
    ("empty-inputs", b'{"inputs": []}', None, "'inputs' must be a non-empty list"),
    ("input-not-object", b'{"inputs": ["text"]}', None, "each input must be an object"),
    ("input-without-name", one(name=DROP), None, "'name'"),
    ("input-without-datatype", one(datatype=DROP), None, "'datatype'"),
    ("shape-not-list", one(shape=1), None, "'shape'"),
    ("negative-dim", one(shape=[-1]), None, "'shape'"),
    ("float-dim", one(shape=[1.0]), None, "'shape'"),
    ("bool-dim", one(shape=[True]), None, "'shape'"),
    ("no-data", one(data=DROP), None, "neither 'data' nor binary data"),
    ("data-and-binary", *sized(len(GOOD_BLOB), data=["a", "b"]), "both 'data' and binary data"),
    ("parameters-not-object", one(parameters=[1]), None, "'parameters' of input 'text' must be an object"),
    ("negative-binary-size", *sized(-1), "'binary_data_size' must be"),
    ("float-binary-size", *sized(1.5), "'binary_data_size' must be"),
    ("huge-binary-size", *sized(2**63), f"declare {2**63} bytes of binary data but {len(GOOD_BLOB)} bytes"),
    ("sizes-short", *sized(3), f"declare 3 bytes of binary data but {len(GOOD_BLOB)}"),
    ("binary-without-header-length", binary_body([text_input(GOOD_BLOB, [2])], [])[0], None,
     f"declare {len(GOOD_BLOB)} bytes of binary data but 0 bytes follow"),
    ("trailing-bytes-after-json", one() + b"junk", len(one()), "declare 0 bytes of binary data but 4 bytes"),
    ("shared-memory", one(parameters={"shared_memory_region": "r"}), None, "shared memory is not supported"),
    ("outputs-not-list", one({"outputs": {"name": "x"}}), None, "'outputs' must be a list"),
    ("output-without-name", one({"outputs": [{}]}), None, "string 'name'"),
]


@pytest.mark.parametrize(
    ("body", "length", "fragment"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_malformed_requests_are_tensor_errors(body: bytes, length: int | None, fragment: str) -> None:
    with pytest.raises(TensorError) as caught:
        parse_infer_request(body, length)
    assert fragment in str(caught.value)


def elements_of(blob: bytes, count: int) -> list[str]:
    body, length = binary_body([text_input(blob, [count])], [blob])
    return string_elements(parse_infer_request(body, length).inputs[0])


# (id, binary tensor, element count, message fragment)
BAD_ELEMENTS: list[tuple[str, bytes, int, str]] = [
    ("cut-length-prefix", b"\x05\x00", 1, "binary data ends before element 0 of 1"),
    ("fewer-elements", GOOD_BLOB, 3, "binary data ends before element 2 of 3"),
    ("element-past-the-end", struct.pack("<I", 10) + b"short", 1, "element 0 declares 10 bytes but only 5"),
    ("huge-element-length", struct.pack("<I", 0xFFFFFFFF) + b"x", 1, f"declares {0xFFFFFFFF} bytes but only"),
    ("left-over-bytes", GOOD_BLOB + b"\x00", 2, "1 bytes left over after its 2 elements"),
    ("more-elements", GOOD_BLOB, 1, "bytes left over after its 1 elements"),
    ("invalid-utf8", encode_bytes_tensor([b"ok", b"caf\xe9"]), 2, "element 1 is not valid UTF-8"),
    ("overlong-utf8", encode_bytes_tensor([b"\xc0\xaf"]), 1, "element 0 is not valid UTF-8"),
    ("surrogate-utf8", encode_bytes_tensor([b"\xed\xa0\x80"]), 1, "element 0 is not valid UTF-8"),
]


@pytest.mark.parametrize(
    ("blob", "count", "fragment"), [c[1:] for c in BAD_ELEMENTS], ids=[c[0] for c in BAD_ELEMENTS]
)
def test_bad_binary_elements_are_tensor_errors(blob: bytes, count: int, fragment: str) -> None:
    with pytest.raises(TensorError, match="input 'text'") as caught:
        elements_of(blob, count)
    assert fragment in str(caught.value)


def json_elements(data: Any, shape: list[int]) -> list[str]:
    body = orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": shape, "data": data}]})
    return string_elements(parse_infer_request(body, None).inputs[0])


@pytest.mark.parametrize(
    ("data", "shape", "fragment"),
    [
        ("abc", [1], "'data' must be a list"),
        (["a", "b"], [3], "shape [3] needs 3 elements, 'data' has 2"),
        (["a", 5], [2], "element 1 is not a string"),
        (["a", None], [2], "element 1 is not a string"),
        ([["a"], "b"], [2, 1], "mixes lists and elements"),
        ([["a", "b"]], [2], "shape [2] needs 2 elements, 'data' has 1"),
        ([[["a"]]], [1, 1], "element 0 is not a string"),
        (["a"], [10**18], "needs 1000000000000000000 elements"),
    ],
)
def test_bad_json_elements_are_tensor_errors(data: Any, shape: list[int], fragment: str) -> None:
    with pytest.raises(TensorError) as caught:
        json_elements(data, shape)
    assert fragment in str(caught.value)


def test_json_elements_flat_or_nested() -> None:
    assert json_elements(["a", "b"], [2, 1]) == json_elements([["a"], ["b"]], [2, 1]) == ["a", "b"]
    assert json_elements([], [0]) == []


def test_errors_never_repeat_client_data() -> None:
    cases = [
        orjson.dumps({"inputs": [{"name": SECRET * 10, "datatype": "BYTES", "shape": [1]}]}),
        orjson.dumps({"inputs": [{"name": "text", "datatype": SECRET, "shape": [1], "data": [SECRET, 1]}]}),
        orjson.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": [SECRET]}]}),
        b'{"inputs": [{"name": "' + SECRET.encode() + b'", ',
    ]
    for body in cases:
        with pytest.raises(TensorError) as caught:
            request: InferRequest = parse_infer_request(body, None)
            string_elements(request.inputs[0])
        assert SECRET not in str(caught.value)
    blob = encode_bytes_tensor([SECRET.encode() + b"\xff"])
    with pytest.raises(TensorError) as caught:
        elements_of(blob, 1)
    assert SECRET not in str(caught.value)


def test_the_service_never_imports_the_client() -> None:
    """tritonclient (and the gevent under it) is a test dependency only."""
    client_roots = ("tritonclient", "gevent", "geventhttpclient")
    code = (
        "import sys, service.app, service.v2.routes\n"
        f"print(sorted(n for n in sys.modules if n.split('.')[0] in {client_roots!r}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == "[]"
    imported = set()
    for path in (REPO / "service").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported.isdisjoint(client_roots)
