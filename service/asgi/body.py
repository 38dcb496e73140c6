"""Reading a request body from the ASGI channel, within the size limit.

uvicorn has no body-read timeout: callers read inside their ``RequestClock``
(``deadlines.py``), so a trickled or never-finished body ends in a 408.
"""

from __future__ import annotations

from starlette.types import Message, Receive

from service.asgi.checks import check_body_size, check_declared_length
from service.asgi.errors import ClientClosedRequest


async def read_body(receive: Receive, declared_length: str | None, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes (from
    ``Content-Length`` before reading anything, else while it arrives). A body in one
    message (nearly all of them) is taken as it is. A client that hangs up mid-body is a
    499, not a server error."""
    check_declared_length(declared_length, limit)
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")
        check_body_size(len(body), limit)
        return body
    return await _read_chunks(message, receive, limit)


async def _read_chunks(message: Message, receive: Receive, limit: int) -> bytes:
    parts = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientClosedRequest("the client closed the connection before sending the whole body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        check_body_size(size, limit)
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)
        message = await receive()
