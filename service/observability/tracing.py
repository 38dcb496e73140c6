"""OpenTelemetry tracing, on with ``TEXTSERVE_TRACING=true`` and the ``[tracing]`` extra.

Configured by the standard variables: ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), ``OTEL_EXPORTER_OTLP_PROTOCOL`` (``http/protobuf``, the
default, or ``grpc``), ``OTEL_SERVICE_NAME`` (default ``textserve``), ``OTEL_TRACES_SAMPLER``
and its argument, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_BSP_*`` for the batch exporter, ...

Each request gets a server span, a child of the caller's when it sends W3C ``traceparent``
(and ``tracestate``). Its texts get a "queue wait" child span (from the moment they were
queued to the start of their batch), each model run gets one "batch" span linked to every
request in it, and building the answer gets an "encode" child span. Spans carry counts,
lengths, routes, statuses and model versions: never a text. The sampler decides for request
spans; a batch span is kept whenever a request in it was, and not made when none was.

Off, this module is not imported (``create_app`` imports it only when tracing is on) and the
request path only checks for ``None``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode


def _exporter() -> SpanExporter:
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    if protocol != "http/protobuf":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r}: textserve exports http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


class KeepBatchesOfKeptRequests(Sampler):
    """The configured sampler (``OTEL_TRACES_SAMPLER``), except for batch spans: a batch
    span is only started when it has links to kept requests, and is then kept too."""

    def __init__(self, configured: Sampler) -> None:
        self.configured = configured

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
        if name == "batch" and links:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
        return self.configured.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"KeepBatchesOfKeptRequests{{{self.configured.get_description()}}}"


class Tracing:
    """The tracer and what the service asks of it: request spans, the batcher's spans."""

    def __init__(self) -> None:
        resource = Resource.create({} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: "textserve"})
        configured = TracerProvider(shutdown_on_exit=False).sampler  # the one OTEL_TRACES_SAMPLER names
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False,
                                       sampler=KeepBatchesOfKeptRequests(configured))
        self.provider.add_span_processor(BatchSpanProcessor(_exporter()))
        self.tracer = self.provider.get_tracer("textserve")
        # Spans take wall-clock nanoseconds; the batcher keeps monotonic seconds.
        self._offset_ns = time.time_ns() - time.monotonic_ns()

    def shutdown(self) -> None:
        """Export what is left, then stop (the app's last act)."""
        self.provider.shutdown()

    # -- a request ---------------------------------------------------------------------------

    def start_request(self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]) -> tuple[Any, Any]:
        """The server span of a request, made current for everything the request does."""
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers
                   if name in (b"traceparent", b"tracestate")}
        parent = propagate.extract(carrier) if carrier else None
        span = self.tracer.start_span(f"{method} {path}", context=parent, kind=SpanKind.SERVER,
                                      attributes={"http.request.method": method, "url.path": path})
        token = context.attach(trace.set_span_in_context(span))
        return span, token

    def end_request(
        self, span: Any, token: Any, route: str, status: int, request_id: str, texts: int | None,
        model: tuple[str, str] | None, extra: Mapping[str, Any] | None = None,
    ) -> None:
        """End a request's span with what it did: its route and status, request id, texts
        and the (model, version) that answered (None or empty if none did), and ``extra``."""
        context.detach(token)
        if span.is_recording():  # not when the sampler (OTEL_TRACES_SAMPLER) left this trace out
            attributes: dict[str, Any] = {"http.route": route, "http.response.status_code": status,
                                          "textserve.request_id": request_id, **(extra or {})}
            if texts is not None:
                attributes["textserve.texts"] = texts
            if model and model[0]:
                attributes["textserve.model"], attributes["textserve.version"] = model
            span.update_name(f"{span.attributes.get('http.request.method', '')} {route}")
            span.set_attributes(attributes)
            if status >= 500:
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[None]:
        """A child span of the current one (``encode``)."""
        with self.tracer.start_as_current_span(name, attributes=attributes):
            yield

    # -- the batcher (service.engine.batcher.BatchTracer) ------------------------------------------

    def capture(self) -> Any:
        """The caller's span, to link its texts' batch to and parent their queue wait on
        (none if the sampler left the caller's trace out)."""
        span_context = trace.get_current_span().get_span_context()
        return span_context if span_context.is_valid and span_context.trace_flags.sampled else None

    def batch(
        self, model: str, version: int, jobs: Sequence[tuple[Any, float, int]], started: float, ended: float,
        ok: bool,
    ) -> None:
        """One model run: ``jobs`` are (captured span, queued at, texts) per request in it; the
        times are monotonic seconds."""
        start_ns, end_ns = self._ns(started), self._ns(ended)
        for parent, queued_at, texts in jobs:
            if parent is not None:
                wait = self.tracer.start_span(
                    "queue wait", context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
                    start_time=self._ns(queued_at), attributes={"textserve.texts": texts},
                )
                wait.end(end_time=start_ns)
        links = [Link(parent) for parent, _, _ in jobs if parent is not None]
        if not links:  # every request in it was left out by the sampler
            return
        span = self.tracer.start_span(
            "batch", context=context.Context(), links=links, start_time=start_ns, kind=SpanKind.INTERNAL,
            attributes={"textserve.model": model, "textserve.version": version,
                        "textserve.batch.texts": sum(texts for _, _, texts in jobs),
                        "textserve.batch.requests": len(jobs)},
        )
        if not ok:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end_ns)

    def _ns(self, monotonic_s: float) -> int:
        return int(monotonic_s * 1e9) + self._offset_ns

    def for_version(self, model: str, version: int) -> VersionTracer:
        return VersionTracer(self, model, version)


class VersionTracer:
    """One loaded version's batcher's tracer (``service.engine.hooks.BatchTracer``)."""

    def __init__(self, tracing: Tracing, model: str, version: int) -> None:
        self.tracing, self.model, self.version = tracing, model, version

    def capture(self) -> Any:
        return self.tracing.capture()

    def batch(self, jobs: Sequence[tuple[Any, float, int]], started: float, ended: float, ok: bool) -> None:
        self.tracing.batch(self.model, self.version, jobs, started, ended, ok)
