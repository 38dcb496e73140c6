"""Checks every inference route makes before any work: API key, readiness, content type and
body size. Plain functions of (services, request), shared by all protocols."""

from __future__ import annotations

import asyncio
import hmac
import re

from starlette.requests import ClientDisconnect, Request

from service.errors import (
    ClientClosedRequest,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from service.lifecycle import Phase
from service.state import Services

JSON = "application/json"
_MEDIA_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}$")



def check_api_key(svc: Services, request: Request) -> None:
    expected = svc.api_key
    if expected is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    supplied = token.strip().encode() if scheme.lower() == "bearer" else b""
    # compare_digest takes as long for a wrong key as for a right one of the same length.
    if not hmac.compare_digest(supplied, expected):
        raise Unauthorized()


def check_ready(svc: Services) -> None:
    phase = svc.lifecycle.phase
    if phase is Phase.DRAINING:
        svc.metrics.rejected.labels("draining").inc()
        raise Unavailable("server is shutting down", code="shutting_down", close=True)
    if phase is not Phase.READY:
        raise Unavailable("model is not loaded yet", code="not_ready")


def check_json_content_type(request: Request) -> None:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != JSON and not (media_type.startswith("application/") and media_type.endswith("+json")):
        # The client's value is echoed only if it is a well-formed media type, never markup.
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: {JSON}' (got {media_type or 'none'!r})"
            if not media_type or _MEDIA_TYPE.match(media_type)
            else f"send the body as JSON with 'Content-Type: {JSON}'"
        )


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes, and
    (408) if it has not all arrived within ``timeout`` seconds: uvicorn has no body-read
    timeout, so a client trickling a body (or never finishing a chunked one) would hold a
    connection and a task forever."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    chunks = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {timeout:g} s") from None
    except ClientDisconnect:
        # A client that hangs up mid-body is not a server error (it was a 500 and an ERROR
        # log line with a traceback).
        raise ClientClosedRequest("the client closed the connection before sending the whole body") from None
    return b"".join(chunks)


