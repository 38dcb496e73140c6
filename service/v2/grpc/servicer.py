"""``inference.GRPCInferenceService``: the Open Inference Protocol's RPCs, with Triton's
repository RPCs, on the same engine as HTTP.

Each RPC deals with gRPC only: the API key, the deadline, the messages. The model's rules
(``service/v2/model.py``), the model lookup (``service/v2/lookup.py``) and the engine are
the ones HTTP V2 uses, so a gRPC text and an HTTP text wait in the same queue and can share
a batch. Every other RPC of Triton's service answers UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import hmac
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import grpc

from service import __version__
from service.engine.admission import NotReady
from service.v2 import lookup
from service.v2.grpc import codec
from service.v2.grpc.calls import Call, CallError, rpc, unimplemented
from service.v2.grpc.generated import grpc_service_pb2 as pb
from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from service.v2.model import build_outputs, plan_outputs, texts_of

if TYPE_CHECKING:
    from service.engine.engine import Engine
    from service.observability.requests import RequestRecorder
    from service.settings import Settings

SERVER_NAME = "textserve"
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "model_repository(unload_dependents)"]
IMPLEMENTED = frozenset({
    "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
    "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload",
})


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(
        self, settings: Settings, engine: Engine, recorder: RequestRecorder, tracing: Any = None
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.recorder = recorder
        self.tracing = tracing  # service.observability.tracing.Tracing, when tracing is on
        self._hold = settings.grpc_max_batch_delay_ms / 1000
        key = settings.api_key
        self._key = key.get_secret_value().encode() if key is not None else None

    # -- health and metadata ----------------------------------------------------------------

    @rpc("ServerLive")
    async def ServerLive(self, request: pb.ServerLiveRequest, call: Call) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @rpc("ServerReady")
    async def ServerReady(self, request: pb.ServerReadyRequest, call: Call) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.engine.ready)

    @rpc("ModelReady")
    async def ModelReady(self, request: pb.ModelReadyRequest, call: Call) -> pb.ModelReadyResponse:
        """Ready when that model (version) serves; NOT_FOUND if it is unknown."""
        try:
            lookup.find_model(self.engine, request.name, request.version)
        except NotReady:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self.engine.admission.ready)

    @rpc("ServerMetadata")
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, call: Call) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    @rpc("ModelMetadata")
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, call: Call) -> pb.ModelMetadataResponse:
        model = lookup.find_model(self.engine, request.name, request.version)
        return codec.metadata_response(model.name, model.versions, model.labels)

    # -- inference ----------------------------------------------------------------------------

    @rpc("ModelInfer")
    async def ModelInfer(self, request: pb.ModelInferRequest, call: Call) -> pb.ModelInferResponse:
        """Classify the texts of the BYTES input ``text``."""
        settings, engine = self.settings, self.engine
        self._verify_key(call)
        engine.check_ready()
        model = lookup.find_model(engine, request.model_name, request.model_version)
        parsed = codec.infer_request(request)
        texts = texts_of(parsed, max_texts=settings.max_texts_per_request, max_chars=settings.max_text_chars)
        plans = plan_outputs(parsed, len(model.labels))
        call.texts = len(texts)
        version = lookup.parse_version(request.model_version)
        answer = await self._within_deadline(engine.predict(texts, model.name, version, self._hold), call)
        call.model = answer.key
        with self.tracing.span("encode", **{"textserve.texts": len(texts)}) if self.tracing else nullcontext():
            outputs = build_outputs(plans, answer.predictions, answer.labels)
            return codec.infer_response(answer.model, str(answer.version), parsed.id, outputs)

    def _verify_key(self, call: Call) -> None:
        """UNAUTHENTICATED unless ``authorization: Bearer <key>``; the same for missing and wrong."""
        if self._key is None:
            return
        scheme, _, token = (call.metadata("authorization") or "").partition(" ")
        supplied = token.strip().encode() if scheme.lower() == "bearer" else b""
        if not hmac.compare_digest(supplied, self._key):
            raise CallError(grpc.StatusCode.UNAUTHENTICATED, "missing or invalid API key")

    async def _within_deadline(self, work: Any, call: Call) -> Any:
        """``work`` within the request timeout or the call's own deadline, whichever is
        sooner; a call whose deadline has already passed is not run."""
        timeout = self.settings.request_timeout_s
        remaining = call.context.time_remaining()
        client_first = remaining is not None and remaining < timeout
        if client_first:
            timeout = remaining
        if timeout <= 0:
            work.close()
            raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline had passed before it could run")
        try:
            async with asyncio.timeout(timeout):
                return await work
        except TimeoutError:
            if client_first:
                raise CallError(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline passed") from None
            self.engine.metrics.rejected.labels("timeout").inc()
            raise CallError(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"no answer within the request timeout ({timeout:g} s)"
            ) from None

    # -- model repository ---------------------------------------------------------------------

    @rpc("RepositoryIndex")
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, call: Call) -> pb.RepositoryIndexResponse:
        self._verify_key(call)
        entries = lookup.repository_index(self.engine, request.ready)
        return pb.RepositoryIndexResponse(models=[
            pb.RepositoryIndexResponse.ModelIndex(
                name=e["name"], version=e.get("version", ""), state=e["state"], reason=e["reason"]
            )
            for e in entries
        ])

    @rpc("RepositoryModelLoad")
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, call: Call
    ) -> pb.RepositoryModelLoadResponse:
        self._verify_key(call)
        await lookup.load_model(self.engine, request.model_name)
        return pb.RepositoryModelLoadResponse()

    @rpc("RepositoryModelUnload")
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, call: Call
    ) -> pb.RepositoryModelUnloadResponse:
        self._verify_key(call)
        await lookup.unload_model(self.engine, request.model_name)
        return pb.RepositoryModelUnloadResponse()


# Triton's other RPCs (streaming, statistics, shared memory, trace, log settings, config).
_SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
for _method in _SERVICE.methods:
    if _method.name not in IMPLEMENTED:
        setattr(InferenceServicer, _method.name, unimplemented(_method.name))
