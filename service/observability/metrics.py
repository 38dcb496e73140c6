"""Prometheus metrics: one registry per app, so two apps (or two tests) never share counts.

In one process, the series every request touches are ``loop_metrics`` families and the
gauges are read from the live state when scraped. With several worker processes
(``PROMETHEUS_MULTIPROC_DIR`` set, which ``TEXTSERVE_WORKERS`` > 1 does), every metric is
prometheus-client's own in its multiprocess mode: each worker writes its values to files in
that directory and a scrape of any worker merges them all; gauges say how they merge
(``livesum``, ``livemin``, ``livemax``) and are written from the live state every
``GAUGE_REFRESH_S`` and on each scrape, since another worker's scrape reads them from files.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from service.observability.loop_metrics import LoopFamily

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
GAUGE_REFRESH_S = 1.0
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The *_created series double the page for no use here (process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The service's metric objects; also the batcher's observer."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_DIR_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = self._counter(
            "textserve_requests",
            "Requests answered, by protocol (http, grpc), route or gRPC method, and status (probes excluded).",
            ["protocol", "route", "method", "status"],
        )
        self.request_seconds = self._histogram(
            "textserve_request_duration_seconds", "Time from request start to response end.",
            ["protocol", "route"], LATENCY_BUCKETS,
        )
        queue_wait = self._histogram(
            "textserve_queue_wait_seconds", "Time a request's texts waited before their batch ran.",
            [], LATENCY_BUCKETS,
        )
        # prometheus-client's metric without labels is its own series; a LoopFamily's is labels().
        self.queue_wait_seconds = queue_wait if self.multiprocess_dir else queue_wait.labels()
        self.predictions = self._counter("textserve_predictions", "Texts classified, by predicted label.", ["label"])
        r = self.registry
        self.inference_seconds = Histogram(
            "textserve_inference_duration_seconds", "Time of one onnxruntime batch run (padding included).",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "textserve_batch_size", "Texts per onnxruntime run.", buckets=BATCH_BUCKETS, registry=r,
        )
        self.batch_failures = Counter(
            "textserve_batch_failures", "onnxruntime runs that raised an error.", registry=r,
        )
        self.rejected = Counter(
            "textserve_rejected_requests", "Requests refused before inference, by reason.",
            ["reason"], registry=r,
        )
        self.queue_depth_gauge = Gauge(
            "textserve_queue_depth", "Texts waiting for the model.", registry=r, multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "textserve_requests_in_flight", "Inference requests accepted and not yet answered.", registry=r,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "textserve_ready", "1 when the model is loaded and not draining (every worker, with several).",
            registry=r, multiprocess_mode="livemin",
        )
        self.model_info = Gauge(
            "textserve_model_info", "The served model (always 1).",
            ["name", "version", "onnx_sha256"], registry=r, multiprocess_mode="livemax",
        )
        self.predictions_by_label: dict[str, Any] = {}
        self._gauges: list[tuple[Gauge, Callable[[], float]]] = []
        self._refresher: asyncio.Task[None] | None = None

    def _counter(self, name: str, documentation: str, labels: Sequence[str]) -> Any:
        if self.multiprocess_dir:
            return Counter(name, documentation, labels, registry=self.registry)
        return LoopFamily("counter", name, documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> Any:
        if self.multiprocess_dir:
            return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)
        return LoopFamily("histogram", name, documentation, labels, buckets, registry=self.registry)

    def set_model(self, name: str, version: int, onnx_sha256: str, labels: Sequence[str]) -> None:
        self.model_info.labels(name, str(version), onnx_sha256).set(1)
        # Every label's series exists from the start; the children are kept for the hot path.
        self.predictions_by_label = {label: self.predictions.labels(label) for label in labels}

    def track(
        self, queued_items: Callable[[], float], in_flight: Callable[[], float], ready: Callable[[], bool]
    ) -> None:
        """Gauges that follow the live state, instead of being set per request (call on the
        event loop; ``untrack`` when it stops)."""
        self._gauges = [
            (self.queue_depth_gauge, queued_items),
            (self.in_flight, in_flight),
            (self.ready, lambda: 1.0 if ready() else 0.0),
        ]
        if not self.multiprocess_dir:
            for gauge, read in self._gauges:
                gauge.set_function(read)
            return
        self._refresh()
        self._refresher = asyncio.get_running_loop().create_task(self._refresh_every(GAUGE_REFRESH_S))

    def untrack(self) -> None:
        """Write the gauges one last time (a draining worker reads not ready) and stop."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self.multiprocess_dir:
            self._refresh()

    def _refresh(self) -> None:
        for gauge, read in self._gauges:
            gauge.set(read())

    async def _refresh_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            with contextlib.suppress(OSError):  # a full disk must not stop serving
                self._refresh()

    def render(self) -> bytes:
        if not self.multiprocess_dir:
            return generate_latest(self.registry)
        self._refresh()
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    # -- BatchObserver ---------------------------------------------------------------------

    def batch_started(self, size: int, queue_waits: Sequence[float]) -> None:
        self.batch_size.observe(size)
        for wait in queue_waits:
            self.queue_wait_seconds.observe(wait)

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None:
        self.inference_seconds.observe(seconds)
        if not ok:
            self.batch_failures.inc()
