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
from contextlib import nullcontext
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service import __version__
from service.asgi.body import read_body
from service.asgi.checks import verify_api_key
from service.asgi.context import HttpContext, context_of
from service.asgi.envelope import MODEL_KEY, TEXTS_KEY
from service.asgi.errors import BadRequest, NotFound, UnsupportedMediaType
from service.asgi.openapi import COMMON_ERROR_DESCRIPTIONS, error_responses, path_parameters
from service.asgi.responses import EXAMPLE_TEXTS, empty, json_response
from service.engine.admission import InvalidName, NotReady
from service.v2 import lookup
from service.v2.codec import HEADER_LENGTH, encode_infer_response, parse_header_length, parse_infer_request
from service.v2.lookup import ServedModel, find_model
from service.v2.model import build_outputs, model_metadata, plan_outputs, texts_of
from service.v2.tensors import TensorError

SERVER_NAME = "textserve"
EXTENSIONS = ["binary_tensor_data", "classification", "model_repository", "model_repository(unload_dependents)"]
BINARY = "application/octet-stream"
MODEL = "/models/{model_name}"
VERSION = "/models/{model_name}/versions/{model_version}"
PREFIX = "/v2"
PROBES = frozenset(
    PREFIX + path for path in ("/health/live", "/health/ready", MODEL + "/ready", VERSION + "/ready")
)


def _version(request: Request) -> int | None:
    return lookup.parse_version(request.path_params.get("model_version"))


def served_model(ctx: HttpContext, request: Request) -> ServedModel:
    """The version that answers for the model (and version) the path names: 404 for an
    unknown model or version, 400 for a name that is not one, 503 while none is ready."""
    params = request.path_params
    return find_model(ctx.engine, params["model_name"], params.get("model_version"))


# -- health and metadata --------------------------------------------------------------------


