"""Per-request bookkeeping as plain ASGI (no BaseHTTPMiddleware cost on the hot path):
request id, one JSON access-log line, request metrics, and the last-resort 500."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.logs import AccessLog
from service.metrics import LoopCounter, LoopHistogram, Metrics
from service.scope_keys import REQUEST_ID_KEY, ROUTE_KEY, TEXTS_KEY

error_log = logging.getLogger("textserve.error")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probes are not traffic: no request metrics, and no access-log line unless they fail.
PROBE_ROUTES = frozenset({
    "/health", "/health/live", "/metrics", "/v2/health/live", "/v2/health/ready",
    "/v2/models/{model_name}/ready", "/v2/models/{model_name}/versions/{model_version}/ready",
})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
# Request ids: a random per-process prefix and a counter, 32 hex digits like a UUID's, at a
# fraction of uuid4's cost (no urandom call per request). A forked worker draws its own.
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count()
# nginx's code for "the client closed the connection before the response": never sent.
CLIENT_CLOSED = 499


def _new_id_prefix() -> None:
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_id_prefix)


def route_of(scope: Scope) -> str:
    """The matched route's template (bounded label values), never the raw path."""
    route = scope.get(ROUTE_KEY)
    if route is None:
        route = getattr(scope.get("route"), "path", None)
    return route if isinstance(route, str) else "unmatched"


class RequestRecorder:
    """A request's bookkeeping once it is answered: the request metrics and the access-log
    line. Shared by ``RequestMiddleware`` and the lean /predict path, which records its own
    requests without the middleware's extra ASGI layer."""

    def __init__(self, metrics: Metrics, access_log: AccessLog | None) -> None:
        self.metrics = metrics
        self.access_log = access_log
        # One lookup per request for both series; the set of children is small.
        self._children: dict[tuple[str, str, str], tuple[LoopCounter, LoopHistogram]] = {}

    def record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = route_of(scope)
        probe = route in PROBE_ROUTES
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
        if not probe:
            key = (route, method, str(status))
            children = self._children.get(key)
            if children is None:
                children = (self.metrics.requests.labels(*key), self.metrics.request_seconds.labels(route))
                self._children[key] = children
            children[0].inc()
            children[1].observe(seconds)
        if self.access_log is not None and (not probe or status >= 500):
            entry: dict[str, Any] = {
                "request_id": request_id,
                "method": method,
                "route": route,
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
            }
            texts = scope.get(TEXTS_KEY)
            if texts is not None:
                entry["texts"] = texts
            self.access_log.write(entry)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def valid_request_id(candidate: bytes) -> str | None:
    """A client's ``X-Request-ID``, if it is one we may echo and log."""
    text = candidate.decode("latin-1")
    return text if _REQUEST_ID.match(text) else None


class RequestMiddleware:
    def __init__(self, app: ASGIApp, recorder: RequestRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_CLOSED
        except Exception:
            status = await answer_unhandled(send, request_id, rid_header, response_started)
        finally:
            self.recorder.record(scope, status, time.perf_counter() - started, request_id)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return valid_request_id(value)
    return None


async def answer_unhandled(
    send: Send, request_id: str, rid_header: tuple[bytes, bytes], response_started: bool
) -> int:
    """The last resort for an exception nothing turned into a response (call it inside the
    ``except``): log it with its request id and, unless a response has begun, answer 500.
    The status to record."""
    error_log.exception("unhandled error", extra={"request_id": request_id})
    if not response_started:
        await _send_500(send, request_id, rid_header)
    return 500


async def _send_500(send: Send, request_id: str, rid_header: tuple[bytes, bytes]) -> None:
    body = error_body(500, "internal_error", "internal server error", request_id=request_id)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), rid_header]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
