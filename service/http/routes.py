"""textserve's own HTTP routes: /predict, health, metrics and the served model. Each handler
deals with HTTP only and hands off to the engine."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.asgi.context import context_of
from service.asgi.errors import COMMON_ERROR_DESCRIPTIONS, Unavailable, error_responses
from service.asgi.responses import JSON, json_response
from service.http.predict import PATH as PREDICT_PATH
from service.http.predict import Predict
from service.http.schemas import Health, ModelInfo, PredictResponse
from service.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

# Probes are not traffic: no request metrics, and no access-log line unless they fail.
PROBES = frozenset({"/health", "/health/live", "/metrics"})


async def health(request: Request) -> Response:
    """200 with the model once it is loaded and warmed up; 503 while loading or draining."""
    engine = context_of(request).engine
    if engine.admission.ready:
        return json_response({"status": "ready", "model": engine.model_ref})
    return json_response({"status": engine.admission.phase.value}, status=503)


async def live() -> Response:
    """200 while the process can answer at all."""
    return json_response({"status": "alive"})


async def metrics(request: Request) -> Response:
    return Response(context_of(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)


async def model_info(request: Request) -> Response:
    """Labels, version, max length, test metrics and dataset of the served bundle."""
    manifest = context_of(request).engine.manifest
    if manifest is None:
        raise Unavailable("model is not loaded yet", code="not_ready")
    return json_response(manifest.public())


ERRORS = {
    **COMMON_ERROR_DESCRIPTIONS,
    400: "Malformed JSON or empty body",
    408: "Body not received within the request timeout",
    415: "Body is not JSON",
    422: "Body is JSON but not a valid request (the details say where)",
}


def build_router(predict: Predict) -> APIRouter:
    """The routes, documented with this app's request limits.

    The envelope answers POST /predict itself (``Predict``); the route here documents it,
    with its body schema given by hand since ``Predict`` reads its own body.
    """

    async def predict_route(request: Request) -> Response:
        """Labels and per-label scores for each text, in input order. Texts from concurrent
        requests are batched together on the server."""
        return Response(await predict(request.scope, request.receive), media_type=JSON)

    examples = {
        "many": {"value": {"texts": ["great flight!", "lost my bag again"]}},
        "one": {"value": {"text": "great flight!"}},
    }
    router = APIRouter()
    router.add_api_route(
        PREDICT_PATH, predict_route, methods=["POST"], summary="Classify texts",
        response_model=PredictResponse, responses=error_responses(ERRORS, 400, 401, 408, 413, 415, 422, 503, 504),
        openapi_extra={"requestBody": {"required": True, "content": {
            JSON: {"schema": predict.request_model.model_json_schema(), "examples": examples}}}},
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
