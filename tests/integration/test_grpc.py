"""The Open Inference Protocol over gRPC with the real shipped bundle: the app's lifespan and
its gRPC server in the test's event loop, HTTP through the same app, a grpc.aio client on
loopback. Reference answers come from /predict at test time."""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from service.app import create_app
from service.settings import Settings
from service.v2.grpc.generated import grpc_service_pb2 as pb
from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from tests.conftest import SHIPPED_VERSION, make_repository
from tests.integration.v2_bodies import v2_json

LABELS = ["negative", "neutral", "positive"]
TEXTS = ["@united thanks for the quick rebooking, great crew!", "lost my bag again \U0001f620", "", "ok"]
INFER = "/inference.GRPCInferenceService/ModelInfer"
KEY = "test-key-123"


@dataclass
class Served:
    app: FastAPI
    http: httpx.AsyncClient
    stub: pb_grpc.GRPCInferenceServiceStub
    health: health_pb2_grpc.HealthStub

    async def metric(self, name: str, **labels: str) -> float:
        page = (await self.http.get("/metrics")).text
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0


@asynccontextmanager
async def serving(model: Path, **overrides: Any) -> AsyncIterator[Served]:
    app = create_app(Settings(model_path=model, **overrides))
    async with app.router.lifespan_context(app):
        service = app.state.grpc
        port = await service.start(port=0)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        try:
            yield Served(app, http, pb_grpc.GRPCInferenceServiceStub(channel), health_pb2_grpc.HealthStub(channel))
        finally:
            await http.aclose()
            await channel.close()
            await service.stop(0)


@pytest.fixture
async def served(shipped_bundle_dir: Path) -> AsyncIterator[Served]:
    async with serving(shipped_bundle_dir, max_texts_per_request=4, max_text_chars=60) as s:
        yield s


def raw_texts(texts: Sequence[str | bytes]) -> bytes:
    encoded = [t.encode() if isinstance(t, str) else t for t in texts]
    return b"".join(struct.pack("<I", len(e)) + e for e in encoded)


def infer_request(
    texts: Sequence[str | bytes], *, raw: bool = True, shape: Sequence[int] | None = None, datatype: str = "BYTES",
    model: str = "sentiment", **fields: Any,
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model, **fields)
    tensor = request.inputs.add(name="text", datatype=datatype, shape=list(shape or [len(texts)]))
    if raw:
        request.raw_input_contents.append(raw_texts(texts))
    else:
        tensor.contents.bytes_contents.extend(t.encode() if isinstance(t, str) else t for t in texts)
    return request


def output(response: pb.ModelInferResponse, name: str) -> Any:
    index = [o.name for o in response.outputs].index(name)
    tensor, raw = response.outputs[index], response.raw_output_contents[index]
    if tensor.datatype == "FP32":
        return np.frombuffer(raw, dtype="<f4").reshape(tuple(tensor.shape))
    elements, offset = [], 0
    while offset < len(raw):
        (length,) = struct.unpack_from("<I", raw, offset)
        elements.append(raw[offset + 4 : offset + 4 + length].decode())
        offset += 4 + length
    return elements


async def reference(served: Served, texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    predictions = (await served.http.post("/predict", json={"texts": list(texts)})).json()["predictions"]
    probs = np.array([[p["scores"][label] for label in LABELS] for p in predictions], dtype=np.float32)
    return probs, [p["label"] for p in predictions]


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


# -- health and metadata --------------------------------------------------------------------


async def test_health_and_metadata(served: Served) -> None:
    stub = served.stub
    assert (await stub.ServerLive(pb.ServerLiveRequest())).live
    assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="sentiment"))).ready
    assert (await stub.ModelReady(pb.ModelReadyRequest(name="sentiment", version=SHIPPED_VERSION))).ready
    server = await stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name == "textserve" and "classification" in server.extensions
    meta = await stub.ModelMetadata(pb.ModelMetadataRequest(name="sentiment"))
    http_meta = (await served.http.get("/v2/models/sentiment")).json()
    assert meta.name == http_meta["name"] and list(meta.versions) == http_meta["versions"]
    assert meta.platform == http_meta["platform"]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        (t["name"], t["datatype"], t["shape"]) for t in http_meta["outputs"]
    ]
    for name in ("", "inference.GRPCInferenceService"):
        check = await served.health.Check(health_pb2.HealthCheckRequest(service=name))
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    error = await refused(served.health.Check(health_pb2.HealthCheckRequest(service="no.such.Service")))
    assert error.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("name", "version"), [("nope", ""), ("sentiment", str(int(SHIPPED_VERSION) + 1)), ("", "")])
