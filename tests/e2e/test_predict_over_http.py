"""POST /predict through the real server answers exactly as the app does in-process, over
real sockets, and keeps HTTP/1.1's promises on the way."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.e2e.server import ServerProcess
from tests.e2e.test_http_wire import read_one_response, read_until_closed, split_responses
from tests.reliability.helpers import metric, predict_request

pytestmark = pytest.mark.e2e
KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}


JSON = {"Content-Type": "application/json"}
REQUESTS: list[tuple[dict[str, str], bytes]] = [
    (JSON, b'{"texts": ["great flight!", "lost my bag", "", "\\u00e9t\\u00e9 \\ud83d\\ude00"]}'),
    (JSON, b'{"text": "delayed again"}'),
    ({"Content-Type": "application/json; charset=utf-8"}, b'{"texts": ["fine"]}'),
    ({"Content-Type": "application/vnd.api+json"}, b'{"texts": ["fine"]}'),
    (JSON, b'{"texts": ["' + b"word " * 60 + b'"]}'),
    (JSON, b'{"texts": ['),
    (JSON, b""),
    (JSON, b"[1]"),
    (JSON, b'{"texts": [1, null, {}]}'),
    (JSON, b'{"texts": [], "x": 1}'),
    (JSON, b'{"texts": ["' + b"x" * 300 + b'"]}'),
    (JSON, b'{"texts": ["a", "b", "c", "d", "e", "f"]}'),
    (JSON, b'{"texts": ["' + b"y" * 3000 + b'"]}'),
    ({"Content-Type": "text/plain"}, b'{"texts": ["a"]}'),
    ({}, b'{"texts": ["a"]}'),
    ({**JSON, "Authorization": "Bearer k"}, b'{"texts": ["a"]}'),
]
LIMITS = {"max_texts_per_request": 5, "max_text_chars": 200, "max_body_bytes": 2048}


Answer = tuple[int, dict[str, str], object]


def answers_from(client: httpx.Client, authorization: str | None = None) -> list[Answer]:
    """Status, the headers that matter and the body of each of REQUESTS (with
    ``authorization`` on all of them if given); an error's request id must be the header's."""
    out = []
    for headers, body in REQUESTS:
        sent = {**headers, "Authorization": authorization} if authorization else headers
        r = client.post("/predict", headers=sent, content=body)
        payload = r.json()
        if isinstance(payload, dict):
            assert payload.pop("request_id", r.headers["x-request-id"]) == r.headers["x-request-id"]
        kept = {k: v for k, v in r.headers.items() if k in ("content-type", "retry-after", "www-authenticate")}
        out.append((r.status_code, kept, payload))
    return out


@pytest.fixture(scope="module")
def server(shipped_bundle_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(shipped_bundle_dir, api_key=KEY, **LIMITS) as running:
        yield running


@pytest.mark.parametrize("auth", [True, False])
def test_the_real_server_answers_as_the_app_does_in_process(
    server: ServerProcess, shipped_bundle_dir: Path, auth: bool
) -> None:
    authorization = f"Bearer {KEY}" if auth else None
    with httpx.Client(base_url=server.url, timeout=10) as client:
        over_http = answers_from(client, authorization)
    settings = Settings(model_path=shipped_bundle_dir, api_key=KEY, **LIMITS)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as client:
        in_process = answers_from(client, authorization)
    assert over_http == in_process
    statuses = {status for status, _, _ in over_http}
    assert statuses >= ({200, 400, 413, 415, 422} if auth else {401})


def test_predict_counts_and_logs_each_request(server: ServerProcess) -> None:
    body = json.dumps({"texts": ["on time for once"]})
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json", "X-Request-ID": "trace-42"}
    r = httpx.post(server.url + "/predict", content=body, headers=headers, timeout=10)
    assert r.status_code == 200 and r.headers["x-request-id"] == "trace-42" and "date" in r.headers
    page = httpx.get(server.url + "/metrics", timeout=10).text
    assert metric(page, "textserve_requests_total", 'method="POST",protocol="http",route="/predict",status="200",model="sentiment"') >= 1
    assert "textserve_predictions_total" in page
    for _ in range(100):  # the access log is written in batches, within 0.1 s: wait up to 2 s
        logged = [line for line in server.logs().splitlines() if '"request_id":"trace-42"' in line]
        if logged:
            break
        time.sleep(0.02)
    (line,) = logged
    entry = json.loads(line)
    assert entry["route"] == "/predict" and entry["status"] == 200 and entry["texts"] == 1


def test_expect_100_continue_then_the_answer(server: ServerProcess) -> None:
    body = json.dumps({"texts": ["ready when you are"]}).encode()
    head = predict_request(body, **AUTH, Expect="100-continue")[: -len(body)]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(65536)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, answer = read_one_response(sock)
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1


def test_chunked_body_and_pipelined_requests_with_close(server: ServerProcess) -> None:
    body = json.dumps({"texts": ["in pieces", "still in pieces"]}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    chunked = predict_request(chunks, **AUTH, **{"Transfer-Encoding": "chunked"})
    first = predict_request(json.dumps({"texts": ["first"]}).encode(), **AUTH)
    last = predict_request(json.dumps({"texts": ["last"]}).encode(), **AUTH, Connection="close")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(first + chunked + last)
        data = read_until_closed(sock)
    responses = split_responses(data)
    assert [status for status, _, _ in responses] == [200, 200, 200]
    assert [len(json.loads(b)["predictions"]) for _, _, b in responses] == [1, 2, 1]
    assert responses[-1][1]["connection"] == "close"
