"""Prometheus metrics: one registry per app, so two apps (or two tests) never share counts.

The four metrics a request touches (requests, request latency, queue wait, predictions by
label) are kept by ``LoopFamily``: updated only on the event loop, where every request's
bookkeeping runs, so a plain add does what prometheus-client's children do with a lock per
update and a linear search of the buckets. prometheus-client still owns the registry and the
exposition: the families are its custom collectors, and the page is the same. Per request,
prometheus-client's two observations and two increments took ~27,000 instructions, 7% of
the request's CPU in-process (``bench/instructions.py``). Everything else, touched once per
batch or less, stays prometheus-client's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The *_created series double the page for no use here (process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]


class LoopCounter:
    """One series of a counter; no lock: updated and read on the event loop only."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.value += amount


class LoopHistogram:
    """One series of a histogram; no lock: updated and read on the event loop only."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self._bounds = list(bounds)
        self.counts = [0] * (len(self._bounds) + 1)  # the last is +Inf's own
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self._bounds, amount)] += 1  # the first bound >= amount: "le"
        self.sum += amount


class LoopFamily(Collector):
    """A counter or histogram, by label values, exposed through prometheus-client's registry."""

    def __init__(
        self,
        kind: str,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = (),
        *,
        registry: CollectorRegistry,
    ) -> None:
        if kind not in ("counter", "histogram"):
            raise ValueError(kind)
        self.kind = kind
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.buckets = sorted(b for b in buckets if b != float("inf"))  # +Inf is always added
        self._children: dict[tuple[str, ...], LoopCounter | LoopHistogram] = {}
        registry.register(self)

    def labels(self, *values: str) -> Any:
        """The series for these label values (made on first use, then kept)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            child = LoopCounter() if self.kind == "counter" else LoopHistogram(self.buckets)
            self._children[values] = child
        return child

    def collect(self) -> Iterator[Metric]:
        family: CounterMetricFamily | HistogramMetricFamily
        if self.kind == "counter":
            family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, counter in self._children.items():
                assert isinstance(counter, LoopCounter)
                family.add_metric(list(values), counter.value)
        else:
            family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
            for values, histogram in self._children.items():
                assert isinstance(histogram, LoopHistogram)
                cumulative, total = [], 0
                for bound, count in zip([*map(floatToGoString, self.buckets), "+Inf"], histogram.counts, strict=True):
                    total += count
                    cumulative.append((bound, float(total)))
                family.add_metric(list(values), cumulative, histogram.sum)
        yield family


class Metrics:
    """The service's metric objects; also the batcher's observer."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = LoopFamily(
            "counter", "textserve_requests", "HTTP requests answered, by route and status (probes excluded).",
            ["route", "method", "status"], registry=r,
        )
        self.request_seconds = LoopFamily(
            "histogram", "textserve_request_duration_seconds", "Time from request start to response end.",
            ["route"], LATENCY_BUCKETS, registry=r,
        )
        self.queue_wait_seconds = LoopFamily(
            "histogram", "textserve_queue_wait_seconds", "Time a request's texts waited before their batch ran.",
            buckets=LATENCY_BUCKETS, registry=r,
        ).labels()
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
        self.predictions = LoopFamily(
            "counter", "textserve_predictions", "Texts classified, by predicted label.", ["label"], registry=r,
        )
        self.model_info = Gauge(
            "textserve_model_info", "The served model (always 1).",
            ["name", "version", "onnx_sha256"], registry=r,
        )
        self.in_flight = Gauge(
            "textserve_requests_in_flight", "Inference requests accepted and not yet answered.", registry=r,
        )
        self.predictions_by_label: dict[str, LoopCounter] = {}
        self.ready = Gauge("textserve_ready", "1 when the model is loaded and not draining.", registry=r)

    def set_model(self, name: str, version: int, onnx_sha256: str, labels: Sequence[str]) -> None:
        self.model_info.labels(name, str(version), onnx_sha256).set(1)
        # Every label's series exists from the start; the children are kept for the hot path.
        self.predictions_by_label = {label: self.predictions.labels(label) for label in labels}

    def track(
        self, queued_items: Callable[[], float], in_flight: Callable[[], float], ready: Callable[[], bool]
    ) -> None:
        """Gauges read from the live state when scraped, instead of being set per request."""
        self.queue_depth_gauge.set_function(queued_items)
        self.in_flight.set_function(in_flight)
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

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
