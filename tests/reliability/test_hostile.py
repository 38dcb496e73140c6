"""Hostile requests to one real server process over a raw socket: each gets its documented
answer quickly, and the server keeps answering valid requests after every one of them.

The server runs with the documented defaults except ``request_timeout_s=2`` (so the
never-finished bodies are answered within the test's time). Answers from the HTTP layer
(uvicorn: malformed framing) are plain-text 400s with the connection closed; they never
reach the app. Everything else is the app's JSON error.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.reliability.helpers import (
    LEAKS,
    connect,
    http_request,
    metric,
    metrics,
    predict_request,
    raw_request,
    read_response,
    rss_mib,
)

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]
TIMEOUT_S = 2.0
MB = 1024 * 1024
CT = "application/json"
TRIED: list[str] = []


def p(body: bytes, content_type: str | None = CT, **headers: str) -> bytes:
    return predict_request(body, content_type, **headers)


def texts(items: list[Any]) -> bytes:
    return json.dumps({"texts": items}).encode()


def deep(n: int) -> bytes:
    return b'{"texts": ' + b"[" * n + b"]" * n + b"}"


def chunked(*chunks: bytes, end: bool = True) -> bytes:
    head = http_request("POST", "/predict", None, {"Content-Type": CT, "Transfer-Encoding": "chunked"})
    body = b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks)
    return head + body + (b"0\r\n\r\n" if end else b"")


# (id, request bytes, expected status, expected code or None for a success / HTTP-layer answer)
CASES: list[tuple[str, bytes, int, str | None]] = [
    ("truncated-json", p(b'{"texts": ["abc"'), 400, "bad_request"),
    ("truncated-mid-string", p(b'{"texts": ["ab'), 400, "bad_request"),
    ("truncated-mid-escape", p(b'{"texts": ["a\\u00'), 400, "bad_request"),
    ("empty-body", p(b""), 400, "bad_request"),
    ("whitespace-body", p(b" \r\n\t "), 400, "bad_request"),
    ("utf8-bom", p(b'\xef\xbb\xbf{"texts": ["a"]}'), 400, "bad_request"),
    ("deep-arrays-100k", p(deep(100_000)), 400, "bad_request"),
    ("deep-objects-10k", p(b'{"texts": ["a"], "x": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"), 400,
     "bad_request"),
    ("body-50MB-declared", p(b"x" * (50 * MB)), 413, "payload_too_large"),
    ("body-50MB-chunked", chunked(*([b"x" * MB] * 50)), 413, "payload_too_large"),
    ("one-text-10MB", p(json.dumps({"text": "a" * (10 * MB)}).encode()), 413, "payload_too_large"),
    ("one-text-over-chars", p(json.dumps({"text": "a" * 5001}).encode()), 422, "invalid_input"),
    ("100k-tiny-texts", p(texts(["a"] * 100_000)), 422, "invalid_input"),
    ("100k-empty-texts", p(texts([""] * 100_000)), 422, "invalid_input"),
    ("number-for-string", p(texts(["a", 1])), 422, "invalid_input"),
    ("null-for-string", p(texts([None])), 422, "invalid_input"),
    ("object-for-string", p(texts([{"a": "b"}])), 422, "invalid_input"),
    ("bool-for-text", p(b'{"text": true}'), 422, "invalid_input"),
    ("object-for-list", p(b'{"texts": {"0": "a"}}'), 422, "invalid_input"),
    ("nan-for-string", p(b'{"texts": [NaN]}'), 422, "invalid_input"),
    ("huge-exponent", p(b'{"texts": [1e999999]}'), 422, "invalid_input"),
    ("json-null", p(b"null"), 422, "invalid_input"),
    ("invalid-utf8", p(b'{"texts": ["caf\xe9"]}'), 400, "bad_request"),
    ("overlong-utf8", p(b'{"texts": ["\xc0\xaf"]}'), 400, "bad_request"),
    ("raw-nul-in-string", p(b'{"texts": ["a\x00b"]}'), 400, "bad_request"),
    ("raw-control-in-string", p(b'{"texts": ["a\x1bb"]}'), 400, "bad_request"),
    ("escaped-nul-and-controls", p(b'{"texts": ["a\\u0000b\\u0001\\u001f\\u007f"]}'), 200, None),
    ("lone-high-surrogate", p(b'{"texts": ["\\ud800"]}'), 400, "bad_request"),
    ("lone-low-surrogate", p(b'{"texts": ["x\\udc00y"]}'), 400, "bad_request"),
    ("reversed-surrogates", p(b'{"texts": ["\\udc00\\ud800"]}'), 400, "bad_request"),
    ("valid-surrogate-pair", p(b'{"texts": ["\\ud83d\\ude00"]}'), 200, None),
    ("text-plain", p(texts(["a"]), "text/plain"), 415, "unsupported_media_type"),
    ("form-urlencoded", p(b"texts=a", "application/x-www-form-urlencoded"), 415, "unsupported_media_type"),
    ("multipart", p(b"--x\r\n\r\na\r\n--x--", "multipart/form-data; boundary=x"), 415,
     "unsupported_media_type"),
    ("missing-content-type", p(texts(["a"]), None), 415, "unsupported_media_type"),
    ("json-suffix-type", p(texts(["a"]), "application/merge-patch+json"), 200, None),
    ("json-with-charset", p(texts(["a"]), "application/json; charset=latin-1"), 200, None),
    ("duplicate-keys-last-wins", p(b'{"texts": ["a"], "texts": ["b", "c"]}'), 200, None),
    ("both-forms", p(b'{"texts": ["a"], "text": "b"}'), 422, "invalid_input"),
    ("extra-field", p(b'{"texts": ["a"], "model": "other"}'), 422, "invalid_input"),
    ("get-with-body", http_request("GET", "/predict", texts(["a"]), {"Content-Type": CT}), 405,
     "method_not_allowed"),
    ("expect-100-too-big", http_request(
        "POST", "/predict", None,
        {"Content-Type": CT, "Content-Length": str(50 * MB), "Expect": "100-continue"}),
     413, "payload_too_large"),
    ("bad-content-length", http_request(
        "POST", "/predict", texts(["a"]), {"Content-Type": CT, "Content-Length": "1e3"}), 400, None),
    ("negative-content-length", http_request("POST", "/predict", texts(["a"]),
                                             {"Content-Type": CT, "Content-Length": "-5"}), 400, None),
    ("unknown-transfer-encoding", http_request("POST", "/predict", texts(["a"]),
                                               {"Content-Type": CT, "Transfer-Encoding": "zip"}), 400, None),
    ("not-http-at-all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", 400,
     None),
    ("oversized-request-id", p(texts(["a"]), **{"X-Request-ID": "r" * 10_000}), 200, None),
    ("http-1.0", b"POST /predict HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n"
     b'{"texts":["a"]}', 200, None),
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    from tests.conftest import SHIPPED_MODEL

    with ServerProcess(SHIPPED_MODEL, request_timeout_s=TIMEOUT_S) as running:
        yield running


def still_serving(server: ServerProcess) -> None:
    response = httpx.post(server.url + "/predict", json={"texts": ["still serving?"]}, timeout=10)
    assert response.status_code == 200


@pytest.mark.parametrize(("data", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_request_gets_its_documented_answer(
    server: ServerProcess, data: bytes, status: int, code: str | None, request: pytest.FixtureRequest,
) -> None:
    TRIED.append(request.node.callspec.id)
    response = raw_request(server.port, data, timeout=30)
    assert response.status == status, response.body[:300]
    assert response.seconds < 10  # 50 MB over loopback included; usually milliseconds
    if code is not None:
        assert response.headers["content-type"] == "application/json"
        assert json.loads(response.body)["code"] == code
    elif status == 200:
        assert len(json.loads(response.body)["predictions"]) >= 1
    else:  # the HTTP layer's own answer: plain, and the connection is not reused
        assert response.closed
    for leak in LEAKS:
        assert leak.encode() not in response.body
    still_serving(server)


def test_duplicate_keys_take_the_last_value(server: ServerProcess) -> None:
    response = raw_request(server.port, p(b'{"texts": ["a"], "texts": ["b", "c"]}'))
    assert len(json.loads(response.body)["predictions"]) == 2


def test_a_body_that_never_finishes_gets_408_and_its_connection_closed(server: ServerProcess) -> None:
    TRIED.extend(["never-finished-chunked", "content-length-never-met", "trickled-body"])
    unfinished = [
        chunked(b'{"texts": ["a', end=False),  # the last chunk never comes
        p(b'{"texts": ["a"]}')[:-5],  # Content-Length promises 5 more bytes
    ]
    for data in unfinished:
        with connect(server.port) as sock:
            started = time.perf_counter()
            sock.sendall(data)
            response = read_response(sock, started, timeout=TIMEOUT_S + 10)
        assert response.status == 408 and json.loads(response.body)["code"] == "request_timeout"
        assert TIMEOUT_S - 0.1 <= response.seconds < TIMEOUT_S + 5
        assert response.closed
    # A slowloris trickling one byte every 100 ms is cut off at the same deadline.
    body = texts(["slow " * 10])  # ~60 bytes: ~6 s at this pace, over the 2 s deadline
    with connect(server.port) as sock:
        started = time.perf_counter()
        sock.sendall(p(body)[: -len(body)])
        sock.settimeout(0.1)
        answer = b""
        for byte in body:
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                break
            if answer:
                break
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert time.perf_counter() - started < TIMEOUT_S + 5
    still_serving(server)


def test_connections_stuck_in_their_headers_do_not_stop_the_server(server: ServerProcess) -> None:
    """uvicorn has no header-read timeout: such connections are held until the client goes
    (documented; a reverse proxy should bound them). Here 100 of them stay open while the
    server keeps answering, and cost it no lasting memory."""
    TRIED.append("stuck-in-headers-x100")
    pid = server.proc.pid  # type: ignore[union-attr]
    before = rss_mib(pid)
    stuck: list[socket.socket] = []
    try:
        for _ in range(100):
            sock = connect(server.port)
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000)
            stuck.append(sock)
        for _ in range(5):
            still_serving(server)
    finally:
        for sock in stuck:
            sock.close()
    assert rss_mib(pid) < before + 50


def test_the_server_is_healthy_after_every_hostile_request(
    server: ServerProcess, figures: dict[str, Any]
) -> None:
    page = metrics(server.url)
    assert metric(page, "textserve_queue_depth") == 0
    assert metric(page, "textserve_requests_in_flight") == 0
    assert 'status="500"' not in page
    assert "unhandled error" not in server.logs() and "Traceback" not in server.logs()
    assert httpx.get(server.url + "/health").status_code == 200
    still_serving(server)
    figures["hostile_requests_tried"] = len(TRIED)
    figures["hostile_server_rss_mib_after"] = round(rss_mib(server.proc.pid), 1)  # type: ignore[union-attr]
