"""``POST /predict`` as plain ASGI, ahead of the framework's routing.

The FastAPI route in ``api.py`` documents /predict and is the plain reference path; this
middleware serves the same requests with the same checks (``service/checks.py``), the same
inference path and the same errors, without building a ``Request``, matching routes or
solving dependencies. On one core, that machinery costs as much CPU per request as a
batched model run, so the hot path skips it. ``TEXTSERVE_FAST_PATH=false`` turns it off.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.checks import (
    check_body_size,
    check_declared_length,
    check_ready,
    parse_texts,
    read_limited,
    verify_api_key,
    verify_json_content_type,
)
from service.errors import ServiceError, error_body
from service.inference import run_inference
from service.middleware import CLIENT_CLOSED, RequestRecorder, answer_unhandled, new_request_id, valid_request_id
from service.scope_keys import REQUEST_ID_KEY, ROUTE_KEY
from service.state import Services

PATH = "/predict"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_WANTED = {
    b"authorization": "authorization",
    b"content-type": "content-type",
    b"content-length": "content-length",
    b"x-request-id": "x-request-id",
}


def _headers(scope: Scope) -> dict[str, bytes]:
    """The few request headers /predict reads: the last one wins if repeated, except the
    request id, where the first does (as in ``RequestMiddleware``)."""
    found: dict[str, bytes] = {}
    for name, value in scope["headers"]:
        key = _WANTED.get(name)
        if key is not None and not (key == "x-request-id" and key in found):
            found[key] = value
    return found


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _chunks(first: Message, receive: Receive) -> AsyncIterator[bytes]:
    message = first
    while True:
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
        message = await receive()


async def read_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    """The whole body, with ``read_limited``'s checks and errors. A body that arrives in
    one message (nearly all of them) is taken as it is, without the chunk generator."""
    check_declared_length(declared_length, limit)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")
        check_body_size(len(body), limit)
        return body
    return await read_limited(_chunks(message, receive), None, limit)


async def _respond(
    send: Send, status: int, body: bytes, request_id: tuple[bytes, bytes], headers: Mapping[str, str] | None
) -> None:
    raw = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append(request_id)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class PredictFastPath:
    """Outermost: answers POST /predict itself, request bookkeeping included (request id,
    metrics, access log, the last-resort 500, all as ``RequestMiddleware`` does them), and
    passes every other request on to ``app``."""

    def __init__(self, app: ASGIApp, svc: Services, recorder: RequestRecorder) -> None:
        self.app = app
        self.svc = svc
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope[ROUTE_KEY] = PATH
        headers = _headers(scope)
        incoming = headers.get("x-request-id")
        request_id = (valid_request_id(incoming) if incoming is not None else None) or new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        rid_header = (b"x-request-id", request_id.encode())
        status = 500
        response_started = False
        # The same envelope as RequestMiddleware.__call__ (its pieces, answer_unhandled and
        # record, are shared), written out on purpose: one RequestRecorder method running a
        # handler callback for both cost ~7,700 instructions per request, 2% (bench.instructions).
        try:
            extra: Mapping[str, str] | None = None
            try:
                reply = await self._predict(scope, receive, headers)
                status = 200
            except ServiceError as exc:
                status = exc.status
                reply = error_body(exc.status, exc.code, exc.message, exc.details, request_id)
                extra = exc.headers
            response_started = True
            await _respond(send, status, reply, rid_header, extra)
        except ClientDisconnect:
            status = CLIENT_CLOSED
        except Exception:
            status = await answer_unhandled(send, request_id, rid_header, response_started)
        finally:
            self.recorder.record(scope, status, time.perf_counter() - started, request_id)

    async def _predict(self, scope: Scope, receive: Receive, headers: dict[str, bytes]) -> bytes:
        svc = self.svc
        settings = svc.settings
        verify_api_key(svc.api_key, _text(headers.get("authorization")))
        check_ready(svc)
        verify_json_content_type(_text(headers.get("content-type")))
        async with svc.deadlines.clock(receive) as clock:
            body = await read_body(receive, _text(headers.get("content-length")), settings.max_body_bytes)
            clock.body_read()
            texts = parse_texts(svc.request_model, body)
            predictions = await run_inference(svc, scope, texts)
        return orjson.dumps({"model": svc.model_ref, "predictions": [p.to_dict() for p in predictions]})
