"""The engine: one loaded model behind admission. ``start()`` loads and warms the model and
starts the batcher; ``predict(texts)`` admits, tokenizes, queues and runs; ``stop()`` drains.
Every transport (the /predict route, V2 over HTTP) calls ``predict`` and nothing below it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from service.bundle.format import Manifest, load_bundle
from service.bundle.options import RuntimeOptions
from service.bundle.runtime import ModelRuntime
from service.engine.admission import Admission, Overloaded, ShuttingDown
from service.engine.batcher import BatcherClosedError, QueueFullError
from service.engine.predictor import Prediction, Predictor
from service.observability.metrics import Metrics
from service.settings import Settings

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


class Engine:
    """Texts in, predictions out. ``runtime`` serves a model that is already loaded."""

    def __init__(self, settings: Settings, metrics: Metrics, runtime: ModelRuntime | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.admission = Admission()
        self._runtime = runtime
        self._predictor: Predictor | None = None
        self.manifest: Manifest | None = None
        self.model_ref: dict[str, Any] = {}

    @property
    def predictor(self) -> Predictor:
        if self._predictor is None:
            raise RuntimeError("model not loaded")
        return self._predictor

    @property
    def labels(self) -> list[str]:
        return self.predictor.labels

    async def start(self) -> None:
        """Load (off the event loop), warm up, start the batcher, then admit requests."""
        settings = self.settings
        runtime = self._runtime if self._runtime is not None else await asyncio.to_thread(load_runtime, settings)
        predictor = Predictor(
            runtime,
            max_batch_size=settings.max_batch_size,
            max_delay=settings.max_batch_delay_ms / 1000,
            max_queue_size=settings.max_queue_size,
            observer=self.metrics,
        )
        predictor.batcher.start()
        self._predictor = predictor
        manifest = self.manifest = runtime.bundle.manifest
        self.model_ref = {"name": manifest.name, "version": manifest.version}
        admission, batcher = self.admission, predictor.batcher
        self.metrics.track(lambda: batcher.queued_items, lambda: admission.in_flight, lambda: admission.ready)
        self.metrics.queue_capacity.set(batcher.max_queue_size)
        served = manifest.files[runtime.model_file].sha256
        self.metrics.set_model(manifest.name, manifest.version, served, manifest.labels)
        admission.mark_ready()
        log.info("ready", extra={"model": manifest.name, "version": manifest.version, "path": str(runtime.bundle.path)})

    def begin_drain(self) -> None:
        """Refuse new requests from now on; those accepted go on."""
        self.admission.begin_drain()

    async def stop(self) -> None:
        """Drain: let accepted requests finish (up to the grace period), then stop the batcher."""
        self.begin_drain()
        await self.admission.wait_idle(self.settings.shutdown_grace_s)
        if self._predictor is not None:
            await self._predictor.batcher.stop()
        self.metrics.untrack()
        log.info("stopped")

    def check_ready(self) -> None:
        """Raise NotReady or ShuttingDown now, before the caller reads a body."""
        try:
            self.admission.check()
        except ShuttingDown:
            self.metrics.rejected.labels("draining").inc()
            raise

    async def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predictions for ``texts``, in order; raises the EngineError a client should see."""
        admission = self.admission
        admission.enter()
        try:
            predictions = await self.predictor.predict(texts)
        except QueueFullError:
            self.metrics.rejected.labels("queue_full").inc()
            raise Overloaded("server is overloaded; retry shortly") from None
        except BatcherClosedError:
            self.metrics.rejected.labels("draining").inc()
            raise ShuttingDown("server is shutting down") from None
        finally:
            admission.leave()
        counters = self.metrics.predictions_by_label
        for p in predictions:
            counters[p.label].inc()
        return predictions
