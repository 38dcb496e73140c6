"""The committed gRPC modules are what the vendored protos give today, and Triton's service,
which textserve serves, carries the Open Inference Protocol's own definition unchanged."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from service.v2.grpc import stubs
from service.v2.grpc.generated import grpc_service_pb2 as pb


def test_the_committed_stubs_are_current(tmp_path: Path) -> None:
    """If this fails: ``python -m service.v2.grpc.stubs`` and commit the result."""
    fresh = {p.name: p.read_text() for p in stubs.generate(tmp_path)}
    committed = {name: (stubs.GENERATED / name).read_text() for name in stubs.KEPT}
    stale = [name for name in stubs.KEPT if fresh[name] != committed[name]]
    assert stale == []


def open_inference_protocol() -> descriptor_pb2.FileDescriptorProto:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "oip.pb"
        stubs.protoc(f"--descriptor_set_out={out}", str(stubs.PROTOS / "open_inference_grpc.proto"))
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (only,) = files.file
    return only


def served() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(proto)
    return proto


def messages(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, items: list[descriptor_pb2.DescriptorProto]) -> None:
        for message in items:
            found[prefix + message.name] = message
            walk(prefix + message.name + ".", list(message.nested_type))

    walk("", list(file.message_type))
    return found


# The protocol's optional model properties (a map) are not in Triton's message. textserve
# has none to send, and a client built from the protocol's proto reads an absent map as
# empty, so the wire is the same. Any other difference fails.
KNOWN_GAPS = {"ModelMetadataResponse.properties", "ModelMetadataResponse.PropertiesEntry"}


def test_every_message_of_the_protocol_is_served_with_the_same_fields() -> None:
    ours, theirs = messages(served()), messages(open_inference_protocol())
    assert "ModelInferRequest.InferInputTensor" in theirs
    gaps = set()
    for name, message in theirs.items():
        if name not in ours:
            gaps.add(name)
            continue
        mine = {f.number: f for f in ours[name].field}
        for field in message.field:
            if field.number not in mine:
                gaps.add(f"{name}.{field.name}")
                continue
            twin = mine[field.number]
            assert (twin.name, twin.type, twin.label) == (field.name, field.type, field.label), f"{name}.{field.name}"
            assert twin.type_name.split(".")[-1] == field.type_name.split(".")[-1], f"{name}.{field.name}"
    assert gaps == KNOWN_GAPS


def test_every_rpc_of_the_protocol_is_served_with_the_same_messages() -> None:
    protocol = open_inference_protocol()
    assert protocol.package == served().package == "inference"
    (service,) = protocol.service
    ours = {m.name: m for m in served().service[0].method}
    assert served().service[0].name == service.name == "GRPCInferenceService"
    for method in service.method:
        assert (ours[method.name].input_type, ours[method.name].output_type) == (method.input_type, method.output_type)


@pytest.mark.parametrize("name", ["ModelInfer", "RepositoryIndex", "RepositoryModelLoad", "ModelStreamInfer"])
def test_the_servicer_answers_every_rpc_of_the_service(name: str) -> None:
    from service.v2.grpc.servicer import IMPLEMENTED, InferenceServicer

    method = getattr(InferenceServicer, name)
    assert method.__name__ == name
    assert (name in IMPLEMENTED) == hasattr(method, "__wrapped__")
