"""The Open Inference Protocol (KServe V2) over HTTP, with Triton's binary tensor data and
classification extensions.

Handlers only deal with HTTP: the same checks as /predict (API key and readiness for
inference, the body size limit), the codec for the wire format, the engine for the model
(so V2 and /predict texts share the batcher, its limits and its metrics). Each versioned
route and its unversioned twin share one handler.

Health answers follow the protocol: 200 for true and 400 for false, with an empty body.
The request's ``Content-Type`` is not checked: a binary body is not JSON, and the official
client sends none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service import __version__
from service.asgi.body import read_body
from service.asgi.checks import verify_api_key
from service.asgi.context import HttpContext, context_of
from service.asgi.envelope import TEXTS_KEY
from service.asgi.errors import (
    COMMON_ERROR_DESCRIPTIONS,
    BadRequest,
    NotFound,
    UnsupportedMediaType,
    error_responses,
)
from service.asgi.responses import EXAMPLE_TEXTS, empty, json_response
from service.v2.codec import HEADER_LENGTH, encode_infer_response, parse_header_length, parse_infer_request
from service.v2.lookup import ServedModel, UnknownModel, find_model
from service.v2.model import build_outputs, model_metadata, plan_outputs, texts_of
from service.v2.tensors import TensorError

SERVER_NAME = "textserve"
EXTENSIONS = ["binary_tensor_data", "classification"]
BINARY = "application/octet-stream"
MODEL = "/models/{model_name}"
VERSION = "/models/{model_name}/versions/{model_version}"
PREFIX = "/v2"
PROBES = frozenset(
    PREFIX + path for path in ("/health/live", "/health/ready", MODEL + "/ready", VERSION + "/ready")
)


def served_model(ctx: HttpContext, request: Request) -> ServedModel:
    """The model the path names (and version, when given); 404 if it is not served, 503
    while no model is loaded."""
    params = request.path_params
    try:
        return find_model(ctx.engine, params["model_name"], params.get("model_version"))
    except UnknownModel as exc:
        raise NotFound(str(exc)) from None


# -- health and metadata --------------------------------------------------------------------


async def server_metadata() -> Response:
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


async def server_live() -> Response:
    return empty(200)


async def server_ready(request: Request) -> Response:
    return empty(200 if context_of(request).engine.admission.ready else 400)


async def model_ready(request: Request) -> Response:
    ctx = context_of(request)
    if ctx.engine.manifest is not None:
        served_model(ctx, request)
    return empty(200 if ctx.engine.admission.ready else 400)


async def model_metadata_route(request: Request) -> Response:
    model = served_model(context_of(request), request)
    return json_response(model_metadata(model.name, model.version, model.labels))


# -- inference ------------------------------------------------------------------------------


async def infer(request: Request) -> Response:
    """Classify the texts of the BYTES input ``text``."""
    ctx = context_of(request)
    settings, engine, headers = ctx.settings, ctx.engine, request.headers
    verify_api_key(ctx.api_key, headers.get("authorization"))
    engine.check_ready()
    served = served_model(ctx, request).version
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType("compressed request bodies are not supported; send it uncompressed")
    labels = engine.labels
    async with ctx.deadlines.clock(request.receive) as clock:
        body = await read_body(request.receive, headers.get("content-length"), settings.max_body_bytes)
        clock.body_read()
        try:
            parsed = parse_infer_request(body, parse_header_length(headers.get(HEADER_LENGTH), len(body)))
            texts = texts_of(parsed, max_texts=settings.max_texts_per_request, max_chars=settings.max_text_chars)
            plans = plan_outputs(parsed, len(labels))
        except TensorError as exc:
            raise BadRequest(str(exc)) from None
        request.scope[TEXTS_KEY] = len(texts)
        predictions = await engine.predict(texts)
    content, header_length = encode_infer_response(
        request.path_params["model_name"], served, parsed.id, build_outputs(plans, predictions, labels)
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type=BINARY, headers={HEADER_LENGTH: str(header_length)})


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


def _path_parameters(path: str) -> list[dict[str, Any]]:
    """OpenAPI's description of the path's parameters, which the handlers read from
    ``request.path_params`` (one handler serves a route with a version and one without)."""
    names = [name for name in ("model_name", "model_version") if "{" + name + "}" in path]
    return [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names]


Handler = Callable[..., Awaitable[Response]]


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["Open Inference Protocol (V2)"])
    health: dict[int | str, dict[str, Any]] = {200: {"description": "true"}, 400: {"description": "false"}}

    def route(path: str, handler: Handler, summary: str, responses: dict[int | str, dict[str, Any]],
              method: str = "GET", empty: bool = False, extra: dict[str, Any] | None = None) -> None:
        # Health answers are the status alone, with an empty body, as the protocol says.
        response_class: dict[str, Any] = {"response_class": Response} if empty else {}
        openapi = {**(extra or {}), "parameters": _path_parameters(path)} if "{" in path else extra
        router.add_api_route(path, handler, methods=[method], summary=summary, responses=responses,
                             openapi_extra=openapi, **response_class)

    route("", server_metadata, "Server metadata", {})
    route("/health/live", server_live, "Server live", health, empty=True)
    route("/health/ready", server_ready, "Server ready", health, empty=True)
    ready = {**health, **error_responses(ERRORS, 404)}
    for path, what in ((MODEL, "Model"), (VERSION, "Model version")):
        route(path + "/ready", model_ready, f"{what} ready", ready, empty=True)
        route(path, model_metadata_route, f"{what} metadata", error_responses(ERRORS, 404, 503))
        route(path + "/infer", infer, "Inference", error_responses(ERRORS, 400, 401, 404, 413, 415, 503, 504),
              method="POST", extra=INFER_BODY)
    return router
