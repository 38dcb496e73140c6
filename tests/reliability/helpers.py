"""Tools for the abuse tests: raw HTTP over a socket, /metrics and /proc readings, timing."""

from __future__ import annotations

import re
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Strings that must never reach a client in an error body.
LEAKS = ("Traceback", 'File "', ".py", "site-packages", "/usr/", "/work/", "/root/", "/tmp/", "/home/")


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    closed: bool = False  # the server closed the connection after answering
    raw: bytes = field(default=b"", repr=False)

    def json(self) -> object:
        import json

        return json.loads(self.body)


class ServerClosed(Exception):
    """The server closed the connection without a (complete) response."""


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket, started: float, timeout: float = 10.0) -> RawResponse:
    """Read one HTTP/1.1 response (Content-Length or close-delimited; no chunked bodies)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ServerClosed(data[:200].decode("latin-1"))
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    closed = False
    if "content-length" in headers:
        need = int(headers["content-length"])
        while len(body) < need:
            chunk = sock.recv(65536)
            if not chunk:
                raise ServerClosed(f"body cut at {len(body)} of {need} bytes")
            body += chunk
    else:
        while chunk := sock.recv(65536):
            body += chunk
        closed = True
    if headers.get("connection", "").lower() == "close" and not closed:
        try:
            sock.settimeout(2.0)
            closed = sock.recv(1) == b""
        except (TimeoutError, OSError):
            closed = False
    return RawResponse(status, headers, body, time.perf_counter() - started, closed, data)


def raw_request(port: int, data: bytes, timeout: float = 10.0) -> RawResponse:
    """Send ``data`` as-is on a new connection and read one response."""
    with connect(port, timeout) as sock:
        started = time.perf_counter()
        sock.sendall(data)
        return read_response(sock, started, timeout)


def http_request(
    method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
    version: str = "HTTP/1.1",
) -> bytes:
    """The bytes of a request; Content-Length is added for a body unless a header says otherwise."""
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    given = {k.lower() for k in (headers or {})}
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None and "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def predict_request(body: bytes, content_type: str | None = "application/json", **headers: str) -> bytes:
    hdrs = dict(headers)
    if content_type is not None:
        hdrs["Content-Type"] = content_type
    return http_request("POST", "/predict", body, hdrs)


# -- /metrics and /proc ------------------------------------------------------------------


def metric(page: str, name: str, labels: str = "") -> float:
    """The sum of the samples of ``name`` on a Prometheus page whose labels include
    ``labels`` (``'route="/predict",status="200"'``); 0 if there is none."""
    wanted = set(re.findall(r'(\w+)="([^"]*)"', labels))
    total = 0.0
    for found, value in re.findall(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", page, re.M):
        if wanted <= set(re.findall(r'(\w+)="([^"]*)"', found)):
            total += float(value)
    return total


def metrics(url: str) -> str:
    return httpx.get(url + "/metrics", timeout=10).text


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        out[name] = value.strip()
    return out


def rss_mib(pid: int) -> float:
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def thread_count(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def open_fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def wait_until(predicate: object, timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate()`` until true or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(predicate())  # type: ignore[operator]
