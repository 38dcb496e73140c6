"""HTTP routes. Each handler checks the HTTP matters, calls the core, shapes the reply."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from service.checks import JSON, check_api_key, check_json_content_type, check_ready, parse_texts, read_body
from service.errors import Unavailable
from service.inference import run_inference
from service.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from service.schemas import COMMON_ERROR_DESCRIPTIONS, Health, ModelInfo, PredictResponse, error_responses
from service.state import Services


def services(request: Request) -> Services:
    svc: Services = request.app.state.textserve
    return svc


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type=JSON)


# -- routes -------------------------------------------------------------------------------


async def predict(request: Request) -> Response:
    """Labels and per-label scores for each text, in input order. Texts from concurrent
    requests are batched together on the server."""
    svc = services(request)
    check_api_key(svc, request)
    check_ready(svc)
    check_json_content_type(request)
    async with svc.deadlines.clock(request.receive) as clock:
        body = await read_body(request, svc.settings.max_body_bytes)
        clock.body_read()
        texts = parse_texts(svc.request_model, body)
        predictions = await run_inference(svc, request.scope, texts)
    return json_response({"model": svc.model_ref, "predictions": [p.to_dict() for p in predictions]})


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
    return Response(svc.metrics_page(), media_type=METRICS_CONTENT_TYPE)


async def model_info(request: Request) -> Response:
    """Labels, version, max length, test metrics and dataset of the served bundle."""
    svc = services(request)
    if svc.manifest is None:
        raise Unavailable("model is not loaded yet", code="not_ready")
    return json_response(svc.manifest.public())


ERRORS = {
    **COMMON_ERROR_DESCRIPTIONS,
    400: "Malformed JSON or empty body",
    408: "Body not received within the request timeout",
    415: "Body is not JSON",
    422: "Body is JSON but not a valid request (the details say where)",
}


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
        response_model=PredictResponse, responses=error_responses(ERRORS, 400, 401, 408, 413, 415, 422, 503, 504),
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
        responses=error_responses(ERRORS, 503),
    )
    return router
