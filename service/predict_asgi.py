"""``POST /predict`` as plain ASGI, ahead of the framework's routing.

The FastAPI route in ``api.py`` documents /predict and is the plain reference path; this
middleware serves the same requests with the same checks (``service/checks.py``), the same
inference path and the same errors, without building a ``Request``, matching routes or
solving dependencies. On one core, that machinery costs as much CPU per request as a
batched model run, so the hot path skips it. ``TEXTSERVE_FAST_PATH=false`` turns it off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from service.checks import check_ready, parse_texts, read_limited, verify_api_key, verify_json_content_type
from service.clock import RequestClock
from service.errors import ServiceError, error_body
from service.inference import run_inference
from service.scope_keys import REQUEST_ID_KEY, ROUTE_KEY
from service.state import Services

PATH = "/predict"
_JSON_HEADERS = [(b"content-type", b"application/json")]
_WANTED = {b"authorization": "authorization", b"content-type": "content-type", b"content-length": "content-length"}


def _headers(scope: Scope) -> dict[str, str]:
    """The few request headers /predict reads (the last one wins if repeated)."""
    found = {}
    for name, value in scope["headers"]:
        key = _WANTED.get(name)
        if key is not None:
            found[key] = value.decode("latin-1")
    return found


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _respond(send: Send, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
    raw = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if headers:
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class PredictFastPath:
    def __init__(self, app: ASGIApp, svc: Services) -> None:
        self.app = app
        self.svc = svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope[ROUTE_KEY] = PATH
        svc = self.svc
        headers = _headers(scope)
        try:
            verify_api_key(svc.api_key, headers.get("authorization"))
            check_ready(svc)
            verify_json_content_type(headers.get("content-type"))
            async with RequestClock(receive, svc.settings.request_timeout_s, svc.metrics) as clock:
                body = await read_limited(
                    _body_chunks(receive), headers.get("content-length"), svc.settings.max_body_bytes
                )
                clock.body_read()
                texts = parse_texts(svc.request_model, body)
                predictions = await run_inference(svc, scope, texts)
        except ServiceError as exc:
            payload = error_body(exc.status, exc.code, exc.message, exc.details, scope.get(REQUEST_ID_KEY))
            await _respond(send, exc.status, payload, exc.headers)
            return
        reply: dict[str, Any] = {"model": svc.model_ref, "predictions": [p.to_dict() for p in predictions]}
        await _respond(send, 200, orjson.dumps(reply))
