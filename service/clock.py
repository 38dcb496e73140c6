"""One timer per inference request: its deadline, and noticing a client that hung up.

An ``asyncio.timeout`` for the body, another for the answer and a disconnect watcher cost
three timers (and a task) per request, more CPU than parsing its JSON. A request gets one
timer instead. It fires first after ``WATCH_AFTER_S``: a request answered sooner (the
usual case) never costs more. If the request is still running then, a watcher starts
reading the ASGI channel for ``http.disconnect`` (the body has been read, so nothing else
can arrive), and the timer is set again for the deadline. When the client hangs up or the
deadline passes, the request's task is cancelled, and on the way out of the ``async with``
block that cancellation becomes the error the client should see (or would have seen):

* the deadline passed before the whole body arrived: 408 (and the connection is closed);
* the deadline passed while the texts waited or ran: 504;
* the client hung up: 499, for the logs and metrics only.

The batcher withdraws the texts of a cancelled request at once; cancellations that are
not the clock's (server shutdown) pass through untouched.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from starlette.types import Receive

from service.errors import ClientClosedRequest, GatewayTimeout, RequestTimeout, ServiceError
from service.metrics import Metrics

WATCH_AFTER_S = 0.05
_TIMEOUT = "timeout"
_CLIENT_GONE = "client gone"


class RequestClock:
    def __init__(self, receive: Receive, timeout: float, metrics: Metrics) -> None:
        self._receive = receive
        self._timeout = timeout
        self._metrics = metrics
        self._reason: str | None = None
        self._body_read = False
        self._watcher: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RequestClock:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + self._timeout
        self._timer = self._loop.call_later(min(WATCH_AFTER_S, self._timeout), self._tick)
        return self

    def body_read(self) -> None:
        """The body is in: from now on only a disconnect can arrive on the channel."""
        self._body_read = True

    def _tick(self) -> None:
        if self._loop.time() >= self._deadline - 0.001:  # loops may run a timer a hair early
            self._stop(_TIMEOUT)
            return
        if self._body_read and self._watcher is None:
            self._watcher = self._loop.create_task(self._watch())
        self._timer = self._loop.call_at(self._deadline, self._tick)

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._stop(_CLIENT_GONE)

    def _stop(self, reason: str) -> None:
        if self._reason is None and not self._task.done():
            self._reason = reason
            self._task.cancel()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if exc_type is asyncio.CancelledError and self._reason is not None:
            self._task.uncancel()
            raise self._error() from None

    def _error(self) -> ServiceError:
        if self._reason == _CLIENT_GONE:
            return ClientClosedRequest("the client closed the connection before its answer")
        if not self._body_read:
            return RequestTimeout(f"the request body did not arrive within {self._timeout:g} s")
        self._metrics.rejected.labels("timeout").inc()
        return GatewayTimeout(f"no answer within the request timeout ({self._timeout:g} s)")
