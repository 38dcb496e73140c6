"""The per-request envelope, as plain ASGI middleware (no BaseHTTPMiddleware cost): request
id, request metrics and one JSON access-log line (``RequestRecorder``), the last-resort 500.

Replaces: FastAPI's routing, ``Request`` and dependency solving for ``POST /predict``.
Gain: the app's CPU per /predict request in-process 200 -> 79 us (one core).
Off: ``lean={}`` in ``create_app`` (``service/app.py``): /predict then goes through the router.

Lean routes (``POST /predict``) are a branch inside it: the envelope calls their handler
itself and writes the answer, without the framework's routing, ``Request`` object and
dependency solving, which on one core cost as much CPU per request as a batched model run.
Every other request goes on to the framework. The envelope is added to the app the FastAPI
way (``app.add_middleware``) first, so any middleware added after it runs on every route,
lean ones included.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.asgi.errors import REQUEST_ID_KEY, ClientClosedRequest, ServiceError, error_body, from_engine
from service.engine.admission import EngineError
from service.observability.requests import NO_MODEL, RequestRecorder, new_request_id, valid_request_id

ROUTE_KEY = "textserve.route"  # set for lean routes, which the router never sees
TEXTS_KEY = "textserve.texts"  # number of texts, set by inference routes, for the access log
MODEL_KEY = "textserve.model"  # (model, version) that answered, set by inference routes


# A lean route: the answer's JSON body (status 200), or a ServiceError / EngineError.
LeanHandler = Callable[[Scope, Receive], Awaitable[bytes]]

error_log = logging.getLogger("textserve.error")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
_JSON = (b"content-type", b"application/json")
# nginx's code for "the client closed the connection before the response": never sent.
CLIENT_CLOSED = ClientClosedRequest.status


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return valid_request_id(value) or new_request_id()
    return new_request_id()


def route_of(scope: Scope) -> str:
    """The matched route's template (bounded label values), never the raw path."""
    route = scope.get(ROUTE_KEY)
    if route is None:
        route = getattr(scope.get("route"), "path", None)
    return route if isinstance(route, str) else "unmatched"


class RequestEnvelope:
    def __init__(
        self, app: ASGIApp, recorder: RequestRecorder, lean: Mapping[tuple[str, str], LeanHandler],
        tracing: Any = None,
    ) -> None:
        self.app = app
        self.recorder = recorder
        self.lean = dict(lean)
        self.tracing = tracing  # service.observability.tracing.Tracing, when tracing is on

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope[REQUEST_ID_KEY] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False
        lean = self.lean.get((scope["method"], scope["path"]))
        traced = self.tracing.start_request(scope["method"], scope["path"], scope["headers"]) if self.tracing else None
        try:
            if lean is None:

                async def send_with_id(message: Message) -> None:
                    nonlocal status, response_started
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        response_started = True
                        message["headers"] = [*message.get("headers", ()), rid_header]
                    await send(message)

                await self.app(scope, receive, send_with_id)
            else:
                scope[ROUTE_KEY] = scope["path"]
                headers: Mapping[str, str] | None = None
                try:
                    body = await lean(scope, receive)
                    status = 200
                except (ServiceError, EngineError) as exc:
                    error = exc if isinstance(exc, ServiceError) else from_engine(exc)
                    status, headers = error.status, error.headers
                    body = error_body(status, error.code, error.message, error.details, request_id)
                if status == CLIENT_CLOSED:
                    return  # nobody is there to read it
                response_started = True
                await _respond(send, status, body, rid_header, headers)
        except ClientDisconnect:  # a framework route reading a body that never came
            status = CLIENT_CLOSED
        except Exception:
            status = await answer_unhandled(send, request_id, rid_header, response_started)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
            self.recorder.record(
                "http", route_of(scope), method, status, time.perf_counter() - started, request_id,
                scope.get(TEXTS_KEY), scope.get(MODEL_KEY, NO_MODEL), failed=status >= 500,
            )
            if traced is not None:
                self.tracing.end_request(*traced, route_of(scope), status, request_id, scope.get(TEXTS_KEY),
                                         scope.get(MODEL_KEY))


async def _respond(
    send: Send, status: int, body: bytes, rid_header: tuple[bytes, bytes], headers: Mapping[str, str] | None
) -> None:
    raw = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append(rid_header)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def answer_unhandled(
    send: Send, request_id: str, rid_header: tuple[bytes, bytes], response_started: bool
) -> int:
    """The last resort for an exception nothing turned into a response (call it inside the
    ``except``): log it with its request id and, unless a response has begun, answer 500.
    The status to record."""
    error_log.exception("unhandled error", extra={"request_id": request_id})
    if not response_started:
        body = error_body(500, "internal_error", "internal server error", request_id=request_id)
        await _respond(send, 500, body, rid_header, None)
    return 500
