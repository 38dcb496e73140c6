"""HTTP/1.1 on the wire through the real server's protocol (one write per response):
keep-alive, pipelining, ``Connection: close`` and uvicorn's own 400 all arrive whole."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(shipped_bundle_dir: Path) -> Iterator[ServerProcess]:
    with ServerProcess(shipped_bundle_dir) as running:
        yield running


def predict_request(texts: list[str], *, close: bool = False) -> bytes:
    body = json.dumps({"texts": texts}).encode()
    head = (
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    )
    return head.encode() + body


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


Response = tuple[int, dict[str, str], bytes]


def first_response(data: bytes) -> tuple[Response, bytes] | None:
    """The first Content-Length-framed response in ``data`` and the bytes after it, or None
    while its head or body is still incomplete."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    length = int(headers["content-length"])
    if len(rest) < length:
        return None
    return (int(status_line.split()[1]), headers, rest[:length]), rest[length:]


def split_responses(data: bytes) -> list[Response]:
    """Every response in ``data``; any byte left over (a cut or an extra response) fails."""
    out = []
    while data:
        framed = first_response(data)
        assert framed is not None, f"incomplete response: {data[:200]!r}"
        response, data = framed
        out.append(response)
    return out


def test_pipelined_requests_are_answered_in_order_and_close_is_honoured(server: ServerProcess) -> None:
    batches = [["great flight, thanks!"], ["lost my bag", "ok", "@united why?"], ["bye"]]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"".join(predict_request(t, close=i == 2) for i, t in enumerate(batches)))
        responses = split_responses(read_until_closed(sock))  # the server closes after the 3rd
    assert [status for status, _, _ in responses] == [200, 200, 200]
    for texts, (_, headers, body) in zip(batches, responses, strict=True):
        assert headers["content-type"] == "application/json"
        assert len(json.loads(body)["predictions"]) == len(texts)
    assert responses[-1][1].get("connection") == "close"


def read_one_response(sock: socket.socket) -> Response:
    data = b""
    while (framed := first_response(data)) is None:
        chunk = sock.recv(65536)
        assert chunk, "connection closed before a whole response arrived"
        data += chunk
    response, rest = framed
    assert rest == b"", "more than one response arrived"
    return response


def test_keep_alive_connection_serves_many_requests(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for i in range(20):
            sock.sendall(predict_request([f"request number {i}"]))
            status, _, body = read_one_response(sock)
            assert status == 200 and len(json.loads(body)["predictions"]) == 1


def test_malformed_request_gets_its_400_before_the_connection_closes(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 "), data[:100]
    (status, _, body), = split_responses(data)
    assert status == 400 and body
