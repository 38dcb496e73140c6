"""The app factory and its lifespan: load bundle -> runtime -> warm-up -> batcher -> ready."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import __version__, api, v2
from service.bundle import load_bundle
from service.errors import install_error_handlers
from service.logs import AccessLog
from service.middleware import RequestMiddleware
from service.predict_asgi import PredictFastPath
from service.predictor import Predictor
from service.runtime import ModelRuntime, RuntimeOptions
from service.settings import Settings
from service.state import Services

log = logging.getLogger("textserve")


def load_runtime(settings: Settings) -> ModelRuntime:
    """Verify the bundle, open it in onnxruntime and warm it up; BundleError if it cannot be."""
    bundle = load_bundle(settings.model_path)
    runtime = ModelRuntime(
        bundle,
        RuntimeOptions(
            intra_op_threads=settings.intra_op_threads,
            inter_op_threads=settings.inter_op_threads,
            optimization=settings.graph_optimization,
        ),
    )
    runtime.warm_up()
    return runtime


def create_app(settings: Settings | None = None, runtime: ModelRuntime | None = None) -> FastAPI:
    """Build the app. Nothing is loaded until the lifespan starts (``with TestClient(app)``
    or the server); pass ``runtime`` to serve a model that is already loaded."""
    settings = settings or Settings()
    svc = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = runtime if runtime is not None else await asyncio.to_thread(load_runtime, settings)
        predictor = Predictor(
            loaded,
            max_batch_size=settings.max_batch_size,
            max_delay=settings.max_batch_delay_ms / 1000,
            max_queue_size=settings.max_queue_size,
            observer=svc.metrics,
        )
        predictor.batcher.start()
        svc.attach(predictor)
        manifest = loaded.bundle.manifest
        svc.metrics.set_model(manifest.name, manifest.version, manifest.files["model.onnx"].sha256, manifest.labels)
        svc.lifecycle.mark_ready()
        log.info("ready", extra={"model": manifest.name, "version": manifest.version, "path": str(loaded.bundle.path)})
        try:
            yield
        finally:
            svc.lifecycle.begin_drain()
            await svc.lifecycle.wait_idle(settings.shutdown_grace_s)
            await predictor.batcher.stop()
            log.info("stopped")

    app = FastAPI(
        title="textserve",
        version=__version__,
        summary="Text classification with an ONNX model: raw texts in, labels and scores out.",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.textserve = svc
    install_error_handlers(app)
    app.include_router(api.build_router(svc))
    app.include_router(v2.build_router())
    if settings.fast_path:
        app.add_middleware(PredictFastPath, svc=svc)
    logs_requests = settings.access_log and settings.log_level in ("debug", "info")
    # Added last, so outermost: it sees every request, the fast path's included.
    app.add_middleware(RequestMiddleware, metrics=svc.metrics, access_log=AccessLog() if logs_requests else None)
    return app

