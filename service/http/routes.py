"""textserve's own HTTP routes: /predict, health, metrics and the served model. Each handler
deals with HTTP only and hands off to the engine."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.asgi.context import context_of
from service.asgi.openapi import COMMON_ERROR_DESCRIPTIONS, error_responses, path_parameters
from service.asgi.responses import JSON, json_response
from service.engine.repository import check_version
from service.http.predict import PATH as PREDICT_PATH
from service.http.predict import Predict
from service.http.schemas import Health, ModelInfo, PredictResponse
from service.observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

# Probes are not traffic: no request metrics, and no access-log line unless they fail.
PROBES = frozenset({"/health", "/health/live", "/metrics"})


async def health(request: Request) -> Response:
    """200 with the default model once it is loaded and warmed up; 503 while loading or
    draining, or while the default model has no version that serves."""
    engine = context_of(request).engine
    if engine.ready:
        return json_response({"status": "ready", "model": engine.default_ref})
    phase = engine.admission.phase.value
    return json_response({"status": "unavailable" if phase == "ready" else phase}, status=503)


async def live() -> Response:
    """200 while the process can answer at all."""
    return json_response({"status": "alive"})


async def metrics(request: Request) -> Response:
    return Response(context_of(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)


async def model_info(request: Request) -> Response:
    """Labels, version, max length, test metrics and dataset of the default model's serving
    version."""
    return json_response(context_of(request).engine.manifest().public())


async def models(request: Request) -> Response:
    """Every model with its versions and their state (READY, LOADING, UNLOADING, UNAVAILABLE)."""
    return json_response({"models": context_of(request).engine.models_view()})


MODEL_PREDICT = "/models/{name:path}/predict"
MODEL_VERSION_PREDICT = "/models/{name}/versions/{version}/predict"


ERRORS = {
    **COMMON_ERROR_DESCRIPTIONS,
    400: "Malformed JSON or empty body, or a model name or version that is not one",
    404: "No such model or version",
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

    async def model_predict(request: Request) -> Response:
        """/predict for one model: its highest ready version, or the version in the path."""
        params = request.path_params
        version = check_version(params["version"]) if "version" in params else None
        return Response(await predict(request.scope, request.receive, params["name"], version), media_type=JSON)

    examples = {
        "many": {"value": {"texts": ["great flight!", "lost my bag again"]}},
        "one": {"value": {"text": "great flight!"}},
    }
    router = APIRouter()
    body = {"required": True, "content": {JSON: {"schema": predict.request_model.model_json_schema(),
                                                  "examples": examples}}}
    errors = error_responses(ERRORS, 400, 401, 408, 413, 415, 422, 503, 504)
    router.add_api_route(
        PREDICT_PATH, predict_route, methods=["POST"], summary="Classify texts", response_model=PredictResponse,
        responses=errors, openapi_extra={"requestBody": body},
    )
    # The versioned route first: the other's {name:path} takes any name, slashes included,
    # so that a name that is not one path segment gets its 400 rather than a 404.
    for path, summary in ((MODEL_VERSION_PREDICT, "Classify texts with one version of a model"),
                          (MODEL_PREDICT, "Classify texts with a model")):
        router.add_api_route(
            path, model_predict, methods=["POST"], summary=summary, response_model=PredictResponse,
            responses={**errors, **error_responses(ERRORS, 404)},
            openapi_extra={"requestBody": body, "parameters": path_parameters(path)},
        )
    router.add_api_route("/models", models, methods=["GET"], summary="Models and their versions")
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
