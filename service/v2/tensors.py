"""The Open Inference Protocol's tensors, whatever carries them (HTTP's JSON and binary
data, or gRPC's messages): the types both transports decode requests into and encode
responses from, and the rules for BYTES elements, so the model's rules (``model.py``) are
written once for both.

A client's mistake is a :class:`TensorError` whose message says what is wrong and where, and
never repeats the client's data. Every size a client declares is checked against the bytes
that are really there before anything is sliced, so a lying length costs nothing.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    """The elements in the binary format (each a 4-byte little-endian length and its bytes):
    an HTTP input's slice of the binary part, or gRPC's ``raw_input_contents``."""
    elements: Sequence[bytes] | None = None
    """The BYTES elements one by one (gRPC's ``contents.bytes_contents``)."""

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



def refuse_shared_memory(parameters: dict[str, Any]) -> None:
    if "shared_memory_region" in parameters:
        raise TensorError("shared memory is not supported; send tensor data in the request")


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
    """The elements of a BYTES input as text: bytes (binary or one by one) are decoded as
    strict UTF-8, JSON elements must be strings. Their number must match the shape."""
    count, name = tensor.element_count, tensor.name
    if tensor.raw is not None or tensor.elements is not None:
        elements: Sequence[bytes]
        if tensor.raw is not None:
            elements = decode_bytes_tensor(tensor.raw, count, name)
        else:
            elements = tensor.elements or []
            if len(elements) != count:
                raise TensorError(
                    f"input {shown(name)}: shape {list(tensor.shape)} needs {count} elements,"
                    f" {len(elements)} were sent"
                )
        texts = []
        for index, element in enumerate(elements):
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


def encode_bytes_tensor(elements: Sequence[bytes]) -> bytes:
    return b"".join(_LENGTH.pack(len(e)) + e for e in elements)


def tensor_bytes(out: ResponseOutput) -> bytes:
    """An output's elements in the binary format: BYTES as length-prefixed UTF-8, numbers as
    little-endian values, row-major."""
    if isinstance(out.data, list):
        return encode_bytes_tensor([s.encode("utf-8") for s in out.data])
    return np.ascontiguousarray(out.data, dtype=out.data.dtype.newbyteorder("<")).tobytes()
