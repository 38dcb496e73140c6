"""Errors that carry their HTTP status, and the handlers that turn them into JSON.

Bodies are ``{"error": "...", "code": "...", "details": [...]?, "request_id": "..."}``.
They never contain a stack trace, a file path, a library version or the client's input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.engine.admission import (
    ControlRefused,
    EngineError,
    InvalidName,
    LoadFailed,
    NotReady,
    Overloaded,
    ShuttingDown,
    UnknownModel,
)

# Where the envelope keeps a request's id in its ASGI scope; every error body carries it.
REQUEST_ID_KEY = "textserve.request_id"


class ServiceError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = dict(headers or {})


class BadRequest(ServiceError):
    status, code = 400, "bad_request"


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"

    def __init__(self) -> None:
        super().__init__("missing or invalid API key", headers={"WWW-Authenticate": "Bearer"})


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class InvalidInput(ServiceError):
    status, code = 422, "invalid_input"


class Unavailable(ServiceError):
    """503: overloaded, not ready or shutting down; always says when to retry."""

    status, code = 503, "unavailable"

    def __init__(self, message: str, *, code: str, retry_after: int = 1, close: bool = False) -> None:
        headers = {"Retry-After": str(retry_after)}
        if close:
            headers["Connection"] = "close"
        super().__init__(message, headers=headers)
        self.code = code


class GatewayTimeout(ServiceError):
    status, code = 504, "timeout"


class RequestTimeout(ServiceError):
    """408: the body did not arrive in time. The connection is closed, since the rest of
    the body may still be on its way."""

    status, code = 408, "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class ClientClosedRequest(ServiceError):
    """499 (nginx's code): the client went away before its answer. Nobody reads this body;
    the status is for the access log and the request metrics, which would otherwise count
    an abandoned request as a 500 or as a success."""

    status, code = 499, "client_closed_request"


def from_engine(exc: EngineError) -> ServiceError:
    """The HTTP answer to an engine's refusal."""
    message = str(exc)
    if isinstance(exc, Overloaded):
        return Unavailable(message, code="overloaded")
    if isinstance(exc, ShuttingDown):
        return Unavailable(message, code="shutting_down", close=True)
    if isinstance(exc, NotReady):
        return Unavailable(message, code="not_ready")
    if isinstance(exc, UnknownModel):
        return NotFound(message)
    if isinstance(exc, InvalidName):
        return BadRequest(message)
    if isinstance(exc, ControlRefused):
        return Conflict(message)
    if isinstance(exc, LoadFailed):
        return BadRequest(message)  # the model repository extension's usual status for a failed load
    return ServiceError(message)


def error_body(
    status: int, code: str, message: str, details: Sequence[dict[str, Any]] | None = None,
    request_id: str | None = None,
) -> bytes:
    body: dict[str, Any] = {"error": message, "code": code}
    if details:
        body["details"] = list(details)
    if request_id:
        body["request_id"] = request_id
    return orjson.dumps(body)


def json_error(
    status: int, code: str, message: str, *, details: Sequence[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None, request_id: str | None = None,
) -> Response:
    return Response(
        error_body(status, code, message, details, request_id),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def request_id_of(request: Request) -> str | None:
    return request.scope.get(REQUEST_ID_KEY)


# A field name from the client is echoed (it names the typo) only if it looks like one.
_SAFE_FIELD = re.compile(r"^[A-Za-z0-9_.\-\[\]()]{1,64}$")


def _safe_loc_part(part: Any) -> Any:
    if isinstance(part, int) or _SAFE_FIELD.match(str(part)):
        return part
    return "(field)"


def validation_details(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors without the offending input (never echoed back) or doc URLs. The
    location may hold a key the client sent; one that is not a plain name (markup, long
    strings, anything a browser or a log viewer might interpret) is not echoed."""
    details = []
    for err in errors:
        loc = [
            _safe_loc_part(p) for p in err.get("loc", ())
            if p not in ("body", "function-after[_one_of()]")
        ]
        details.append({"loc": loc, "msg": str(err.get("msg", "invalid")), "type": err.get("type")})
    return details


def summarize(details: Sequence[Mapping[str, Any]]) -> str:
    first = details[0]
    where = ".".join(str(p) for p in first["loc"])
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where + ': ' if where else ''}{first['msg']}{more}"


def install_error_handlers(app: FastAPI) -> None:
    async def on_service_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ServiceError)
        return json_error(
            exc.status, exc.code, exc.message, details=exc.details, headers=exc.headers,
            request_id=request_id_of(request),
        )

    async def on_engine_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EngineError)
        return await on_service_error(request, from_engine(exc))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        details = validation_details(exc.errors())
        return json_error(
            422, InvalidInput.code, summarize(details), details=details,
            request_id=request_id_of(request),
        )

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "error"
        code = phrase.lower().replace(" ", "_").replace("-", "_")
        message = {404: "no such route", 405: "method not allowed for this route"}.get(status, phrase.lower())
        return json_error(status, code, message, headers=exc.headers, request_id=request_id_of(request))

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after answering; RequestMiddleware logs it with the request id.
        return json_error(500, "internal_error", "internal server error", request_id=request_id_of(request))

    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(EngineError, on_engine_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
