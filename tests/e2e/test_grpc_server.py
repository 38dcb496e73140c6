"""The gRPC server's life in a real process: SIGTERM drains it as it drains HTTP, several
workers all serve it on one port, a second server is refused its port, and grpcio's threads
run under SCHED_BATCH."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.corpus import load_texts
from bench.cpu import io_threads, thread_cpu_seconds
from service.v2.grpc.generated import grpc_service_pb2 as pb
from service.v2.grpc.generated import grpc_service_pb2_grpc as pb_grpc
from tests.e2e.server import ServerProcess, free_port
from tests.e2e.test_server import run_service

pytestmark = pytest.mark.e2e


def infer_request(texts: list[str]) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="sentiment")
    request.inputs.add(name="text", datatype="BYTES", shape=[len(texts)]).contents.bytes_contents.extend(
        t.encode() for t in texts
    )
    return request


def test_sigterm_drains_grpc_calls_in_flight_then_exits_zero(shipped_bundle_dir: Path) -> None:
    texts = [f"{t} {t}" for t in load_texts()[:256]]
    server = ServerProcess(shipped_bundle_dir, max_texts_per_request=256, max_queue_size=8192,
                           shutdown_grace_s=20).start()
    try:
        async def scenario() -> tuple[list[Any], list[int], list[str]]:
            async with grpc.aio.insecure_channel(server.grpc_target) as channel:
                stub, health = pb_grpc.GRPCInferenceServiceStub(channel), health_pb2_grpc.HealthStub(channel)
                calls = [asyncio.ensure_future(stub.ModelInfer(infer_request(texts), timeout=30)) for _ in range(8)]
                async with httpx.AsyncClient(base_url=server.url, timeout=5) as probe:
                    for _ in range(500):  # until the server has accepted all 8, then ask it to stop
                        page = (await probe.get("/metrics")).text
                        if re.search(r"^textserve_requests_in_flight 8.0$", page, re.M):
                            break
                        await asyncio.sleep(0.005)
                    else:
                        raise AssertionError("the 8 calls were never all in flight at once")
                server.signal()
                await asyncio.sleep(0.1)
                statuses = [(await health.Check(health_pb2.HealthCheckRequest())).status for _ in range(2)]
                late = []
                try:
                    await stub.ModelInfer(infer_request(["too late"]), timeout=10)
                    late.append("OK")
                except grpc.aio.AioRpcError as exc:
                    late.append(exc.code().name)
                return await asyncio.gather(*calls), statuses, late

        answers, statuses, late = asyncio.run(scenario())
        code = server.wait(timeout=40)
    finally:
        server.stop()
    assert [len(a.raw_output_contents) for a in answers] == [2] * 8  # every call in flight completed
    assert statuses == [health_pb2.HealthCheckResponse.NOT_SERVING] * 2
    assert late == ["UNAVAILABLE"]
    assert code == 0
    assert '"msg":"draining"' in server.logs()


def test_every_worker_serves_grpc_on_the_one_port(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    server = ServerProcess(shipped_bundle_dir, workers=2)
    server.env["TMPDIR"] = str(tmp_path)
    with server:
        def listeners() -> set[str]:
            out = subprocess.run(["ss", "-Hltnp", f"sport = :{server.grpc_port}"], capture_output=True, text=True,
                                 check=True).stdout
            return set(re.findall(r"pid=(\d+)", out))

        deadline = time.monotonic() + 30  # /health answered from one worker; the other may still be starting
        while len(listeners()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(listeners()) == 2  # one listening socket per worker (SO_REUSEPORT)
        assert server.logs().count('"msg":"grpc listening"') == 2
        for _ in range(12):  # new connections, spread over the workers by the kernel
            with grpc.insecure_channel(server.grpc_target) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                assert stub.ModelInfer(infer_request(["hello"]), timeout=10).outputs
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=40) == 0


def test_a_second_server_on_the_same_grpc_port_is_refused(shipped_bundle_dir: Path) -> None:
    with ServerProcess(shipped_bundle_dir) as first:
        started = time.monotonic()
        alone = run_service(shipped_bundle_dir, TEXTSERVE_PORT=str(free_port()),
                            TEXTSERVE_GRPC_PORT=str(first.grpc_port))
        assert alone.returncode == 3
        assert "cannot listen for gRPC" in alone.stderr
        workers = run_service(shipped_bundle_dir, TEXTSERVE_PORT=str(free_port()),
                              TEXTSERVE_GRPC_PORT=str(first.grpc_port), TEXTSERVE_WORKERS="2")
        assert workers.returncode == 3
        (line,) = workers.stderr.strip().splitlines()
        assert line.startswith(f"textserve: cannot listen on 127.0.0.1:{first.grpc_port}: ")
        assert time.monotonic() - started < 60
        with grpc.insecure_channel(first.grpc_target) as channel:
            assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer_request(["still mine"]), timeout=10)


@pytest.mark.parametrize("sched_batch", [True, False])
def test_grpcios_threads_run_under_sched_batch_and_the_model_and_loop_do_not(
    shipped_bundle_dir: Path, sched_batch: bool
) -> None:
    texts = load_texts()[:256]
    with ServerProcess(shipped_bundle_dir, grpc_sched_batch=sched_batch, max_texts_per_request=256) as server:
        assert server.proc is not None
        pid = server.proc.pid
        with grpc.insecure_channel(server.grpc_target) as channel:
            assert pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(infer_request(["hello"]), timeout=10).outputs
        before = thread_cpu_seconds(pid)
        for _ in range(3):  # the model's thread is the one that takes the CPU these runs need
            assert httpx.post(server.url + "/predict", json={"texts": texts}, timeout=30).status_code == 200
        after = thread_cpu_seconds(pid)
        grpcio = {tid: os.sched_getscheduler(tid) for tid in io_threads(pid)}
        policies = {tid: os.sched_getscheduler(tid) for tid in after}
    model = max((tid for tid in after if tid != pid), key=lambda tid: after[tid] - before.get(tid, 0.0))
    assert grpcio
    assert set(grpcio.values()) == ({os.SCHED_BATCH} if sched_batch else {os.SCHED_OTHER})
    assert policies[pid] == os.SCHED_OTHER  # the event loop
    assert model not in grpcio and policies[model] == os.SCHED_OTHER
    if not sched_batch:
        assert set(policies.values()) == {os.SCHED_OTHER}
