"""HTTP routes. Each handler checks the HTTP matters, calls the core, shapes the reply."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from service.batcher import BatcherClosedError, QueueFullError
from service.errors import (
    BadRequest,
    GatewayTimeout,
    InvalidInput,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    summarize,
    validation_details,
)
from service.lifecycle import Phase
from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.schemas import ErrorResponse, Health, ModelInfo, PredictResponse
from service.state import Services

JSON = "application/json"


def services(request: Request) -> Services:
    svc: Services = request.app.state.textserve
    return svc


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


# -- request checks (plain functions, used by every inference route) ----------------------


def check_api_key(svc: Services, request: Request) -> None:
    expected = svc.api_key
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    supplied = token.strip().encode() if scheme.lower() == "bearer" else b""
    # compare_digest takes as long for a wrong key as for a right one of the same length.
    if not hmac.compare_digest(supplied, expected):
        raise Unauthorized()


def check_ready(svc: Services) -> None:
    phase = svc.lifecycle.phase
    if phase is Phase.DRAINING:
        svc.metrics.rejected.labels("draining").inc()
        raise Unavailable("server is shutting down", code="shutting_down", close=True)
    if phase is not Phase.READY:
        raise Unavailable("model is not loaded yet", code="not_ready")


def check_json_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON and not (media_type.startswith("application/") and media_type.endswith("+json")):
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: {JSON}' (got {media_type or 'none'!r})"
            if len(media_type) < 100 else f"send the body as JSON with 'Content-Type: {JSON}'"
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_texts(svc: Services, body: bytes) -> list[str]:
    if not body.strip():
        raise BadRequest("request body is empty; send a JSON object with 'texts'")
    try:
        parsed = svc.request_model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if errors and errors[0]["type"] == "json_invalid":
            # "Invalid JSON: EOF while parsing a list at line 1 column 15": position, no input.
            reason = str(errors[0]["msg"]).removeprefix("Invalid JSON: ")
            raise BadRequest(f"malformed JSON body: {reason}") from None
        if errors and errors[0]["type"] == "model_type":
            raise InvalidInput("the body must be a JSON object with 'texts' or 'text'") from None
        details = validation_details(errors)
        raise InvalidInput(summarize(details), details=details) from None
    return parsed.all_texts()


async def run_inference(svc: Services, request: Request, texts: list[str]) -> list[dict[str, Any]]:
    """Admission, queueing and the timeout, shared by /predict and any other protocol."""
    request.scope["textserve.texts"] = len(texts)
    svc.lifecycle.enter()
    svc.metrics.in_flight.inc()
    try:
        async with asyncio.timeout(svc.settings.request_timeout_s):
            predictions = await svc.predictor.predict(texts)
    except QueueFullError:
        svc.metrics.rejected.labels("queue_full").inc()
        raise Unavailable("server is overloaded; retry shortly", code="overloaded") from None
    except BatcherClosedError:
        svc.metrics.rejected.labels("draining").inc()
        raise Unavailable("server is shutting down", code="shutting_down", close=True) from None
    except TimeoutError:
        svc.metrics.rejected.labels("timeout").inc()
        raise GatewayTimeout(
            f"no answer within the request timeout ({svc.settings.request_timeout_s:g} s)"
        ) from None
    finally:
        svc.lifecycle.leave()
        svc.metrics.in_flight.dec()
    counter = svc.metrics.predictions
    for p in predictions:
        counter.labels(p.label).inc()
    return [p.to_dict() for p in predictions]


# -- routes -------------------------------------------------------------------------------


async def predict(request: Request) -> Response:
    """Labels and per-label scores for each text, in input order. Texts from concurrent
    requests are batched together on the server."""
    svc = services(request)
    check_api_key(svc, request)
    check_ready(svc)
    check_json_content_type(request)
    texts = parse_texts(svc, await read_body(request, svc.settings.max_body_bytes))
    predictions = await run_inference(svc, request, texts)
    return json_response({"model": svc.model_ref, "predictions": predictions})


async def health(request: Request) -> Response:
    """200 with the model once it is loaded and warmed up; 503 while loading or draining."""
    svc = services(request)
    if svc.lifecycle.ready:
        return json_response({"status": "ready", "model": svc.model_ref})
    return json_response({"status": svc.lifecycle.phase.value}, status=503)


async def live() -> Response:
    """200 while the process can answer at all."""
    return json_response({"status": "alive"})


async def metrics(request: Request) -> Response:
    svc = services(request)
    svc.metrics.ready.set(1 if svc.lifecycle.ready else 0)
    return Response(svc.metrics.render(), media_type=METRICS_CONTENT_TYPE)


async def model_info(request: Request) -> Response:
    """Labels, version, max length, test metrics and dataset of the served bundle."""
    svc = services(request)
    if svc.manifest is None:
        raise Unavailable("model is not loaded yet", code="not_ready")
    return json_response(svc.manifest.public())


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Malformed JSON or empty body",
        401: "API key required and missing or wrong",
        413: "Body larger than the limit",
        415: "Body is not JSON",
        422: "Body is JSON but not a valid request (the details say where)",
        503: "Overloaded, loading or shutting down (see Retry-After)",
        504: "Not answered within the request timeout",
    }
    return {s: {"model": ErrorResponse, "description": text[s]} for s in statuses}


def build_router(svc: Services) -> APIRouter:
    """The routes, documented with this app's request limits.

    /predict reads its own body (size limit first, then one fast pydantic validation of the
    raw bytes), so its body schema is given to OpenAPI by hand.
    """
    request_schema = svc.request_model.model_json_schema()
    examples = {
        "many": {"value": {"texts": ["great flight!", "lost my bag again"]}},
        "one": {"value": {"text": "great flight!"}},
    }
    router = APIRouter()
    router.add_api_route(
        "/predict", predict, methods=["POST"], summary="Classify texts",
        response_model=PredictResponse, responses=_errors(400, 401, 413, 415, 422, 503, 504),
        openapi_extra={"requestBody": {"required": True, "content": {
            JSON: {"schema": request_schema, "examples": examples}}}},
    )
    router.add_api_route(
        "/health", health, methods=["GET"], summary="Readiness", response_model=Health,
        responses={503: {"model": Health, "description": "Loading or draining"}},
    )
    router.add_api_route("/health/live", live, methods=["GET"], summary="Liveness", response_model=Health)
    router.add_api_route(
        "/metrics", metrics, methods=["GET"], summary="Prometheus metrics", response_class=Response,
        responses={200: {"content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    router.add_api_route(
        "/model", model_info, methods=["GET"], summary="The served model", response_model=ModelInfo,
        responses=_errors(503),
    )
    return router
