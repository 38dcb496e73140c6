"""POST /predict on the lean path answers exactly as the plain FastAPI route does, over
real sockets through the real server, and keeps HTTP/1.1's promises on the way."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_http_wire import read_one_response, read_until_closed, split_responses
from tests.integration.test_fast_path import LIMITS, Answer, answers_from
from tests.reliability.helpers import predict_request

pytestmark = pytest.mark.e2e
KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def servers(shipped_bundle_dir: Path) -> Iterator[dict[bool, ServerProcess]]:
    """The same settings with the lean path on and off (the plain route answers then)."""
    with (
        ServerProcess(shipped_bundle_dir, fast_path=True, api_key=KEY, **LIMITS) as lean,
        ServerProcess(shipped_bundle_dir, fast_path=False, api_key=KEY, **LIMITS) as plain,
    ):
        yield {True: lean, False: plain}


def answers(server: ServerProcess, auth: bool) -> list[Answer]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return answers_from(client, f"Bearer {KEY}" if auth else None)


@pytest.mark.parametrize("auth", [True, False])
def test_lean_and_plain_paths_answer_alike_over_http(servers: dict[bool, ServerProcess], auth: bool) -> None:
    lean, plain = answers(servers[True], auth), answers(servers[False], auth)
    assert lean == plain
    statuses = {status for status, _, _ in lean}
    assert statuses >= ({200, 400, 413, 415, 422} if auth else {401})


def test_lean_path_counts_and_logs_each_request(servers: dict[bool, ServerProcess]) -> None:
    server = servers[True]
    body = json.dumps({"texts": ["on time for once"]})
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "X-Request-ID": "trace-42"}
    r = httpx.post(server.url + "/predict", content=body, headers=headers, timeout=10)
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42" and "date" in r.headers
    page = httpx.get(server.url + "/metrics", timeout=10).text
    assert 'textserve_requests_total{method="POST",route="/predict",status="200"}' in page
    assert "textserve_predictions_total" in page
    for _ in range(100):  # the access log is written in batches, within 0.1 s: wait up to 2 s
        logged = [line for line in server.logs().splitlines() if '"request_id":"trace-42"' in line]
        if logged:
            break
        time.sleep(0.02)
    (line,) = logged
    entry = json.loads(line)
    assert entry["route"] == "/predict" and entry["status"] == 200 and entry["texts"] == 1


def test_expect_100_continue_then_the_answer(servers: dict[bool, ServerProcess]) -> None:
    body = json.dumps({"texts": ["ready when you are"]}).encode()
    head = predict_request(body, **AUTH, Expect="100-continue")[: -len(body)]
    with socket.create_connection(("127.0.0.1", servers[True].port), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = read_one_response(sock)
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1


def test_chunked_body_and_pipelined_requests_with_close(servers: dict[bool, ServerProcess]) -> None:
    body = json.dumps({"texts": ["in pieces", "still in pieces"]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    chunked = predict_request(chunks, **AUTH, **{"Transfer-Encoding": "chunked"})
    first = predict_request(json.dumps({"texts": ["first"]}).encode(), **AUTH)
    last = predict_request(json.dumps({"texts": ["last"]}).encode(), **AUTH, Connection="close")
    with socket.create_connection(("127.0.0.1", servers[True].port), timeout=10) as sock:
        sock.sendall(first + chunked + last)
        data = read_until_closed(sock)
    responses = split_responses(data)
    assert [status for status, _, _ in responses] == [200, 200, 200]
    assert [len(json.loads(b)["predictions"]) for _, _, b in responses] == [1, 2, 1]
    assert responses[-1][1]["connection"] == "close"
