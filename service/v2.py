"""The Open Inference Protocol (KServe V2) routes beside /predict, with Triton's binary
tensor data and classification extensions.

Handlers only deal with HTTP: the same checks as /predict (API key and readiness for
inference, the body size limit), the codec for the wire format, ``run_inference`` for the
model (so V2 and /predict texts share the batcher, its limits and its metrics).

Health answers follow the protocol: 200 for true and 400 for false, with an empty body.
The request's ``Content-Type`` is not checked: a binary body is not JSON, and the official
client sends none.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import __version__
from service.api import json_response, services
from service.checks import check_api_key, check_ready, read_body
from service.errors import BadRequest, NotFound, Unavailable, UnsupportedMediaType
from service.inference import run_inference
from service.schemas import COMMON_ERROR_DESCRIPTIONS, EXAMPLE_TEXTS, error_responses
from service.state import Services
from service.v2_codec import (
    HEADER_LENGTH,
    TensorError,
    encode_infer_response,
    parse_header_length,
    parse_infer_request,
)
from service.v2_model import build_outputs, model_metadata, plan_outputs, texts_of

SERVER_NAME = "textserve"
EXTENSIONS = ["binary_tensor_data", "classification"]
BINARY = "application/octet-stream"


def served_model(svc: Services, name: str, version: str | None) -> str:
    """The served version's string if ``name`` (and ``version``, when given) is the served
    model; 404 otherwise, 503 while no model is loaded."""
    manifest = svc.manifest
    if manifest is None:
        raise Unavailable("model is not loaded yet", code="not_ready")
    served = str(manifest.version)
    if name != manifest.name:
        raise NotFound(f"unknown model; the served model is {manifest.name!r}")
    if version is not None and version != served:
        raise NotFound(f"unknown version of model {manifest.name!r}; the served version is {served}")
    return served


def empty(status: int) -> Response:
    return Response(status_code=status)


# -- health and metadata --------------------------------------------------------------------


async def server_metadata() -> Response:
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


async def server_live() -> Response:
    return empty(200)


async def server_ready(request: Request) -> Response:
    return empty(200 if services(request).lifecycle.ready else 400)


async def _model_ready(request: Request, name: str, version: str | None) -> Response:
    svc = services(request)
    if svc.manifest is not None:
        served_model(svc, name, version)
    return empty(200 if svc.lifecycle.ready else 400)


async def _model_metadata(request: Request, name: str, version: str | None) -> Response:
    svc = services(request)
    served_model(svc, name, version)
    manifest = svc.manifest
    assert manifest is not None
    return json_response(model_metadata(manifest.name, manifest.version, manifest.labels))


# -- inference ------------------------------------------------------------------------------


async def _infer(request: Request, name: str, version: str | None) -> Response:
    svc = services(request)
    settings = svc.settings
    check_api_key(svc, request)
    check_ready(svc)
    served = served_model(svc, name, version)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType("compressed request bodies are not supported; send it uncompressed")
    labels = svc.predictor.labels
    async with svc.deadlines.clock(request.receive) as clock:
        body = await read_body(request, settings.max_body_bytes)
        clock.body_read()
        try:
            parsed = parse_infer_request(body, parse_header_length(request.headers.get(HEADER_LENGTH), len(body)))
            texts = texts_of(parsed, max_texts=settings.max_texts_per_request, max_chars=settings.max_text_chars)
            plans = plan_outputs(parsed, len(labels))
        except TensorError as exc:
            raise BadRequest(str(exc)) from None
        predictions = await run_inference(svc, request.scope, texts)
    content, header_length = encode_infer_response(
        name, served, parsed.id, build_outputs(plans, predictions, labels)
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type=BINARY, headers={HEADER_LENGTH: str(header_length)})


# FastAPI takes path parameters from the signature, so each route has its own small handler.


async def model_ready(request: Request, model_name: str) -> Response:
    return await _model_ready(request, model_name, None)


async def model_version_ready(request: Request, model_name: str, model_version: str) -> Response:
    return await _model_ready(request, model_name, model_version)


async def model_metadata_route(request: Request, model_name: str) -> Response:
    return await _model_metadata(request, model_name, None)


async def model_version_metadata(request: Request, model_name: str, model_version: str) -> Response:
    return await _model_metadata(request, model_name, model_version)


async def infer(request: Request, model_name: str) -> Response:
    """Classify the texts of the BYTES input ``text``."""
    return await _infer(request, model_name, None)


async def infer_version(request: Request, model_name: str, model_version: str) -> Response:
    """Classify the texts of the BYTES input ``text`` with this version of the model."""
    return await _infer(request, model_name, model_version)


ERRORS = {
    **COMMON_ERROR_DESCRIPTIONS,
    400: "Malformed request, or a tensor that does not fit the model",
    404: "Unknown model or version",
    415: "Compressed body",
}


# The handlers read their own body (JSON, or JSON then binary tensor data), so OpenAPI gets
# the request body by hand.
INFER_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"example": {"id": "42", "inputs": [{
        "name": "text", "datatype": "BYTES", "shape": [2], "data": EXAMPLE_TEXTS}]}},
    BINARY: {"schema": {"type": "string", "format": "binary", "description":
        f"The JSON request ({HEADER_LENGTH} bytes), then each binary input's data"}},
}}}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"])
    health: dict[int | str, dict[str, Any]] = {200: {"description": "true"}, 400: {"description": "false"}}

    def get(path: str, handler: Any, summary: str, responses: dict[int | str, dict[str, Any]],
            empty: bool = False) -> None:
        # Health answers are the status alone, with an empty body, as the protocol says.
        extra: dict[str, Any] = {"response_class": Response} if empty else {}
        router.add_api_route(path, handler, methods=["GET"], summary=summary, responses=responses, **extra)

    get("", server_metadata, "Server metadata", {})
    get("/health/live", server_live, "Server live", health, empty=True)
    get("/health/ready", server_ready, "Server ready", health, empty=True)
    model, version = "/models/{model_name}", "/models/{model_name}/versions/{model_version}"
    ready = {**health, **error_responses(ERRORS, 404)}
    get(model + "/ready", model_ready, "Model ready", ready, empty=True)
    get(version + "/ready", model_version_ready, "Model version ready", ready, empty=True)
    get(model, model_metadata_route, "Model metadata", error_responses(ERRORS, 404, 503))
    get(version, model_version_metadata, "Model version metadata", error_responses(ERRORS, 404, 503))
    for path, handler in ((model, infer), (version, infer_version)):
        router.add_api_route(
            path + "/infer", handler, methods=["POST"], summary="Inference",
            responses=error_responses(ERRORS, 400, 401, 404, 413, 415, 503, 504), openapi_extra=INFER_BODY,
        )
    return router
