"""What every RPC of the inference service shares: a request id, the status a refusal gets,
the request metrics and access-log line (``protocol="grpc"``), and the last resort for a bug.

A client's mistake is never UNKNOWN or INTERNAL: each refusal names its code here, with a
message that says what was wrong and never repeats the client's data or a traceback.

| refusal | code |
| --- | --- |
| TensorError (bad tensor, datatype, shape, too many texts, a text too long) | INVALID_ARGUMENT |
| UnknownModel (no such model or version) | NOT_FOUND |
| InvalidName (a model name that is not one path segment, a version that is not a number) | INVALID_ARGUMENT |
| Overloaded (queue full) | RESOURCE_EXHAUSTED |
| NotReady, ShuttingDown | UNAVAILABLE |
| the request timeout, or the call's own deadline | DEADLINE_EXCEEDED |
| no or a wrong API key | UNAUTHENTICATED |
| ControlRefused (load/unload outside explicit mode), LoadFailed | FAILED_PRECONDITION |
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

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
from service.observability.requests import NO_MODEL, RequestRecorder, new_request_id, valid_request_id
from service.v2.grpc import SERVICE
from service.v2.tensors import TensorError

error_log = logging.getLogger("textserve.error")

Response = TypeVar("Response")


class CallError(Exception):
    """A refusal with its status code; the message is safe to show the client."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Call:
    """One RPC being answered: its id, the texts it carried and the model version that
    answered (for the metrics and the access log)."""

    __slots__ = ("context", "model", "request_id", "texts")

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context
        self.texts: int | None = None
        self.model: tuple[str, str] = NO_MODEL
        self.request_id = new_request_id()
        for key, value in context.invocation_metadata() or ():
            if key == "x-request-id":
                self.request_id = valid_request_id(value) or self.request_id

    def metadata(self, key: str) -> str | None:
        """A metadata value the client sent (the last, if repeated)."""
        found = None
        for name, value in self.context.invocation_metadata() or ():
            if name == key and isinstance(value, str):
                found = value
        return found


def refusal(exc: Exception) -> CallError | None:
    """The status a known refusal gets; None for anything else (a bug)."""
    if isinstance(exc, CallError):
        return exc
    if isinstance(exc, TensorError | InvalidName):
        return CallError(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, UnknownModel):
        return CallError(grpc.StatusCode.NOT_FOUND, str(exc))
    if isinstance(exc, ControlRefused | LoadFailed):
        return CallError(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, Overloaded):
        return CallError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, NotReady | ShuttingDown):
        return CallError(grpc.StatusCode.UNAVAILABLE, str(exc))
    if isinstance(exc, EngineError):
        return CallError(grpc.StatusCode.INTERNAL, str(exc))
    return None


Method = Callable[[Any, Any, Call], Awaitable[Any]]


def rpc(name: str) -> Callable[[Method], Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]]:
    """Make ``method(self, request, call)`` an RPC handler: its refusals become statuses, and
    every call is recorded (probes are left out by the recorder)."""
    route = f"/{SERVICE}/{name}"

    def wrap(method: Method) -> Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        @functools.wraps(method)
        async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            recorder: RequestRecorder = self.recorder
            started = time.perf_counter()
            call = Call(context)
            status = "OK"
            tracing = self.tracing
            traced = tracing.start_request("POST", route, _trace_headers(context)) if tracing else None
            try:
                return await method(self, request, call)
            except asyncio.CancelledError:
                status = "CANCELLED"  # the client went away, or its deadline passed
                raise
            except Exception as exc:
                error = refusal(exc)
                if error is None:
                    error_log.exception("unhandled error", extra={"request_id": call.request_id})
                    error = CallError(grpc.StatusCode.INTERNAL, "internal server error")
                status = error.code.name
                context.set_trailing_metadata((("x-request-id", call.request_id),))
                await context.abort(error.code, error.message)
            finally:
                recorder.record(
                    "grpc", route, "POST", status, time.perf_counter() - started, call.request_id, call.texts,
                    call.model, failed=status in ("INTERNAL", "UNKNOWN"),
                )
                if traced is not None:
                    tracing.end_request(*traced, route, 500 if status in ("INTERNAL", "UNKNOWN") else 200,
                                        call.request_id, call.texts, call.model, {"rpc.grpc.status": status})

        return handler

    return wrap


def _trace_headers(context: grpc.aio.ServicerContext) -> list[tuple[bytes, bytes]]:
    """The W3C trace context the client sent as metadata, as the tracer reads headers."""
    return [(key.encode(), value.encode()) for key, value in context.invocation_metadata() or ()
            if key in ("traceparent", "tracestate") and isinstance(value, str)]


def unimplemented(name: str) -> Callable[..., Awaitable[Any]]:
    """A handler that answers UNIMPLEMENTED for an RPC of Triton's service textserve lacks."""

    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not implemented by this server")

    handler.__name__ = name
    return handler
