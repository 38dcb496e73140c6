"""Per-request bookkeeping as plain ASGI (no BaseHTTPMiddleware cost on the hot path):
request id, one JSON access-log line, request metrics, and the last-resort 500."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_body
from service.metrics import Metrics

access_log = logging.getLogger("textserve.access")
error_log = logging.getLogger("textserve.error")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_ID_KEY = "textserve.request_id"
# Probes are not traffic: no request metrics, and no access-log line unless they fail.
PROBE_ROUTES = frozenset({"/health", "/health/live", "/metrics", "/v2/health/live", "/v2/health/ready"})


def route_of(scope: Scope) -> str:
    """The matched route's template (bounded label values), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class RequestMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
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
        except Exception:
            error_log.exception("unhandled error", extra={"request_id": request_id})
            status = 500
            if not response_started:
                await _send_500(send, request_id, rid_header)
        finally:
            self._record(scope, status, time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = route_of(scope)
        probe = route in PROBE_ROUTES
        if not probe:
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(seconds)
        if self.log_requests and (not probe or status >= 500):
            extra: dict[str, Any] = {
                "request_id": request_id,
                "method": scope["method"],
                "route": route,
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
            }
            texts = scope.get("textserve.texts")
            if texts is not None:
                extra["texts"] = texts
            access_log.info("request", extra=extra)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _REQUEST_ID.match(candidate) else None
    return None


async def _send_500(send: Send, request_id: str, rid_header: tuple[bytes, bytes]) -> None:
    body = error_body(500, "internal_error", "internal server error", request_id=request_id)
    await send({
        "type": "http.response.start",
        "status": 500,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), rid_header],
    })
    await send({"type": "http.response.body", "body": body})
