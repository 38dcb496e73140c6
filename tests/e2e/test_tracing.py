"""OpenTelemetry tracing through a real server into real OTLP receivers (HTTP and gRPC) that
decode what they get with opentelemetry-proto: the caller's trace continues, the queue wait
and the answer's encoding are children of the request's span, each batch is one span linked
to every request in it, and no text is ever in a span."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.e2e.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
SECRET_TEXTS = ["the purple elephant flight was late", "zanzibar lounge was cold"]


class Spans:
    """Every span a receiver got, flattened, with its resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict[str, Any], Any]] = []
        self._lock = threading.Lock()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self._lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    self.spans += [(resource, span) for span in scope_spans.spans]

    def named(self, name: str) -> list[Any]:
        with self._lock:
            return [span for _, span in self.spans if span.name == name]

    def wait_for(self, name: str, count: int, timeout: float = 20.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while len(self.named(name)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        found = self.named(name)
        assert len(found) >= count, (name, [s.name for _, s in self.spans])
        return found


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, Spans]]:
    spans = Spans()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
            spans.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", spans
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_receiver() -> Iterator[tuple[str, Spans]]:
    spans = Spans()

    class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            spans.add(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    yield f"http://127.0.0.1:{port}", spans
    server.stop(None)


def traced_server(bundle: Path, endpoint: str, protocol: str) -> ServerProcess:
    server = ServerProcess(bundle, tracing="true")
    server.env.update({
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "OTEL_SERVICE_NAME": "textserve-under-test", "OTEL_BSP_SCHEDULE_DELAY": "50",
    })
    return server


def grpc_infer(port: int, texts: list[str], metadata: list[tuple[str, str]]) -> None:
    from service.v2.grpc.generated import grpc_service_pb2 as pb
    from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc

    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[len(texts)], contents=pb.InferTensorContents(
            bytes_contents=[t.encode() for t in texts]))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            pb.ModelInferRequest(model_name="sentiment", inputs=[tensor]), metadata=metadata, timeout=10)


def attributes(span: Any) -> dict[str, Any]:
    def value(v: Any) -> Any:
        return getattr(v, v.WhichOneof("value")) if v.WhichOneof("value") else None

    return {a.key: value(a.value) for a in span.attributes}


def check_the_request_trace(spans: Spans, route: str) -> None:
    (server,) = [s for s in spans.wait_for(f"POST {route}", 1) if s.trace_id.hex() == TRACE_ID]
    assert server.parent_span_id.hex() == PARENT and server.kind == server.SPAN_KIND_SERVER
    attrs = attributes(server)
    assert attrs["http.response.status_code"] == 200 and attrs["http.route"] == route, attrs
    assert attrs["textserve.texts"] == 2 and attrs["textserve.model"] == "sentiment"
    for child in ("queue wait", "encode"):
        found = [s for s in spans.wait_for(child, 1) if s.parent_span_id == server.span_id]
        assert len(found) == 1 and found[0].trace_id == server.trace_id, child
    (wait,) = [s for s in spans.named("queue wait") if s.parent_span_id == server.span_id]
    batches = [s for s in spans.wait_for("batch", 1)
               if any(link.span_id == server.span_id and link.trace_id == server.trace_id for link in s.links)]
    assert len(batches) == 1
    assert wait.end_time_unix_nano == batches[0].start_time_unix_nano  # the wait ends as its batch starts
    assert attributes(batches[0])["textserve.batch.texts"] >= 2


def check_no_text_in_any_span(spans: Spans) -> None:
    for resource, span in spans.spans:
        assert resource["service.name"] == "textserve-under-test"
        for value in attributes(span).values():
            assert not any(word in str(value) for text in SECRET_TEXTS for word in text.split() if len(word) > 4)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_spans_reach_an_otlp_receiver_with_parents_and_links(
    shipped_bundle_dir: Path, http_receiver: tuple[str, Spans], grpc_receiver: tuple[str, Spans], protocol: str
) -> None:
    endpoint, spans = http_receiver if protocol == "http/protobuf" else grpc_receiver
    traceparent = {"traceparent": f"00-{TRACE_ID}-{PARENT}-01", "tracestate": "vendor=1"}
    with traced_server(shipped_bundle_dir, endpoint, protocol) as server:
        answer = httpx.post(server.url + "/predict", json={"texts": SECRET_TEXTS}, headers=traceparent)
        assert answer.status_code == 200
        check_the_request_trace(spans, "/predict")
        v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": SECRET_TEXTS}]}
        assert httpx.post(server.url + "/v2/models/sentiment/infer", json=v2, headers=traceparent).status_code == 200
        check_the_request_trace(spans, "/v2/models/{model_name}/infer")
        assert httpx.post(server.url + "/predict", json={"texts": SECRET_TEXTS}).status_code == 200  # no caller
        roots = [s for s in spans.wait_for("POST /predict", 2) if s.trace_id.hex() != TRACE_ID]
        assert roots and not roots[0].parent_span_id
        refused = httpx.post(server.url + "/predict", content=b"[", headers={"content-type": "application/json"})
        assert refused.status_code == 400
        statuses = [attributes(s)["http.response.status_code"] for s in spans.wait_for("POST /predict", 3)]
        assert 400 in statuses
        grpc_infer(server.grpc_port, SECRET_TEXTS, [("traceparent", f"00-{TRACE_ID}-{PARENT}-01")])
        check_the_request_trace(spans, "/inference.GRPCInferenceService/ModelInfer")
    check_no_text_in_any_span(spans)


def test_traces_the_sampler_leaves_out_are_served_untraced(
    shipped_bundle_dir: Path, http_receiver: tuple[str, Spans]
) -> None:
    """OTEL_TRACES_SAMPLER keeps a share of traces: the requests of the others are answered
    as usual (no error, no span), and a caller's sampled trace is still followed."""
    endpoint, spans = http_receiver
    server = traced_server(shipped_bundle_dir, endpoint, "http/protobuf")
    server.env.update({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"})
    unsampled = {"traceparent": f"00-{TRACE_ID[:-4]}beef-{PARENT}-00"}
    with server:
        for headers in ({}, unsampled):
            for _ in range(3):
                assert httpx.post(server.url + "/predict", json={"texts": SECRET_TEXTS}, headers=headers).status_code == 200
                v2 = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [2], "data": SECRET_TEXTS}]}
                assert httpx.post(server.url + "/v2/models/sentiment/infer", json=v2, headers=headers).status_code == 200
        grpc_infer(server.grpc_port, SECRET_TEXTS, [])
        httpx.post(server.url + "/predict", json={"texts": SECRET_TEXTS},
                   headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
        check_the_request_trace(spans, "/predict")  # the caller's sampled trace, exported
        assert '"level":"error"' not in server.logs()
    assert {s.trace_id.hex() for _, s in spans.spans if s.name != "batch"} == {TRACE_ID}
