"""gRPC's messages to the protocol's tensors and back (``service/v2/tensors.py``), so the
model's rules (``service/v2/model.py``) are the ones HTTP V2 applies.

A BYTES input arrives either in ``raw_input_contents`` (one entry per input, each element
a 4-byte little-endian length and its bytes: what ``tritonclient.grpc`` sends) or in
``contents.bytes_contents`` (one entry per element). Outputs go back in
``raw_output_contents``, as Triton sends them; ``tritonclient.grpc`` and KServe's client read
both forms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from service.v2.grpc.generated import grpc_service_pb2 as pb
from service.v2.model import model_metadata
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

# Every field of InferTensorContents but bytes_contents: numbers have no place in a BYTES input.
_NOT_BYTES = frozenset(f.name for f in pb.InferTensorContents.DESCRIPTOR.fields) - {"bytes_contents"}


def parameters(entries: Mapping[str, pb.InferParameter]) -> dict[str, Any]:
    """A parameter map as plain values (bool, int, str or float; None when none is set)."""
    values = {}
    for key, parameter in entries.items():
        which = parameter.WhichOneof("parameter_choice")
        values[key] = None if which is None else getattr(parameter, which)
    refuse_shared_memory(values)
    return values


def infer_request(message: pb.ModelInferRequest) -> InferRequest:
    """The request's tensors; TensorError if its contents do not fit together."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise TensorError(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; it needs one per input"
        )
    inputs = [_input(tensor, raw[index] if raw else None) for index, tensor in enumerate(message.inputs)]
    outputs = [RequestOutput(o.name, parameters(o.parameters)) for o in message.outputs] or None
    return InferRequest(message.id or None, parameters(message.parameters), inputs, outputs)


def _input(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> RequestInput:
    name, datatype = tensor.name, tensor.datatype
    shape, params = tuple(tensor.shape), parameters(tensor.parameters)
    if raw is not None:
        if tensor.HasField("contents"):
            raise TensorError(f"input {shown(name)} has both contents and raw_input_contents")
        return RequestInput(name, datatype, shape, params, raw=raw)
    if datatype != "BYTES":  # the model's rules refuse it, by its datatype
        return RequestInput(name, datatype, shape, params, elements=())
    contents = tensor.contents
    if any(field.name in _NOT_BYTES for field, _ in contents.ListFields()):
        raise TensorError(
            f"input {shown(name)}: BYTES elements go in contents.bytes_contents or raw_input_contents"
        )
    return RequestInput(name, datatype, shape, params, elements=contents.bytes_contents)


def infer_response(
    model_name: str, model_version: str, request_id: str | None, outputs: Sequence[ResponseOutput]
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name=model_name, model_version=model_version, id=request_id or "")
    for out in outputs:
        response.outputs.add(name=out.name, datatype=out.datatype, shape=out.shape)
        response.raw_output_contents.append(tensor_bytes(out))
    return response


def metadata_response(name: str, versions: Sequence[int], labels: Sequence[str]) -> pb.ModelMetadataResponse:
    """The model's metadata, as HTTP V2 gives it."""
    described = model_metadata(name, versions, labels)
    return pb.ModelMetadataResponse(
        name=described["name"], versions=described["versions"], platform=described["platform"],
        inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in described["inputs"]],
        outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in described["outputs"]],
    )
