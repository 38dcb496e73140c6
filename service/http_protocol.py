"""uvicorn's httptools protocol, sending each response in one write instead of two.

uvicorn writes a response's head when the app sends ``http.response.start`` and its body
when the app sends ``http.response.body``: two ``send()`` system calls and two TCP segments
for every small JSON reply. On one core under load the second call is not cheap: uvicorn's
own floor (a raw ASGI app) costs 76 us of CPU per request with two writes and 54 us with one.
So this protocol hands uvicorn a transport that gathers the writes made in one turn of the
event loop and sends them together at the end of it. Nothing else changes: flow control, keep-alive, pipelining and
closing are uvicorn's own, and a close (or abort) sends (or drops) what was gathered first.

Passed to uvicorn as ``http=CoalescingHttpToolsProtocol`` (see ``server.py``), uvicorn's
documented way to choose the protocol class.

It also hands ``POST /predict`` cycles to the app's direct path (``predict_direct.py``)
instead of starting the ASGI app on them, through ``_start_asgi_task``: the one place
uvicorn starts every request, pipelined or not. That method is uvicorn's internal API;
uvicorn is pinned to 0.54.x and the end-to-end tests run through this path.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

if TYPE_CHECKING:
    from service.predict_direct import DirectPredict


class GatheredWrites:
    """An ``asyncio.Transport`` stand-in that batches ``write()`` calls per loop turn."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._pending is None:
            self._pending = [bytes(data)]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        pending = sum(map(len, self._pending)) if self._pending else 0
        return pending + self._transport.get_write_buffer_size()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # flow control keeps the real transport
        self.transport = GatheredWrites(transport, self.loop)  # type: ignore[assignment]
        # The app's protocol-level POST /predict (``predict_direct.py``), if it has one.
        self.direct: DirectPredict | None = getattr(self.config.app, "direct_predict", None)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """uvicorn calls this for each request, in order (pipelined ones once the previous
        response is complete): POST /predict goes to the direct path, the rest to the app."""
        direct = self.direct
        if direct is None or app is not self.app or self.config.reset_contextvars or not direct.wants(cycle):
            super()._start_asgi_task(cycle, app)
            return
        task = self.loop.create_task(direct.serve(cycle))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)
