"""The app factory and its lifespan: load bundle -> runtime -> warm-up -> batcher -> ready."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service import __version__, api, v2
from service.bundle import load_bundle
from service.errors import install_error_handlers
from service.logs import AccessLog
from service.middleware import RequestMiddleware, RequestRecorder
from service.predict_asgi import PredictFastPath
from service.predictor import Predictor
from service.runtime import ModelRuntime, RuntimeOptions
from service.settings import Settings
from service.state import Services
from service.worker_metrics import publish_every

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
            variant=settings.precision,
        ),
    )
    runtime.warm_up()
    return runtime


def create_app(settings: Settings | None = None, runtime: ModelRuntime | None = None) -> FastAPI:
    """Build the app. Nothing is loaded until the lifespan starts (``with TestClient(app)``
    or the server); pass ``runtime`` to serve a model that is already loaded."""
    settings = settings or Settings()
    svc = Services(settings)
    logs_requests = settings.access_log and settings.log_level in ("debug", "info")
    access_log = AccessLog() if logs_requests else None

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
        batcher, lifecycle = predictor.batcher, svc.lifecycle
        svc.metrics.track(lambda: batcher.queued_items, lambda: lifecycle.in_flight, lambda: lifecycle.ready)
        manifest = loaded.bundle.manifest
        served = manifest.files[loaded.model_file].sha256
        svc.metrics.set_model(manifest.name, manifest.version, served, manifest.labels)
        svc.lifecycle.mark_ready()
        log.info("ready", extra={"model": manifest.name, "version": manifest.version, "path": str(loaded.bundle.path)})
        pages = svc.shared_pages
        publisher = asyncio.create_task(publish_every(pages)) if pages is not None else None
        try:
            yield
        finally:
            svc.lifecycle.begin_drain()
            await svc.lifecycle.wait_idle(settings.shutdown_grace_s)
            await predictor.batcher.stop()
            if publisher is not None and pages is not None:
                publisher.cancel()
                with contextlib.suppress(OSError):
                    pages.publish()  # the final counts, kept in the sum after this worker exits
            if access_log is not None:
                access_log.flush()
            log.info("stopped")

    app = TextserveApp(
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
    recorder = RequestRecorder(svc.metrics, access_log)
    framework = RequestMiddleware(functools.partial(FastAPI.__call__, app), recorder)
    app.entry = PredictFastPath(framework, svc, recorder) if settings.fast_path else framework
    return app


class TextserveApp(FastAPI):
    """FastAPI, entered through ``entry``: request bookkeeping (id, metrics, access log) and
    the lean POST /predict run before the framework's own middleware stack, which on one
    core costs a fifth of a /predict request's CPU; every other route goes on to it."""

    entry: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry(scope, receive, send)

