"""Prometheus metrics: one registry per app, so two apps (or two tests) never share counts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The *_created series double the page for no use here (process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The service's metric objects; also the batcher's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "textserve_requests", "HTTP requests answered, by route and status (probes excluded).",
            ["route", "method", "status"], registry=r,
        )
        self.request_seconds = Histogram(
            "textserve_request_duration_seconds", "Time from request start to response end.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "textserve_queue_wait_seconds", "Time a request's texts waited before their batch ran.",
            buckets=LATENCY_BUCKETS, registry=r,
        )
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
        self.queue_depth_gauge = Gauge(
            "textserve_queue_depth", "Texts waiting for the model.", registry=r,
        )
        self.rejected = Counter(
            "textserve_rejected_requests", "Requests refused before inference, by reason.",
            ["reason"], registry=r,
        )
        self.predictions = Counter(
            "textserve_predictions", "Texts classified, by predicted label.", ["label"], registry=r,
        )
        self.model_info = Gauge(
            "textserve_model_info", "The served model (always 1).",
            ["name", "version", "onnx_sha256"], registry=r,
        )
        self.in_flight = Gauge(
            "textserve_requests_in_flight", "Inference requests accepted and not yet answered.", registry=r,
        )
        self.predictions_by_label: dict[str, Counter] = {}
        self.ready = Gauge("textserve_ready", "1 when the model is loaded and not draining.", registry=r)

    def set_model(self, name: str, version: int, onnx_sha256: str, labels: Sequence[str]) -> None:
        self.model_info.labels(name, str(version), onnx_sha256).set(1)
        # Every label's series exists from the start; the children are kept, since labels()
        # per prediction costs a lock and a lookup on the hot path.
        self.predictions_by_label = {label: self.predictions.labels(label) for label in labels}

    def track(self, queued_items: Callable[[], float], in_flight: Callable[[], float]) -> None:
        """Gauges read from the live state when scraped, instead of being set per request."""
        self.queue_depth_gauge.set_function(queued_items)
        self.in_flight.set_function(in_flight)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- BatchObserver ---------------------------------------------------------------------

    def batch_started(self, size: int, queue_waits: Sequence[float]) -> None:
        self.batch_size.observe(size)
        for wait in queue_waits:
            self.queue_wait_seconds.observe(wait)

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None:
        self.inference_seconds.observe(seconds)
        if not ok:
            self.batch_failures.inc()
