"""Slow and vanished clients against a real server process: a client that hangs up mid-body,
leaves while its texts are queued, or never reads its answers costs no queue slot, no
in-flight slot, no thread, no file descriptor and no memory after it is gone, and does not
disturb the requests it shared a batch with."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.bundle.format import load_bundle
from service.bundle.runtime import ModelRuntime
from tests.conftest import SHIPPED_MODEL
from tests.e2e.server import ServerProcess
from tests.reliability.helpers import (
    connect,
    http_request,
    metric,
    metrics,
    open_fds,
    predict_request,
    rss_mib,
    thread_count,
    wait_until,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
JSON = {"Content-Type": "application/json"}
# 40+ tokens each: every text costs the model its full max_length.
LONG = [" ".join(f"word{i} flight delayed again {j}" for j in range(10)) for i in range(1024)]


def settled(server: ServerProcess, timeout: float = 10.0) -> str:
    """/metrics once nothing is queued or in flight (bounded wait)."""
    page = ""

    def idle() -> bool:
        nonlocal page
        page = metrics(server.url)
        queued = metric(page, "textserve_queue_depth")
        return queued == 0 and metric(page, "textserve_requests_in_flight") == 0

    assert wait_until(idle, timeout), page
    return page


def assert_no_server_errors(server: ServerProcess, page: str) -> None:
    assert 'status="500"' not in page
    assert "unhandled error" not in server.logs()
    assert "Traceback" not in server.logs()


def test_clients_that_hang_up_mid_body_cost_nothing(start_server: Callable[..., ServerProcess]) -> None:
    server = start_server()
    fds_before = open_fds(server.proc.pid)  # type: ignore[union-attr]
    body = json.dumps({"texts": ["hello there"] * 50}).encode()
    for i in range(20):
        with connect(server.port) as sock:
            if i % 2:  # Content-Length promises more than is sent
                sock.sendall(predict_request(body)[: -len(body) // 2])
            else:  # a chunked body whose last chunk never comes
                head = http_request("POST", "/predict", None, {**JSON, "Transfer-Encoding": "chunked"})
                sock.sendall(head + f"{len(body):x}\r\n".encode() + body + b"\r\n")
            time.sleep(0.01)
    page = settled(server)
    assert wait_until(
        lambda: metric(metrics(server.url), "textserve_requests_total",
                       'method="POST",protocol="http",route="/predict",status="499"') == 20, 10)
    assert_no_server_errors(server, page)
    assert httpx.post(server.url + "/predict", json={"texts": ["still here"]}).status_code == 200
    assert wait_until(lambda: open_fds(server.proc.pid) <= fds_before, 5)  # type: ignore[union-attr]


def reference(texts: list[str]) -> list[dict[str, float]]:
    """The shipped model's scores, straight from onnxruntime in this process."""
    bundle = load_bundle(SHIPPED_MODEL)
    probs = ModelRuntime(bundle).predict(bundle.tokenizer.encode(texts))
    return [dict(zip(bundle.labels, row.tolist(), strict=True)) for row in probs]


def same_scores(got: list[dict[str, float]], want: list[dict[str, float]]) -> bool:
    return len(got) == len(want) and all(
        abs(g[k] - w[k]) < 1e-5 for g, w in zip(got, want, strict=True) for k in w
    )


