"""Checks every inference route makes before any work: API key, readiness, content type and
body size, plus turning a /predict body into texts.

The checks work on plain header values, so the lean ASGI path for /predict
(``service/predict_asgi.py``) and the FastAPI routes share them exactly; the ``Request``
wrappers at the bottom are for the FastAPI routes.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request

from service.errors import (
    BadRequest,
    ClientClosedRequest,
    InvalidInput,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    summarize,
    validation_details,
)
from service.lifecycle import Phase
from service.schemas import PredictRequestBase
from service.state import Services

JSON = "application/json"
_MEDIA_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}$")


def verify_api_key(expected: bytes | None, authorization: str | None) -> None:
    """401 unless ``Authorization: Bearer <expected>``; the same answer for missing and wrong."""
    if expected is None:
        return
    scheme, _, token = (authorization or "").partition(" ")
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


def verify_json_content_type(content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != JSON and not (media_type.startswith("application/") and media_type.endswith("+json")):
        # The client's value is echoed only if it is a well-formed media type, never markup.
        raise UnsupportedMediaType(
            f"send the body as JSON with 'Content-Type: {JSON}' (got {media_type or 'none'!r})"
            if not media_type or _MEDIA_TYPE.match(media_type)
            else f"send the body as JSON with 'Content-Type: {JSON}'"
        )


def check_body_size(size: int, limit: int) -> None:
    if size > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")


def check_declared_length(declared_length: str | None, limit: int) -> None:
    """413 before reading anything when ``Content-Length`` already says the body is too big."""
    if declared_length is not None and declared_length.isdigit():
        check_body_size(int(declared_length), limit)


async def read_limited(chunks: AsyncIterator[bytes], declared_length: str | None, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes (from
    ``Content-Length`` before reading anything, else while streaming). A client that hangs
    up mid-body is a 499, not a server error. uvicorn has no body-read timeout: callers read
    within their ``RequestClock``, so a trickled or never-finished body ends in a 408."""
    check_declared_length(declared_length, limit)
    parts = []
    size = 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            check_body_size(size, limit)
            parts.append(chunk)
    except ClientDisconnect:
        raise ClientClosedRequest("the client closed the connection before sending the whole body") from None
    return b"".join(parts)


def _common_texts(model: type[PredictRequestBase], body: bytes) -> list[str] | None:
    """The texts of the common valid body, ``{"texts": [str, ...]}`` within the limits, read
    with orjson; None for anything else, which pydantic then accepts or explains. It accepts
    only bodies pydantic accepts, with the same texts (tests/unit/test_parse_texts.py)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or len(data) != 1:
        return None
    texts = data.get("texts")
    if type(texts) is not list or not 0 < len(texts) <= model.max_texts:
        return None
    max_chars = model.max_chars
    for text in texts:
        if type(text) is not str or len(text) > max_chars:
            return None
    return texts


def parse_texts(model: type[PredictRequestBase], body: bytes) -> list[str]:
    """The texts of a /predict body, or 400/422. The common valid body is read with orjson;
    any other goes through the pydantic model, which gives the errors."""
    texts = _common_texts(model, body)
    if texts is not None:
        return texts
    if not body.strip():
        raise BadRequest("request body is empty; send a JSON object with 'texts'")
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if errors and errors[0]["type"] == "json_invalid":
            # "Invalid JSON: EOF while parsing a list at line 1 column 15": position, no input.
            reason = str(errors[0]["msg"]).removeprefix("Invalid JSON: ")
            raise BadRequest(f"malformed JSON body: {reason}") from None
        if errors and errors[0]["type"] == "model_type":
            raise InvalidInput("the body must be a JSON object with 'texts' or 'text'") from None
        details = validation_details(errors)
        raise InvalidInput(summarize(details), details=details) from None
    return parsed.all_texts()


# -- the same checks for FastAPI routes ----------------------------------------------------


def check_api_key(svc: Services, request: Request) -> None:
    verify_api_key(svc.api_key, request.headers.get("authorization"))


def check_json_content_type(request: Request) -> None:
    verify_json_content_type(request.headers.get("content-type"))


async def read_body(request: Request, limit: int) -> bytes:
    return await read_limited(request.stream(), request.headers.get("content-length"), limit)
