"""``TEXTSERVE_WORKERS=2``: gunicorn's real arbiter and two real worker processes on one port."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path

import httpx
import pytest

from bench.workers import children
from service.bundle.format import sha256_file
from tests.e2e.server import ServerProcess, eventually
from tests.e2e.test_server import flip_model_byte, run_service
from tests.reliability.helpers import metric

pytestmark = pytest.mark.e2e


def answered(url: str) -> float:
    """/predict 200s on the /metrics page, fetched on a new connection (any worker)."""
    page = httpx.get(url + "/metrics", headers={"connection": "close"}).text
    return metric(page, "textserve_requests_total", 'method="POST",route="/predict",status="200"')


def capacity(url: str) -> float:
    page = httpx.get(url + "/metrics", headers={"connection": "close"}).text
    return metric(page, "textserve_queue_capacity")


def workers_server(bundle: Path, tmp: Path, **settings: object) -> ServerProcess:
    """Two workers, their shared metrics directory under ``tmp``: an arbiter stopped with
    SIGKILL (``ServerProcess.stop``) cannot remove it itself."""
    server = ServerProcess(bundle, workers=2, **settings)
    server.env["TMPDIR"] = str(tmp)
    return server


def predict_on_new_connections(url: str, n: int) -> list[int]:
    return [
        httpx.post(url + "/predict", json={"texts": [f"flight {i} was fine"]}, headers={"connection": "close"}).status_code
        for i in range(n)
    ]


def cpus_of(pid: int) -> set[frozenset[int]]:
    """The CPU sets the threads of a process may run on (one set if they all agree)."""
    return {frozenset(os.sched_getaffinity(int(task.name))) for task in Path(f"/proc/{pid}/task").iterdir()}


def cpu_of(pid: int) -> int:
    """The one CPU every thread of a process is pinned to; -1 if any may run on another."""
    found = cpus_of(pid)
    only = next(iter(found))
    return next(iter(only)) if len(found) == 1 and len(only) == 1 else -1


def two_of_our_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))[:2]


two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")


@two_cpus
def test_workers_share_the_port_one_metrics_page_replacement_and_drain(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    cpus = two_of_our_cpus()
    server = workers_server(shipped_bundle_dir, tmp_path, cpus=",".join(map(str, cpus)), shutdown_grace_s=10).start()
    try:
        assert server.proc is not None
        eventually(lambda: server.logs().count('"msg":"ready"') == 2)
        workers = set(children(server.proc.pid))
        assert len(workers) == 2
        # As many workers as CPUs: each worker, every thread of it, on a CPU of its own.
        assert sorted(cpu_of(pid) for pid in workers) == cpus

        assert predict_on_new_connections(server.url, 60) == [200] * 60
        request_ids = eventually(lambda: re.findall(r'"request_id":"(\w{32})","method":"POST"', server.logs())
                                 if server.logs().count('"route":"/predict"') >= 60 else None)
        assert len({rid[:16] for rid in request_ids}) == 2  # both workers answered some
        eventually(lambda: answered(server.url) == 60)
        assert [answered(server.url) for _ in range(8)] == [60.0] * 8  # whichever worker is asked

        os.kill(min(workers), signal.SIGKILL)
        replaced = eventually(lambda: (now := set(children(server.proc.pid))) != workers and len(now) == 2 and now)
        assert min(workers) not in replaced
        # The replacement takes the CPU the dead worker left (it pins itself just after the fork).
        eventually(lambda: sorted(cpu_of(pid) for pid in replaced) == cpus)
        eventually(lambda: server.logs().count('"msg":"ready"') == 3)
        assert predict_on_new_connections(server.url, 10) == [200] * 10
        eventually(lambda: answered(server.url) >= 70)  # the killed worker's count is kept
        # Gauges summed over the live workers only: the killed one's queue is not counted.
        eventually(lambda: capacity(server.url) == 2 * 2048)

        server.signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        assert not children(server.proc.pid)
    finally:
        server.stop()


@two_cpus
def test_worker_affinity_off_leaves_placement_to_the_kernel(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    cpus = two_of_our_cpus()
    with workers_server(shipped_bundle_dir, tmp_path, cpus=",".join(map(str, cpus)), worker_affinity="off") as server:
        assert server.proc is not None
        eventually(lambda: server.logs().count('"msg":"ready"') == 2)
        assert all(cpus_of(pid) == {frozenset(cpus)} for pid in children(server.proc.pid))
        assert "workers pinned" not in server.logs()


def test_a_second_service_on_the_same_port_is_refused(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    with workers_server(shipped_bundle_dir, tmp_path) as server:
        result = run_service(shipped_bundle_dir, TEXTSERVE_PORT=str(server.port), TEXTSERVE_WORKERS="2")
        assert result.returncode == 3
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"textserve: cannot listen on 127.0.0.1:{server.port}: ")
        assert predict_on_new_connections(server.url, 4) == [200] * 4


def test_a_damaged_bundle_stops_the_workers_with_one_clear_line(bundle_copy: Path) -> None:
    flip_model_byte(bundle_copy)
    result = run_service(bundle_copy, TEXTSERVE_WORKERS="3")
    assert result.returncode == 1
    clear = [line for line in result.stderr.splitlines() if line.startswith("textserve: ")]
    assert len(clear) == 1
    assert "model.onnx fails its sha256 check" in clear[0]



def test_sigterm_drains_every_worker(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    """Requests accepted before SIGTERM are answered; later ones are refused cleanly (503, or
    no connection once a worker has closed its socket); both workers drain and exit 0."""
    texts = [f"the flight number {i} was delayed again" for i in range(256)]
    server = workers_server(
        shipped_bundle_dir, tmp_path, max_texts_per_request=256, max_queue_size=8192, shutdown_grace_s=20
    ).start()
    try:
        eventually(lambda: server.logs().count('"msg":"ready"') == 2)

        async def scenario() -> list[httpx.Response | Exception]:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

                async def one() -> httpx.Response | Exception:
                    try:
                        return await client.post("/predict", json={"texts": texts})
                    except httpx.TransportError as exc:
                        return exc

                in_flight = [asyncio.create_task(one()) for _ in range(48)]
                await asyncio.sleep(0.3)  # both workers are busy with some of them by now
                server.signal(signal.SIGTERM)
                return await asyncio.gather(*in_flight)

        outcomes = asyncio.run(scenario())
        code = server.wait(timeout=40)
    finally:
        server.stop()
    answered = [o for o in outcomes if isinstance(o, httpx.Response) and o.status_code == 200]
    refused = [o for o in outcomes if isinstance(o, httpx.Response) and o.status_code == 503]
    unreached = [o for o in outcomes if isinstance(o, httpx.ConnectError)]
    assert len(answered) + len(refused) + len(unreached) == len(outcomes)
    assert answered and all(len(r.json()["predictions"]) == 256 for r in answered)
    assert all(r.json()["code"] == "shutting_down" for r in refused)
    assert server.logs().count('"msg":"draining"') == 2
    assert code == 0


def test_a_model_onnxruntime_refuses_stops_the_start_with_a_clear_error(bundle_copy: Path) -> None:
    """The arbiter's bundle check passes (the checksums agree); every worker then fails to
    open the graph, and gunicorn stops with its boot-error code."""
    model = bundle_copy / "model.onnx"
    model.write_bytes(b"not an onnx graph")
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["model.onnx"] = {"sha256": sha256_file(model), "bytes": model.stat().st_size}
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    result = run_service(bundle_copy, TEXTSERVE_WORKERS="2")
    assert result.returncode == 3
    clear = {line for line in result.stderr.splitlines() if line.startswith("textserve: ")}
    assert len(clear) == 1  # each worker that got that far says the same line
    assert "onnxruntime cannot load model.onnx" in clear.pop()
    assert "Traceback" not in result.stderr


def test_workers_do_not_outlive_a_killed_arbiter(shipped_bundle_dir: Path, tmp_path: Path) -> None:
    """Orphaned workers would keep serving on the port (each has its own SO_REUSEPORT socket)
    and take a share of the next server's connections."""
    with workers_server(shipped_bundle_dir, tmp_path) as server:
        assert server.proc is not None
        eventually(lambda: server.logs().count('"msg":"ready"') == 2)
        workers = children(server.proc.pid)
        server.signal(signal.SIGKILL)
        server.wait(timeout=10)
        eventually(lambda: not any(map(alive, workers)) or None)


def alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
