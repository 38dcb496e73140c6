"""Prometheus metrics: one registry per app, so two apps (or two tests) never share counts.

Series about a model carry ``model`` and ``version`` labels, one set per loaded version:
they are made when a version is loaded and dropped when it is unloaded, so their number is
bounded by what is loaded. Requests that reached no model have empty ``model``/``version``.

The series every request touches are ``loop_metrics`` families; in one process the gauges
are read from the live state when scraped. With several worker processes
(``PROMETHEUS_MULTIPROC_DIR`` set, which ``TEXTSERVE_WORKERS`` > 1 does), the page is
prometheus-client's multiprocess mode: each worker writes its values to files in that
directory and a scrape of any worker merges them all; gauges say how they merge (``livesum``,
``livemin``, ``livemax``). Every ``REFRESH_S``, on each scrape and when a worker stops, a
worker writes its gauges from the live state and adds what its loop families gained to the
library's families, so another worker's scrape sees a worker's requests within a second.
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
LOAD_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST
REFRESH_S = 1.0
LOOP_METRICS = True  # False: the library's own children for every series (see loop_metrics)
MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
MODEL = ("model", "version")
# The *_created series double the page for no use here (process-wide switch).
disable_created_metrics()  # type: ignore[no-untyped-call]

Read = Callable[[], float]


class VersionMetrics:
    """The series of one loaded model version; the batch observer of its batcher."""

    def __init__(self, metrics: Metrics, name: str, version: int, labels: Sequence[str]) -> None:
        self.key = (name, str(version))
        self._metrics = metrics
        self.queue_wait = metrics.queue_wait_seconds.labels(*self.key)
        self.batch_size = metrics.batch_size.labels(*self.key)
        self.inference = metrics.inference_seconds.labels(*self.key)
        self.failures = metrics.batch_failures.labels(*self.key)
        # Every label's series exists from the start; the children are kept for the hot path.
        self.labels = list(labels)
        self.predictions_by_label = {label: metrics.predictions.labels(*self.key, label) for label in labels}

    def batch_started(self, size: int, queue_waits: Sequence[float]) -> None:
        self.batch_size.observe(size)
        for wait in queue_waits:
            self.queue_wait.observe(wait)

    def batch_finished(self, size: int, seconds: float, ok: bool) -> None:
        self.inference.observe(seconds)
        if not ok:
            self.failures.inc()


class Metrics:
    """The service's metric objects."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROC_DIR_ENV) or None
        self.registry = CollectorRegistry(auto_describe=True)
        self._flushes: list[tuple[LoopFamily, Any]] = []
        self.requests = self._counter(
            "textserve_requests",
            "Requests answered, by protocol (http, grpc), route or gRPC method, status and model (probes excluded).",
            ["protocol", "route", "method", "status", *MODEL],
        )
        self.request_seconds = self._histogram(
            "textserve_request_duration_seconds", "Time from request start to response end.",
            ["protocol", "route", *MODEL], LATENCY_BUCKETS,
        )
        self.queue_wait_seconds = self._histogram(
            "textserve_queue_wait_seconds", "Time a request's texts waited before their batch ran.",
            MODEL, LATENCY_BUCKETS,
        )
        self.predictions = self._counter(
            "textserve_predictions", "Texts classified, by model and predicted label.", [*MODEL, "label"],
        )
        r = self.registry
        self.inference_seconds = Histogram(
            "textserve_inference_duration_seconds", "Time of one onnxruntime batch run (padding included).",
            MODEL, buckets=LATENCY_BUCKETS, registry=r,
        )
        self.batch_size = Histogram(
            "textserve_batch_size", "Texts per onnxruntime run.", MODEL, buckets=BATCH_BUCKETS, registry=r,
        )
        self.batch_failures = Counter("textserve_batch_failures", "onnxruntime runs that raised an error.",
                                      MODEL, registry=r)
        self.rejected = Counter(
            "textserve_rejected_requests", "Requests refused before inference, by reason.", ["reason"], registry=r,
        )
        self.model_load_failures = Counter(
            "textserve_model_load_failures", "Model versions refused when loading, by model and reason.",
            ["model", "reason"], registry=r,
        )
        self.model_load_seconds = Histogram(
            "textserve_model_load_duration_seconds", "Time to verify, open and warm up a model version.",
            ["model"], buckets=LOAD_BUCKETS, registry=r,
        )
        self.queue_depth = Gauge(
            "textserve_queue_depth", "Texts waiting for the model version.", MODEL, registry=r,
            multiprocess_mode="livesum",
        )
        # Set when a version loads (TEXTSERVE_MAX_QUEUE_SIZE): depth / capacity is how full its queue is.
        self.queue_capacity = Gauge(
            "textserve_queue_capacity", "Most texts the version's queue holds; beyond it requests get 503.",
            MODEL, registry=r, multiprocess_mode="livesum",
        )
        self.in_flight = Gauge(
            "textserve_requests_in_flight", "Inference requests accepted and not yet answered.", registry=r,
            multiprocess_mode="livesum",
        )
        self.ready = Gauge(
            "textserve_ready", "1 when the default model serves and the server is not draining (every worker,"
            " with several).", registry=r, multiprocess_mode="livemin",
        )
        self.model_info = Gauge(
            "textserve_model_info", "A loaded model version (always 1).",
            ["name", "version", "onnx_sha256"], registry=r, multiprocess_mode="livemax",
        )
        self._gauges: dict[tuple[Any, ...], tuple[Any, Read]] = {}
        self._refresher: asyncio.Task[None] | None = None
        # One lookup per request for both request series; the set of children is small.
        self._request_series: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def _counter(self, name: str, documentation: str, labels: Sequence[str]) -> Any:
        return self._hot("counter", name, documentation, labels)

    def _histogram(self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]) -> Any:
        return self._hot("histogram", name, documentation, labels, buckets)

    def _hot(self, kind: str, name: str, documentation: str, labels: Sequence[str],
             buckets: Sequence[float] = ()) -> Any:
        """A series every request touches: a loop family, flushed into the library's family
        with several workers; the library's own if ``LOOP_METRICS`` is off."""

        def library() -> Any:
            if kind == "counter":
                return Counter(name, documentation, labels, registry=self.registry)
            return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)

        if not LOOP_METRICS:
            return library()
        if not self.multiprocess_dir:
            return LoopFamily(kind, name, documentation, labels, buckets, registry=self.registry)
        family = LoopFamily(kind, name, documentation, labels, buckets, registry=None)
        self._flushes.append((family, library()))
        return family

    def request_series(
        self, protocol: str, route: str, method: str, status: str, model: str, version: str
    ) -> tuple[Any, Any]:
        """The request counter and latency histogram of one kind of answer."""
        key = (protocol, route, method, status, model, version)
        series = self._request_series.get(key)
        if series is None:
            series = (self.requests.labels(*key), self.request_seconds.labels(protocol, route, model, version))
            self._request_series[key] = series
        return series

    # -- model versions ----------------------------------------------------------------------

    def add_version(
        self, name: str, version: int, onnx_sha256: str, labels: Sequence[str], queued: Read, capacity: int
    ) -> VersionMetrics:
        """The series of a version that has just loaded."""
        self.model_info.labels(name, str(version), onnx_sha256).set(1)
        self.queue_capacity.labels(name, str(version)).set(capacity)
        self._follow(("queue", name, str(version)), self.queue_depth.labels(name, str(version)), queued)
        return VersionMetrics(self, name, version, labels)

    def remove_version(self, version: VersionMetrics, onnx_sha256: str) -> None:
        """Drop the series of a version that has been unloaded. prometheus-client's
        multiprocess mode cannot remove series from its files: there, the version's gauges
        go to 0 and its counters stay as they were."""
        key = version.key
        self._unfollow(("queue", *key))
        if self.multiprocess_dir:
            self.model_info.labels(*key, onnx_sha256).set(0)
            self.queue_capacity.labels(*key).set(0)
            return
        self.model_info.remove(*key, onnx_sha256)
        self.queue_capacity.remove(*key)
        for family in (self.queue_wait_seconds, self.inference_seconds, self.batch_size, self.batch_failures):
            with contextlib.suppress(KeyError):
                family.remove(*key)
        for label in version.labels:
            self.predictions.remove(*key, label)
        for request_key in [k for k in self._request_series if k[-2:] == key]:
            del self._request_series[request_key]
            with contextlib.suppress(KeyError):
                self.requests.remove(*request_key)
                self.request_seconds.remove(*request_key[:2], *key)

    def load_failed(self, name: str, reason: str) -> None:
        self.model_load_failures.labels(name, reason).inc()

    # -- live state ---------------------------------------------------------------------------

    def track(self, in_flight: Read, ready: Callable[[], bool]) -> None:
        """Gauges that follow the live state, instead of being set per request (call on the
        event loop; ``untrack`` when it stops)."""
        self._follow(("in_flight",), self.in_flight, in_flight)
        self._follow(("ready",), self.ready, lambda: 1.0 if ready() else 0.0)
        if self.multiprocess_dir and self._refresher is None:
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_every(REFRESH_S))

    def untrack(self) -> None:
        """Write the gauges one last time (a draining worker reads not ready) and stop."""
        if self._refresher is not None:
            self._refresher.cancel()
            self._refresher = None
        if self.multiprocess_dir:
            self._refresh()

    def _follow(self, key: tuple[Any, ...], gauge: Any, read: Read) -> None:
        self._gauges[key] = (gauge, read)
        if self.multiprocess_dir:
            gauge.set(read())
        else:
            gauge.set_function(read)

    def _unfollow(self, key: tuple[Any, ...]) -> None:
        gauge, _ = self._gauges.pop(key, (None, None))
        if gauge is not None and self.multiprocess_dir:
            gauge.set(0)
        elif key[0] == "queue":
            with contextlib.suppress(KeyError):
                self.queue_depth.remove(*key[1:])

    def _refresh(self) -> None:
        for gauge, read in list(self._gauges.values()):
            gauge.set(read())
        for family, library in self._flushes:
            family.flush_into(library)

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

