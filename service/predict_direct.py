"""``POST /predict`` served from uvicorn's protocol, without the ASGI exchange around it.

uvicorn still parses the request, keeps the connection (keep-alive, pipelining, flow
control, ``Expect: 100-continue``, disconnects, graceful shutdown) and hands over its
request cycle; this module answers that cycle directly: the same ``answer_predict`` as the
ASGI path (checks, body, inference, errors), the same request id, metrics and access log
(``RequestRecorder``), then the response written in one piece with uvicorn's default
headers. What it skips is the ASGI plumbing per request: the app and middleware chain,
the ``send`` wrapper, two ``send`` messages whose headers uvicorn checks one by one. On
one core that plumbing costs about as much CPU as the rest of a one-text request does.

Every other request, and every request when ``TEXTSERVE_FAST_PATH=false``, goes to the
ASGI app as usual. ``http_protocol.py`` routes the cycle here.
"""

from __future__ import annotations

import asyncio
import logging
import time

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

from service.middleware import RequestRecorder, internal_error_body, request_id_of
from service.predict_asgi import PATH, Answer, answer_predict
from service.state import Services

error_log = logging.getLogger("textserve.error")
_HEAD = b"content-type: application/json\r\ncontent-length: "


class DirectPredict:
    def __init__(self, svc: Services, recorder: RequestRecorder) -> None:
        self.svc = svc
        self.recorder = recorder

    @staticmethod
    def wants(cycle: RequestResponseCycle) -> bool:
        scope = cycle.scope
        return scope["path"] == PATH and scope["method"] == "POST"

    async def serve(self, cycle: RequestResponseCycle) -> None:
        """Answer one request cycle; never raises for the request's own failures."""
        started = time.perf_counter()
        scope = cycle.scope
        request_id = request_id_of(scope)  # type: ignore[arg-type]
        status = 500
        try:
            answer = await answer_predict(self.svc, scope, cycle.receive)  # type: ignore[arg-type]
            status = answer.status
            write(cycle, answer, request_id)  # a client that hung up (499) gets nothing
        except asyncio.CancelledError:  # server stop past its grace period: uvicorn's cancel
            cycle.transport.close()
            raise
        except Exception:
            error_log.exception("unhandled error", extra={"request_id": request_id})
            status = 500
            if not cycle.response_started:
                write(cycle, Answer(500, internal_error_body(request_id), {"Connection": "close"}), request_id)
            else:
                cycle.transport.close()
        finally:
            self.recorder.record(scope, status, time.perf_counter() - started, request_id)  # type: ignore[arg-type]


def write(cycle: RequestResponseCycle, answer: Answer, request_id: str) -> None:
    """The response in one write, completing the cycle as uvicorn's ``send`` would."""
    if cycle.disconnected:
        return
    status, body, headers = answer
    parts = [STATUS_LINE[status]]
    for name, value in cycle.default_headers:
        parts += [name, b": ", value, b"\r\n"]
    parts += [_HEAD, str(len(body)).encode(), b"\r\nx-request-id: ", request_id.encode(), b"\r\n"]
    if headers:
        for key, text in headers.items():
            if key.lower() == "connection" and text.lower() == "close":
                cycle.keep_alive = False
                continue
            parts += [key.lower().encode("latin-1"), b": ", text.encode("latin-1"), b"\r\n"]
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += [b"\r\n", body]
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    cycle.transport.write(b"".join(parts))
    cycle.response_complete = True
    cycle.message_event.set()
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()
