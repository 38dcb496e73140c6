"""The Open Inference Protocol (KServe V2) over HTTP, with Triton's binary tensor data
extension: pure functions from request bytes to tensors and from tensors to response bytes.

Nothing here knows HTTP, the batcher or the model. A client's mistake is a
:class:`TensorError` whose message says what is wrong and where, and never repeats the
client's data. Every size a client declares is checked against the bytes that are really
there before anything is sliced, so a lying length costs nothing.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

HEADER_LENGTH = "Inference-Header-Content-Length"
_LENGTH = struct.Struct("<I")
# Names and datatypes are repeated in errors only when they look like names.
_PRINTABLE_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")


class TensorError(ValueError):
    """A request the protocol cannot accept; the message is safe to show the client."""


@dataclass(frozen=True)
class RequestInput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: dict[str, Any]
    data: Any = None
    """The JSON ``data`` as parsed (flat or nested lists), or None when sent as binary."""
    raw: bytes | None = None
    """The input's slice of the binary part, when it declared ``binary_data_size``."""

    @property
    def element_count(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class RequestOutput:
    name: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None
    """None (or an empty list in the request): every output, with default settings."""


@dataclass(frozen=True)
class ResponseOutput:
    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[str]
    """Numbers as an array (any shape: it is sent flat), BYTES elements as strings."""
    binary: bool


def shown(name: object) -> str:
    """A client-supplied name quoted for an error message, if it looks like a name."""
    return repr(name) if isinstance(name, str) and _PRINTABLE_NAME.match(name) else "(unprintable name)"


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
    if "shared_memory_region" in value:
        raise TensorError("shared memory is not supported; send tensor data in the body")
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


def wants_binary(output: RequestOutput | None, request_parameters: dict[str, Any]) -> bool:
    """An output's ``binary_data`` if given, else the request's ``binary_data_output``."""
    if output is not None and "binary_data" in output.parameters:
        flag = output.parameters["binary_data"]
        where = f"output {shown(output.name)}: 'binary_data'"
    else:
        flag = request_parameters.get("binary_data_output", False)
        where = "'binary_data_output'"
    if not isinstance(flag, bool):
        raise TensorError(f"{where} must be true or false")
    return flag


def decode_bytes_tensor(raw: bytes, count: int, name: str) -> list[bytes]:
    """``count`` BYTES elements, each a 4-byte little-endian length and that many bytes,
    filling ``raw`` exactly."""
    elements, offset, end = [], 0, len(raw)
    for index in range(count):
        if end - offset < _LENGTH.size:
            raise TensorError(
                f"input {shown(name)}: binary data ends before element {index} of {count}"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > end - offset:
            raise TensorError(
                f"input {shown(name)}: element {index} declares {length} bytes but only"
                f" {end - offset} remain"
            )
        elements.append(raw[offset : offset + length])
        offset += length
    if offset != end:
        raise TensorError(
            f"input {shown(name)}: {end - offset} bytes left over after its {count} elements"
        )
    return elements


def string_elements(tensor: RequestInput) -> list[str]:
    """The elements of a BYTES input as text: binary elements are decoded as strict UTF-8,
    JSON elements must be strings. Their number must match the shape."""
    count, name = tensor.element_count, tensor.name
    if tensor.raw is not None:
        texts = []
        for index, element in enumerate(decode_bytes_tensor(tensor.raw, count, name)):
            try:
                texts.append(element.decode("utf-8"))
            except UnicodeDecodeError:
                raise TensorError(f"input {shown(name)}: element {index} is not valid UTF-8") from None
        return texts
    flat = _flatten(tensor.data, depth=max(1, len(tensor.shape)), name=name)
    if len(flat) != count:
        raise TensorError(
            f"input {shown(name)}: shape {list(tensor.shape)} needs {count} elements, 'data' has {len(flat)}"
        )
    for index, element in enumerate(flat):
        if not isinstance(element, str):
            raise TensorError(f"input {shown(name)}: element {index} is not a string")
    return flat


def _flatten(data: object, depth: int, name: str) -> list[Any]:
    """Row-major elements of ``data``, given flat or nested at most ``depth`` levels."""
    if not isinstance(data, list):
        raise TensorError(f"input {shown(name)}: 'data' must be a list")
    level: list[Any] = data
    for _ in range(depth - 1):
        if not any(isinstance(item, list) for item in level):
            break
        if not all(isinstance(item, list) for item in level):
            raise TensorError(f"input {shown(name)}: 'data' mixes lists and elements")
        level = [element for row in level for element in row]
    return level


# -- response -----------------------------------------------------------------------------


def encode_bytes_tensor(elements: Sequence[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(e)) + e for e in elements)


def encode_infer_response(
    model_name: str, model_version: str, request_id: str | None, outputs: Sequence[ResponseOutput]
) -> tuple[bytes, int | None]:
    """The response body and, when some output is binary, the length of its JSON part (for
    the ``Inference-Header-Content-Length`` header); binary data follows in output order."""
    described, blobs = [], []
    for out in outputs:
        tensor: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(out.shape)}
        if out.binary:
            blob = _tensor_bytes(out)
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


def _tensor_bytes(out: ResponseOutput) -> bytes:
    if isinstance(out.data, list):
        return encode_bytes_tensor([s.encode("utf-8") for s in out.data])
    return np.ascontiguousarray(out.data, dtype=out.data.dtype.newbyteorder("<")).tobytes()