def test_requests_whose_clients_left_while_queued_are_never_run(
    start_server: Callable[..., ServerProcess], figures: dict[str, Any]
) -> None:
    # One text per model run and 1024 texts: the queue stays busy for seconds, even on a
    # loaded machine, while the 20 leavers are admitted behind it.
    server = start_server(max_batch_size=1, max_texts_per_request=1024, request_timeout_s=60)
    want = reference(LONG)
    ran_before = metric(metrics(server.url), "textserve_batch_size_sum")
    result: dict[str, Any] = {}

    def busy() -> None:
        response = httpx.post(server.url + "/predict", json={"texts": LONG}, timeout=60)
        result["status"] = response.status_code
        result["scores"] = [p["scores"] for p in response.json()["predictions"]]

    worker = threading.Thread(target=busy)
    worker.start()
    # Its texts are queued (not just being tokenized): the leavers will be behind them.
    assert wait_until(lambda: metric(metrics(server.url), "textserve_queue_depth") >= 900, 20)
    leavers = []
    for _ in range(20):
        sock = connect(server.port)
        sock.sendall(predict_request(json.dumps({"texts": ["gone before my turn"] * 16}).encode()))
        leavers.append(sock)
    queued = wait_until(lambda: metric(metrics(server.url), "textserve_requests_in_flight") == 21, 10)
    for sock in leavers:
        sock.close()
    assert queued, "the 20 requests were never all queued behind the busy one"
    assert wait_until(lambda: metric(metrics(server.url), "textserve_requests_in_flight") <= 1, 10)
    assert "status" not in result, "the busy request ended before the leavers were noticed: no test"
    worker.join(60)
    page = settled(server)
    assert result["status"] == 200 and same_scores(result["scores"], want)
    ran = metric(page, "textserve_batch_size_sum") - ran_before
    figures["vanished_clients_texts_run"] = f"{ran:g} of {len(LONG) + 20 * 16} queued (20 clients left)"
    assert ran == len(LONG), "texts of clients that had left were run anyway"
    assert metric(page, "textserve_requests_total", 'method="POST",protocol="http",route="/predict",status="499"') == 20
    assert_no_server_errors(server, page)


def test_clients_leaving_mid_batch_do_not_disturb_their_batch_mates(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server(max_batch_size=32, max_batch_delay_ms=20)
    texts = ["great crew, thanks!", "lost my bag", "the car drove itself", "", "\U0001f600 ok"]
    want = reference(texts)
    outcomes: list[bool] = []

    def stayer() -> None:
        response = httpx.post(server.url + "/predict", json={"texts": texts}, timeout=30)
        outcomes.append(
            response.status_code == 200
            and same_scores([p["scores"] for p in response.json()["predictions"]], want)
        )

    def leaver(delay: float) -> None:
        with connect(server.port) as sock:
            sock.sendall(predict_request(json.dumps({"texts": texts}).encode()))
            time.sleep(delay)

    for round_ in range(5):
        threads = [threading.Thread(target=stayer) for _ in range(8)]
        threads += [threading.Thread(target=leaver, args=(0.001 * i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(outcomes) == 8 * (round_ + 1)
    assert all(outcomes)
    page = settled(server)
    assert_no_server_errors(server, page)


def test_clients_that_never_read_their_answers_hold_no_slots(
    start_server: Callable[..., ServerProcess], figures: dict[str, Any]
) -> None:
    server = start_server()
    pid = server.proc.pid  # type: ignore[union-attr]
    assert httpx.post(server.url + "/predict", json={"texts": LONG[:64]}).status_code == 200
    fds, threads, rss = open_fds(pid), thread_count(pid), rss_mib(pid)
    # One-word texts: cheap to run, but each answer is ~30 KB, so a few fill the socket buffers.
    request = predict_request(json.dumps({"texts": ["ok"] * 256}).encode())
    silent: list[socket.socket] = []
    for _ in range(10):  # each pipelines 10 requests (~300 KB of answers) and reads none
        sock = connect(server.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        for _ in range(10):
            try:
                sock.send(request)
            except BlockingIOError:
                break
        silent.append(sock)
    try:
        time.sleep(1.0)
        page = settled(server)
        assert httpx.post(server.url + "/predict", json={"texts": ["others still served"]}).status_code == 200
        during_rss = rss_mib(pid)
    finally:
        for sock in silent:
            sock.close()
    assert wait_until(lambda: open_fds(pid) <= fds, 10), (open_fds(pid), fds)
    after_rss = rss_mib(pid)
    figures["silent_clients_rss_mib"] = f"before {rss:.0f}, holding {during_rss:.0f}, after {after_rss:.0f}"
    assert thread_count(pid) == threads
    assert after_rss < rss + 50
    assert_no_server_errors(server, page)