async def test_unknown_models_and_versions_are_not_found(served: Served, name: str, version: str) -> None:
    for call in (
        served.stub.ModelMetadata(pb.ModelMetadataRequest(name=name, version=version)),
        served.stub.ModelReady(pb.ModelReadyRequest(name=name, version=version)),
        served.stub.ModelInfer(infer_request(["a"], model=name, model_version=version)),
    ):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert "model" in (error.details() or "") and ("unknown" in (error.details() or "") or "no version" in (
            error.details() or ""))


# -- inference ----------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [True, False], ids=["raw_input_contents", "bytes_contents"])
async def test_infer_matches_predict(served: Served, raw: bool) -> None:
    response = await served.stub.ModelInfer(infer_request(TEXTS, raw=raw, id="req-7"))
    expected, labels = await reference(served, TEXTS)
    assert response.model_name == "sentiment" and response.model_version == SHIPPED_VERSION and response.id == "req-7"
    assert [o.name for o in response.outputs] == ["probabilities", "label"]
    np.testing.assert_allclose(output(response, "probabilities"), expected, atol=1e-6)
    assert output(response, "label") == labels


async def test_shape_n_by_1_requested_outputs_and_classification(served: Served) -> None:
    request = infer_request(TEXTS[:2], shape=[2, 1])
    top = request.outputs.add(name="probabilities")
    top.parameters["classification"].int64_param = 2
    request.outputs.add(name="label")
    response = await served.stub.ModelInfer(request)
    expected, labels = await reference(served, TEXTS[:2])
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("probabilities", "BYTES", [2, 2]), ("label", "BYTES", [2]),
    ]
    best = output(response, "probabilities")
    for row in range(2):
        score, index, label = best[row * 2].split(":")
        assert int(index) == int(np.argmax(expected[row])) and label == labels[row]
        assert abs(float(score) - expected[row].max()) < 1e-6
    only_label = infer_request(["great"])
    only_label.outputs.add(name="label")
    assert [o.name for o in (await served.stub.ModelInfer(only_label)).outputs] == ["label"]


BAD = [
    ("wrong datatype", infer_request(["a"], datatype="FP32"), "datatype BYTES"),
    ("shape and data disagree (raw)", infer_request(["a", "b"], shape=[3]), "ends before element 2"),
    ("shape and data disagree", infer_request(["a", "b"], shape=[3], raw=False), "needs 3 elements, 2 were sent"),
    ("too many texts", infer_request(["a"] * 5), "1 to 4 texts"),
    ("a text over the limit", infer_request(["x" * 61]), "at most 60"),
    ("no inputs", pb.ModelInferRequest(model_name="sentiment"), "input 'text' is missing"),
    ("zero texts", infer_request([]), "1 to 4 texts"),
    ("invalid UTF-8", infer_request([b"\xff\xfe"]), "not valid UTF-8"),
    ("unknown output", infer_request(["a"], outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="x")]),
     "unknown output"),
    ("numbers in a BYTES input", pb.ModelInferRequest(model_name="sentiment", inputs=[
        pb.ModelInferRequest.InferInputTensor(name="text", datatype="BYTES", shape=[1],
                                              contents=pb.InferTensorContents(fp32_contents=[1.0]))]),
     "bytes_contents or raw_input_contents"),
    ("raw contents for no input", pb.ModelInferRequest(model_name="sentiment", raw_input_contents=[b"x"]),
     "one per input"),
]


