"""Checks an inference route makes before any work, on plain header values (so the lean
/predict path and the framework routes share them exactly): the API key, the content type,
the declared and actual body size."""

from __future__ import annotations

import hmac
import re

from service.asgi.errors import PayloadTooLarge, Unauthorized, UnsupportedMediaType
from service.asgi.responses import JSON

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
