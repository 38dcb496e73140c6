"""The Open Inference Protocol (KServe V2) over HTTP, with Triton's binary tensor data
extension: pure functions from request bytes to tensors (``tensors.py``) and from tensors to
response bytes.

Nothing here knows HTTP, the batcher or the model. A client's mistake is a
:class:`TensorError` whose message says what is wrong and where, and never repeats the
client's data. Every size a client declares is checked against the bytes that are really
there before anything is sliced, so a lying length costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from service.v2.tensors import (
    InferRequest,
    RequestInput,
    RequestOutput,
    ResponseOutput,
    TensorError,
    refuse_shared_memory,
    shown,
    tensor_bytes,
)

HEADER_LENGTH = "Inference-Header-Content-Length"


# -- request ------------------------------------------------------------------------------


def parse_header_length(value: str | None, body_size: int) -> int | None:
    """The JSON part's length from the ``Inference-Header-Content-Length`` header; None when
    absent (the whole body is JSON)."""
    if value is None:
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise TensorError(f"{HEADER_LENGTH} must be a non-negative integer")
    length = int(value)
    if length == 0 or length > body_size:
        raise TensorError(
            f"{HEADER_LENGTH} is {length} but the body has {body_size} bytes"
        )
    return length


def parse_infer_request(body: bytes, header_length: int | None) -> InferRequest:
    """The inference request in ``body``: its JSON part, then each binary input's bytes."""
    view = memoryview(body)
    json_part = view if header_length is None else view[:header_length]
    binary = view[len(json_part):]
    try:
        obj = orjson.loads(json_part)
    except orjson.JSONDecodeError as exc:
        raise TensorError(f"malformed JSON inference request: {exc}") from None
    if not isinstance(obj, dict):
        raise TensorError("the inference request must be a JSON object")
    request_id = obj.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise TensorError("'id' must be a string")
    parameters = _parameters(obj.get("parameters"), "the request")
    raw_inputs = obj.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise TensorError("'inputs' must be a non-empty list")
    inputs = _inputs(raw_inputs, binary)
    raw_outputs = obj.get("outputs")
    if raw_outputs is not None and not isinstance(raw_outputs, list):
        raise TensorError("'outputs' must be a list")
    outputs = [_output(o) for o in raw_outputs] if raw_outputs else None
    return InferRequest(request_id, parameters, inputs, outputs)


def _parameters(value: object, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TensorError(f"'parameters' of {where} must be an object")
    refuse_shared_memory(value)
    return value


def _inputs(raw_inputs: list[Any], binary: memoryview) -> list[RequestInput]:
    """The inputs, each binary one given its slice: the declared sizes must add up to
    exactly the bytes after the JSON, and are checked before any slicing."""
    specs = [_input_spec(item) for item in raw_inputs]
    declared = sum(size for *_, size in specs if size is not None)
    if declared != len(binary):
        raise TensorError(
            f"the inputs declare {declared} bytes of binary data but {len(binary)} bytes follow"
            f" the JSON (its length is given by {HEADER_LENGTH})"
        )
    inputs, offset = [], 0
    for name, datatype, shape, parameters, data, size in specs:
        raw = None
        if size is not None:
            raw = bytes(binary[offset : offset + size])
            offset += size
        inputs.append(RequestInput(name, datatype, shape, parameters, data, raw))
    return inputs


def _input_spec(item: object) -> tuple[str, str, tuple[int, ...], dict[str, Any], Any, int | None]:
    if not isinstance(item, dict):
        raise TensorError("each input must be an object")
    name = item.get("name")
    if not isinstance(name, str):
        raise TensorError("each input needs a string 'name'")
    datatype = item.get("datatype")
    if not isinstance(datatype, str):
        raise TensorError(f"input {shown(name)} needs a string 'datatype'")
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise TensorError(f"input {shown(name)}: 'shape' must be a list of non-negative integers")
    parameters = _parameters(item.get("parameters"), f"input {shown(name)}")
    size = parameters.get("binary_data_size")
    has_data = "data" in item
    if size is None and not has_data:
        raise TensorError(f"input {shown(name)} has neither 'data' nor binary data")
    if size is not None:
        if has_data:
            raise TensorError(f"input {shown(name)} has both 'data' and binary data")
        if not _is_count(size):
            raise TensorError(f"input {shown(name)}: 'binary_data_size' must be a non-negative integer")
    return name, datatype, tuple(shape), parameters, item.get("data"), size


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _output(item: object) -> RequestOutput:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise TensorError("each requested output must be an object with a string 'name'")
    name = item["name"]
    return RequestOutput(name, _parameters(item.get("parameters"), f"output {shown(name)}"))
# -- response -----------------------------------------------------------------------------


def encode_infer_response(
    model_name: str, model_version: str, request_id: str | None, outputs: Sequence[ResponseOutput]
) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the length of its JSON part (for
    the ``Inference-Header-Content-Length`` header); binary data follows in output order."""
    described, blobs = [], []
    for out in outputs:
        tensor: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(out.shape)}
        if out.binary:
            blob = tensor_bytes(out)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = out.data if isinstance(out.data, list) else out.data.ravel().tolist()
        described.append(tensor)
    response: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = described
    header = orjson.dumps(response)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)