@pytest.mark.parametrize(("request_", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
async def test_bad_tensors_are_invalid_argument(served: Served, request_: pb.ModelInferRequest, message: str) -> None:
    call = served.stub.ModelInfer(request_, metadata=(("x-request-id", "client-id-1"),))
    error = await refused(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (error.details() or "")
    assert ("x-request-id", "client-id-1") in tuple(error.trailing_metadata() or ())
    assert "Traceback" not in (error.details() or "")
    assert (await served.stub.ModelInfer(infer_request(["still serving"]))).outputs


async def test_a_grpc_text_and_an_http_text_share_one_batch(
    shipped_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hold the model on a first batch, queue one gRPC text and one HTTP V2 text behind it:
    the next batch holds exactly 2 texts, so it can only be the two of them together."""
    async with serving(shipped_bundle_dir, max_batch_size=2, max_batch_delay_ms=1000) as served:
        first, gate = await model_busy(served, monkeypatch)
        from_grpc = asyncio.ensure_future(served.stub.ModelInfer(infer_request([TEXTS[0]])))
        from_http = asyncio.ensure_future(served.http.post("/v2/models/sentiment/infer", json=v2_json(TEXTS[1:2])))
        await until(lambda: served.metric("textserve_queue_depth"), 2)
        gate.set()
        warm, grpc_answer, http_answer = await asyncio.gather(first, from_grpc, from_http)
        assert warm.status_code == http_answer.status_code == 200
        assert await served.metric("textserve_batch_size_count") == 2
        assert await served.metric("textserve_batch_size_bucket", le="1.0") == 1
        assert await served.metric("textserve_batch_size_bucket", le="2.0") == 2
        monkeypatch.undo()
        expected, _ = await reference(served, TEXTS[:2])
        np.testing.assert_allclose(output(grpc_answer, "probabilities")[0], expected[0], atol=1e-6)
        np.testing.assert_allclose(http_answer.json()["outputs"][0]["data"], expected[1], atol=1e-6)
        assert await served.metric("textserve_requests_total", protocol="grpc", route=INFER, status="OK") == 1
        assert await served.metric("textserve_request_duration_seconds_count", protocol="grpc", route=INFER) == 1
        assert await served.metric(
            "textserve_requests_total", protocol="http", route="/v2/models/{model_name}/infer", status="200"
        ) == 1


@pytest.mark.parametrize(("grpc_hold_ms", "runs"), [(0, 3), (1000, 2)])
async def test_a_batch_holding_a_grpc_call_waits_the_grpc_hold_for_company(
    shipped_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch, grpc_hold_ms: float, runs: int
) -> None:
    """HTTP's batches never wait here (MAX_BATCH_DELAY_MS 0). A gRPC call that arrives while
    the model is busy is held after it for GRPC_MAX_BATCH_DELAY_MS: long enough, and the
    HTTP text sent after the model became free joins it (two runs, not three)."""
    async with serving(shipped_bundle_dir, max_batch_delay_ms=0, grpc_max_batch_delay_ms=grpc_hold_ms) as served:
        first, gate = await model_busy(served, monkeypatch)
        from_grpc = asyncio.ensure_future(served.stub.ModelInfer(infer_request([TEXTS[0]])))
        await until(lambda: served.metric("textserve_queue_depth"), 1)
        gate.set()
        assert (await first).status_code == 200
        http_answer = await served.http.post("/v2/models/sentiment/infer", json=v2_json(TEXTS[1:2]))
        grpc_answer = await from_grpc
        assert http_answer.status_code == 200 and output(grpc_answer, "label")
        assert await served.metric("textserve_batch_size_count") == runs


async def model_busy(served: Served, monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Future[Any], threading.Event]:
    """A /predict request the model is running, held there until the returned gate is set."""
    runtime = served.app.state.engine.route(None, None).predictor.runtime
    real, gate = runtime.predict, threading.Event()
    monkeypatch.setattr(runtime, "predict", lambda ids: (gate.wait(10), real(ids))[1])
    first = asyncio.ensure_future(served.http.post("/predict", json={"texts": ["warming up"]}))
    await until(lambda: served.metric("textserve_batch_size_count"), 1)
    return first, gate


async def until(read: Callable[[], Any], value: float, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while await read() != value:
            await asyncio.sleep(0.005)


async def test_probes_are_not_counted_and_refusals_are(served: Served) -> None:
    await served.stub.ServerLive(pb.ServerLiveRequest())
    await served.stub.ModelReady(pb.ModelReadyRequest(name="sentiment"))
    await refused(served.stub.ModelInfer(infer_request(["a"], datatype="INT8")))
    await served.stub.ModelInfer(infer_request(["a"]))
    assert await served.metric("textserve_requests_total", protocol="grpc", status="INVALID_ARGUMENT") == 1
    assert await served.metric("textserve_requests_total", protocol="grpc", status="OK", route=INFER) == 1
    page = (await served.http.get("/metrics")).text
    assert "ServerLive" not in page and "ModelReady" not in page


# -- keys, deadlines, the model repository, the rest ----------------------------------------


async def test_inference_needs_the_key_and_health_does_not(shipped_bundle_dir: Path) -> None:
    async with serving(shipped_bundle_dir, api_key=KEY) as served:
        wrong = [None, (("authorization", "Bearer nope"),), (("authorization", KEY),),
                 (("authorization", f"Basic {KEY}"),)]
        details = set()
        for metadata in wrong:
            error = await refused(served.stub.ModelInfer(infer_request(["a"]), metadata=metadata))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            details.add(error.details())
        assert details == {"missing or invalid API key"}
        good = (("authorization", f"Bearer {KEY}"),)
        assert (await served.stub.ModelInfer(infer_request(["a"]), metadata=good)).outputs
        assert (await served.stub.ServerReady(pb.ServerReadyRequest())).ready
        assert (await served.stub.ModelMetadata(pb.ModelMetadataRequest(name="sentiment"))).name == "sentiment"
        check = await served.health.Check(health_pb2.HealthCheckRequest())
        assert check.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_request_timeout_is_deadline_exceeded_and_the_texts_are_withdrawn(
    shipped_bundle_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serving(shipped_bundle_dir, request_timeout_s=0.3, max_batch_size=1) as served:
        runtime = served.app.state.engine.route(None, None).predictor.runtime
        real, gate = runtime.predict, threading.Event()
        monkeypatch.setattr(runtime, "predict", lambda ids: (gate.wait(10), real(ids))[1])
        error = await refused(served.stub.ModelInfer(infer_request(["a", "b", "c"])))
        gate.set()
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "request timeout (0.3 s)" in (error.details() or "")
        assert await served.metric("textserve_rejected_requests_total", reason="timeout") == 1
        assert (await served.stub.ModelInfer(infer_request(["d"]))).outputs  # queued behind b and c, if they were
        assert await served.metric("textserve_batch_size_count") == 2  # "a", then "d": "b" and "c" never ran
        assert await served.metric("textserve_requests_total", protocol="grpc", status="DEADLINE_EXCEEDED") == 1


async def test_the_repository_outside_explicit_mode(served: Served) -> None:
    index = await served.stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
    assert [(m.name, m.version, m.state) for m in index.models] == [("sentiment", SHIPPED_VERSION, "READY")]
    for call in (served.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="sentiment")),
                 served.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="sentiment"))):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "the model control mode is 'none'" in (error.details() or "")


async def test_the_repository_rpcs_load_and_unload_in_explicit_mode(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    root = make_repository(tmp_path / "repo", shipped_bundle_dir, {"main": [1], "extra": [1, 2]})
    async with serving(shipped_bundle_dir, model_repository=root, model_control_mode="explicit",
                       load_models="main", default_model="main") as served:
        index = await served.stub.RepositoryIndex(pb.RepositoryIndexRequest())
        assert {(m.name, m.version, m.state) for m in index.models} == {
            ("main", "1", "READY"), ("extra", "", "UNAVAILABLE")}
        assert not (await served.stub.ModelReady(pb.ModelReadyRequest(name="extra"))).ready
        await served.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="extra"))
        assert (await served.stub.ModelReady(pb.ModelReadyRequest(name="extra", version="2"))).ready
        answer = await served.stub.ModelInfer(infer_request(["fine"], model="extra"))
        assert (answer.model_name, answer.model_version) == ("extra", "2")
        metadata = await served.stub.ModelMetadata(pb.ModelMetadataRequest(name="extra"))
        assert list(metadata.versions) == ["2"]
        await served.stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="extra"))
        assert not (await served.stub.ModelReady(pb.ModelReadyRequest(name="extra"))).ready
        for name, code in (("ghost", grpc.StatusCode.NOT_FOUND), ("../main", grpc.StatusCode.INVALID_ARGUMENT)):
            error = await refused(served.stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name)))
            assert error.code() == code, name


@pytest.mark.parametrize("rpc", ["ModelConfig", "ModelStatistics", "SystemSharedMemoryStatus", "TraceSetting"])
async def test_other_rpcs_are_unimplemented(served: Served, rpc: str) -> None:
    request = getattr(pb, f"{rpc}Request")()
    error = await refused(getattr(served.stub, rpc)(request))
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert error.details() == f"{rpc} is not implemented by this server"


async def test_draining_turns_health_not_serving_and_refuses_inference(served: Served) -> None:
    watch = served.health.Watch(health_pb2.HealthCheckRequest())
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    served.app.state.engine.begin_drain()
    await served.app.state.grpc.begin_drain()
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING  # watchers are told
    watch.cancel()
    check = await served.health.Check(health_pb2.HealthCheckRequest())
    assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert not (await served.stub.ServerReady(pb.ServerReadyRequest())).ready
    error = await refused(served.stub.ModelInfer(infer_request(["a"])))
    assert error.code() == grpc.StatusCode.UNAVAILABLE and error.details() == "server is shutting down"


async def test_while_the_model_loads_health_is_not_serving_and_inference_unavailable(shipped_bundle_dir: Path) -> None:
    """The process starts gRPC once the model is ready; were it up earlier, it would say so."""
    app = create_app(Settings(model_path=shipped_bundle_dir))
    service = app.state.grpc
    port = await service.start(port=0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub, health = pb_grpc.GRPCInferenceServiceStub(channel), health_pb2_grpc.HealthStub(channel)
            check = await health.Check(health_pb2.HealthCheckRequest())
            assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
            assert not (await stub.ModelReady(pb.ModelReadyRequest(name="sentiment"))).ready
            for call in (stub.ModelInfer(infer_request(["a"])),
                         stub.ModelMetadata(pb.ModelMetadataRequest(name="sentiment"))):
                error = await refused(call)
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                assert error.details() == "model is not loaded yet"
            assert (await stub.RepositoryIndex(pb.RepositoryIndexRequest())).models == []
    finally:
        await service.stop(0)


async def test_a_second_server_is_refused_the_port_its_acceptors_share(served: Served, shipped_bundle_dir: Path) -> None:
    from service.v2.grpc.server import ACCEPTORS

    first = served.app.state.grpc
    assert len(first.servers) == ACCEPTORS  # SO_REUSEPORT among themselves...
    second = create_app(Settings(model_path=shipped_bundle_dir)).state.grpc
    with pytest.raises(RuntimeError, match="is taken"):  # ...but not with anyone else
        await second.start(port=first.port)
    assert second.servers == []
    assert (await served.stub.ServerLive(pb.ServerLiveRequest())).live
