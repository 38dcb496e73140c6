"""``create_app(settings)``: the engine, textserve's own HTTP API and the Open Inference
Protocol's (over HTTP, and over gRPC unless ``TEXTSERVE_GRPC_PORT`` is 0), composed. Nothing
is loaded until the lifespan runs, which is ``engine.start()`` / ``engine.stop()``; the
process starts the gRPC server (``app.state.grpc``) once HTTP listens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from service import __version__
from service.asgi.context import HttpContext
from service.asgi.envelope import RequestEnvelope
from service.asgi.errors import install_error_handlers
from service.bundle.runtime import ModelRuntime
from service.engine.engine import Engine
from service.http import routes as http_routes
from service.http.predict import PATH as PREDICT_PATH
from service.http.predict import Predict
from service.observability.access_log import AccessLog
from service.observability.metrics import Metrics
from service.observability.requests import RequestRecorder
from service.settings import Settings
from service.v2 import routes as v2_routes
from service.v2.grpc import PROBES as GRPC_PROBES


def create_app(settings: Settings | None = None, runtime: ModelRuntime | None = None) -> FastAPI:
    """Build the app. Nothing is loaded until the lifespan starts (``with TestClient(app)``
    or the server); pass ``runtime`` to serve a model that is already loaded."""
    settings = settings or Settings()
    metrics = Metrics()
    tracing = _tracing() if settings.tracing else None
    engine = Engine(settings, metrics, runtime, tracing)
    logs_requests = settings.access_log and settings.log_level in ("debug", "info")
    access_log = AccessLog() if logs_requests else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()
            if access_log is not None:
                access_log.flush()
            if tracing is not None:
                tracing.shutdown()

    app = TextserveApp(
        title="textserve",
        version=__version__,
        summary="Text classification with an ONNX model: raw texts in, labels and scores out.",
        lifespan=lifespan,
        redoc_url=None,
        # FastAPI's own OpenTelemetry instrumentation checks its providers on every request;
        # textserve traces itself (TEXTSERVE_TRACING), so it is off.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    ctx = HttpContext(settings, engine, metrics, tracing)
    app.state.textserve = ctx
    app.state.engine = engine
    install_error_handlers(app)
    predict = Predict(ctx)
    app.include_router(http_routes.build_router(predict))
    app.include_router(v2_routes.build_router())
    recorder = RequestRecorder(metrics, access_log, probes=http_routes.PROBES | v2_routes.PROBES | GRPC_PROBES)
    app.state.grpc = None
    if settings.grpc_port:
        from service.v2.grpc.server import GrpcService  # grpcio is loaded only when gRPC is on

        app.state.grpc = GrpcService(settings, engine, recorder, tracing)
    app.envelope = Middleware(
        RequestEnvelope, recorder=recorder, lean={("POST", PREDICT_PATH): predict}, tracing=tracing
    )
    return app


class TextserveApp(FastAPI):
    """FastAPI with the per-request envelope between the middleware added to it
    (``app.add_middleware``, which wraps the envelope and so runs on every route, the lean
    /predict included) and FastAPI's own stack (its error, telemetry and body-limit layers,
    then the router), which the lean /predict does not need: the envelope answers it and
    catches what escapes. Those four layers cost ~12,000 instructions of the ~310,000 of a
    /predict request (``bench/instructions.py``)."""

    envelope: Middleware

    def build_middleware_stack(self) -> ASGIApp:
        added, self.user_middleware = self.user_middleware, []
        try:
            app = self.envelope.cls(super().build_middleware_stack(), *self.envelope.args, **self.envelope.kwargs)
        finally:
            self.user_middleware = added
        for cls, args, kwargs in reversed(added):
            app = cls(app, *args, **kwargs)
        return app


def _tracing() -> Any:
    """OpenTelemetry, imported only when tracing is on (the ``[tracing]`` extra)."""
    from service.observability.tracing import Tracing

    return Tracing()