async def server_metadata() -> Response:
    return json_response({"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS})


async def server_live() -> Response:
    return empty(200)


async def server_ready(request: Request) -> Response:
    return empty(200 if context_of(request).engine.ready else 400)


async def model_ready(request: Request) -> Response:
    """200 when the model (version) serves; 400 while it does not; 404 if it is unknown."""
    engine = context_of(request).engine
    try:
        engine.route(request.path_params["model_name"], _version(request))
    except NotReady:
        return empty(400)
    except InvalidName as exc:  # here 400 means "not ready": a name that cannot exist is unknown
        raise NotFound(str(exc)) from None
    return empty(200 if engine.admission.ready else 400)


async def model_metadata_route(request: Request) -> Response:
    model = served_model(context_of(request), request)
    return json_response(model_metadata(model.name, model.versions, model.labels))


# -- inference ------------------------------------------------------------------------------


async def infer(request: Request) -> Response:
    """Classify the texts of the BYTES input ``text``."""
    ctx = context_of(request)
    settings, engine, headers = ctx.settings, ctx.engine, request.headers
    verify_api_key(ctx.api_key, headers.get("authorization"))
    engine.check_ready()
    served = served_model(ctx, request)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType("compressed request bodies are not supported; send it uncompressed")
    n_labels = len(served.labels)
    async with ctx.deadlines.clock(request.receive) as clock:
        body = await read_body(request.receive, headers.get("content-length"), settings.max_body_bytes)
        clock.body_read()
        try:
            parsed = parse_infer_request(body, parse_header_length(headers.get(HEADER_LENGTH), len(body)))
            texts = texts_of(parsed, max_texts=settings.max_texts_per_request, max_chars=settings.max_text_chars)
            plans = plan_outputs(parsed, n_labels)
        except TensorError as exc:
            raise BadRequest(str(exc)) from None
        request.scope[TEXTS_KEY] = len(texts)
        answer = await engine.predict(texts, served.name, _version(request))
    request.scope[MODEL_KEY] = answer.key
    with ctx.tracing.span("encode", **{"textserve.texts": len(texts)}) if ctx.tracing else nullcontext():
        content, header_length = encode_infer_response(
            answer.model, str(answer.version), parsed.id, build_outputs(plans, answer.predictions, answer.labels)
        )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(content, media_type=BINARY, headers={HEADER_LENGTH: str(header_length)})


# -- the model repository extension (Triton's) ------------------------------------------------


async def _json_body(ctx: HttpContext, request: Request, allowed: set[str]) -> dict[str, Any]:
    """The small optional JSON body of a repository request: ``{}`` when empty."""
    body = await read_body(request.receive, request.headers.get("content-length"), ctx.settings.max_body_bytes)
    if not body.strip():
        return {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict) or set(data) - allowed:
        raise BadRequest(f"the body must be a JSON object with at most {sorted(allowed)}")
    return data


async def repository_index(request: Request) -> Response:
    """Every model of the repository, each version with its state and the reason for it."""
    ctx = context_of(request)
    verify_api_key(ctx.api_key, request.headers.get("authorization"))
    ready = (await _json_body(ctx, request, {"ready"})).get("ready", False)
    if not isinstance(ready, bool):
        raise BadRequest("'ready' must be true or false")
    return json_response(lookup.repository_index(ctx.engine, ready))


async def repository_load(request: Request) -> Response:
    """Load (or reload) a model: explicit control mode only."""
    ctx = context_of(request)
    verify_api_key(ctx.api_key, request.headers.get("authorization"))
    parameters = (await _json_body(ctx, request, {"parameters"})).get("parameters") or {}
    if not isinstance(parameters, dict) or parameters:
        raise BadRequest("load takes no parameters here: the model's files and config.json come from the repository")
    await lookup.load_model(ctx.engine, request.path_params["model_name"])
    return empty(200)


async def repository_unload(request: Request) -> Response:
    """Unload every version of a model: explicit control mode only."""
    ctx = context_of(request)
    verify_api_key(ctx.api_key, request.headers.get("authorization"))
    parameters = (await _json_body(ctx, request, {"parameters"})).get("parameters") or {}
    if not isinstance(parameters, dict) or set(parameters) - {"unload_dependents"}:
        raise BadRequest("unload takes only the 'unload_dependents' parameter")
    await lookup.unload_model(ctx.engine, request.path_params["model_name"])
    return empty(200)


ERRORS = {
    **COMMON_ERROR_DESCRIPTIONS,
    409: "Not allowed in this model control mode",
    400: "Malformed request, a tensor that does not fit the model, or a model name or version that is not one",
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


Handler = Callable[..., Awaitable[Response]]


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["Open Inference Protocol (V2)"])
    health: dict[int | str, dict[str, Any]] = {200: {"description": "true"}, 400: {"description": "false"}}

    def route(path: str, handler: Handler, summary: str, responses: dict[int | str, dict[str, Any]],
              method: str = "GET", empty: bool = False, extra: dict[str, Any] | None = None) -> None:
        # Health answers are the status alone, with an empty body, as the protocol says.
        response_class: dict[str, Any] = {"response_class": Response} if empty else {}
        parameters = path_parameters(path, "model_name", "model_version")
        openapi = {**(extra or {}), "parameters": parameters} if parameters else extra
        router.add_api_route(path, handler, methods=[method], summary=summary, responses=responses,
                             openapi_extra=openapi, **response_class)

    route("", server_metadata, "Server metadata", {})
    route("/health/live", server_live, "Server live", health, empty=True)
    route("/health/ready", server_ready, "Server ready", health, empty=True)
    ready = {**health, **error_responses(ERRORS, 404)}
    for path, what in ((MODEL, "Model"), (VERSION, "Model version")):
        route(path + "/ready", model_ready, f"{what} ready", ready, empty=True)
        route(path, model_metadata_route, f"{what} metadata", error_responses(ERRORS, 400, 404, 503))
        route(path + "/infer", infer, "Inference", error_responses(ERRORS, 400, 401, 404, 413, 415, 503, 504),
              method="POST", extra=INFER_BODY)
    route("/repository/index", repository_index, "Repository index", error_responses(ERRORS, 400, 401),
          method="POST")
    for action, handler in (("load", repository_load), ("unload", repository_unload)):
        route(f"/repository/models/{{model_name:path}}/{action}", handler, f"Model {action}",
              {200: {"description": "done"}, **error_responses(ERRORS, 400, 401, 404, 409)}, method="POST",
              empty=True)
    return router
