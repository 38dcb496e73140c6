"""Hostile gRPC calls to one real server process: each gets its documented status code (never
UNKNOWN or INTERNAL) and a message that names the problem, and the server answers a valid
call after every one of them."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from bench.corpus import load_texts
from tests.e2e.server import ServerProcess
from tests.reliability.helpers import metric, metrics, wait_until

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
KEY = "hostile-grpc-key"
AUTH = (("authorization", f"Bearer {KEY}"),)
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(shipped_bundle_dir: Any) -> Iterator[ServerProcess]:
    with ServerProcess(shipped_bundle_dir, api_key=KEY, max_texts_per_request=256, max_queue_size=4096) as running:
        yield running


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> Iterator[Any]:
    from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc

    options = [("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(server.grpc_target, options=options) as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)


def pb() -> Any:
    from service.v2.grpc.generated import grpc_service_pb2

    return grpc_service_pb2


def infer(texts: list[str] | None = None, *, raw: bytes | None = None, shape: list[int] | None = None,
          datatype: str = "BYTES", model: str = "sentiment") -> Any:
    texts = ["fine"] if texts is None else texts
    request = pb().ModelInferRequest(model_name=model)
    request.inputs.add(name="text", datatype=datatype, shape=shape or [len(texts)])
    request.raw_input_contents.append(
        raw if raw is not None else b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    )
    return request


def still_serving(stub: Any) -> None:
    assert stub.ModelInfer(infer(["still here"]), metadata=AUTH, timeout=10).outputs


def refusal(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, **kwargs)
    return caught.value


HOSTILE = [
    ("wrong datatype", lambda: infer(datatype="FP32"), AUTH, "INVALID_ARGUMENT", "datatype BYTES"),
    ("shape bigger than the data", lambda: infer(["a", "b"], shape=[5]), AUTH, "INVALID_ARGUMENT", "ends before"),
    ("shape smaller than the data", lambda: infer(["a", "b"], shape=[1]), AUTH, "INVALID_ARGUMENT", "left over"),
    ("a lying element length", lambda: infer(raw=struct.pack("<I", 2**31) + b"x"), AUTH, "INVALID_ARGUMENT",
     "declares 2147483648 bytes"),
    ("empty inputs", lambda: pb().ModelInferRequest(model_name="sentiment"), AUTH, "INVALID_ARGUMENT",
     "input 'text' is missing"),
    ("an empty text tensor", lambda: infer([]), AUTH, "INVALID_ARGUMENT", "1 to 256 texts"),
    ("a 3-d shape", lambda: infer(["a"], shape=[1, 1, 1]), AUTH, "INVALID_ARGUMENT", "shape [n] or [n, 1]"),
    ("unknown model", lambda: infer(model="nope"), AUTH, "NOT_FOUND", "unknown model 'nope'"),
    ("a model name that is not one, markup", lambda: infer(model="<script>"), AUTH, "INVALID_ARGUMENT",
     "a model name is one path segment"),
    ("no key", lambda: infer(), None, "UNAUTHENTICATED", "missing or invalid API key"),
    ("wrong key", lambda: infer(), (("authorization", "Bearer nope"),), "UNAUTHENTICATED", "missing or invalid"),
    ("key without Bearer", lambda: infer(), (("authorization", KEY),), "UNAUTHENTICATED", "missing or invalid"),
]


@pytest.mark.parametrize(("make", "metadata", "code", "message"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_call_gets_its_code_and_the_server_goes_on(
    stub: Any, make: Any, metadata: Any, code: str, message: str
) -> None:
    error = refusal(stub.ModelInfer, make(), metadata=metadata, timeout=10)
    assert error.code().name == code  # type: ignore[attr-defined]
    details = error.details() or ""  # type: ignore[attr-defined]
    assert message in details and "Traceback" not in details and "<script>" not in details
    still_serving(stub)


def test_a_64_mib_message_is_resource_exhausted(stub: Any) -> None:
    error = refusal(stub.ModelInfer, infer(raw=b"x" * (64 * MIB)), metadata=AUTH, timeout=30)
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert "larger than max" in (error.details() or "")  # type: ignore[attr-defined]
    still_serving(stub)


BUSY_REQUESTS = 6


class Busy:
    """``BUSY_REQUESTS`` concurrent 256-text /predict requests of long texts, in threads: the
    model is busy for a good while (hundreds of ms) behind them."""

    def __init__(self, server: ServerProcess) -> None:
        texts = [f"{t} {t} {t}" for t in load_texts()[:256]]

        def post() -> None:
            httpx.post(server.url + "/predict", json={"texts": texts}, headers={"authorization": f"Bearer {KEY}"},
                       timeout=60)

        self.threads = [threading.Thread(target=post) for _ in range(BUSY_REQUESTS)]
        for thread in self.threads:
            thread.start()
        assert wait_until(lambda: metric(metrics(server.url), "textserve_requests_in_flight") >= 2, 10)

    def alive(self) -> int:
        return sum(thread.is_alive() for thread in self.threads)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(60)


def classified(server: ServerProcess) -> float:
    page = metrics(server.url)
    return sum(metric(page, "textserve_predictions_total", f'label="{label}"')
               for label in ("negative", "neutral", "positive"))


def grpc_calls(server: ServerProcess, status: str) -> float:
    return metric(metrics(server.url), "textserve_requests_total",
                  f'method="POST",protocol="grpc",route="/inference.GRPCInferenceService/ModelInfer",status="{status}"')


def test_a_call_whose_deadline_passes_is_not_run(server: ServerProcess, stub: Any) -> None:
    before = classified(server)
    error = refusal(stub.ModelInfer, infer(["expired"]), metadata=AUTH, timeout=0)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    queued = [f"queued text {i}" for i in range(64)]
    busy = Busy(server)
    error = refusal(stub.ModelInfer, infer(queued), metadata=AUTH, timeout=0.02)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
    busy.join()
    assert wait_until(lambda: metric(metrics(server.url), "textserve_requests_in_flight") == 0, 10)
    assert classified(server) - before == 256 * BUSY_REQUESTS  # none of the expired calls' texts
    still_serving(stub)


def test_a_client_that_cancels_mid_call_leaves_nothing_behind(server: ServerProcess, stub: Any) -> None:
    cancelled_before, before = grpc_calls(server, "CANCELLED"), classified(server)
    busy = Busy(server)
    future = stub.ModelInfer.future(infer([f"to be cancelled {i}" for i in range(128)]), metadata=AUTH, timeout=30)
    # In flight on the server (queued behind a second or more of busy work): one more than the
    # busy requests still waiting for their answers.
    assert wait_until(lambda: metric(metrics(server.url), "textserve_requests_in_flight") == busy.alive() + 1, 10)
    assert not future.done()
    future.cancel()
    with pytest.raises(grpc.FutureCancelledError):
        future.result()
    busy.join()
    assert wait_until(lambda: grpc_calls(server, "CANCELLED") == cancelled_before + 1, 10)
    page = metrics(server.url)
    assert metric(page, "textserve_requests_in_flight") == 0 and metric(page, "textserve_queue_depth") == 0
    time.sleep(0.1)
    assert classified(server) - before == 256 * BUSY_REQUESTS  # the cancelled call's 128 texts were withdrawn
    still_serving(stub)


def test_nothing_was_unknown_or_internal(server: ServerProcess) -> None:
    page = metrics(server.url)
    assert 'protocol="grpc"' in page
    assert 'status="INTERNAL"' not in page and 'status="UNKNOWN"' not in page
    assert "Traceback" not in server.logs()
